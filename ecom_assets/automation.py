"""The declarative-automation condition every derived asset uses.

`AutomationCondition.eager()` waits while ANY upstream partition is missing; one drop whose run
failed (a file rejected mid-read) would then freeze the clean tables for good. This is eager
without that clause: refresh when an upstream partition or asset is updated, never while an
upstream or this asset is still running.
"""

import dagster as dg

AC = dg.AutomationCondition

ON_NEW_DATA = (
    (AC.newly_missing() | AC.any_deps_updated()).since_last_handled()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
).with_label("eager (refresh on new drops)")
