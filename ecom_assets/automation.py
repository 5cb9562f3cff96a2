"""The two declarative-automation conditions of the derived assets.

Operational assets (clean tables, features, churn scores, the risk list, segments) refresh on every
drop (`ON_NEW_DATA`); the analytical reports and the monitoring reports refresh once a day after
new data arrived (`DAILY`), so a drop is turned into a fresh churn list without also recomputing
eight reports over the whole history each time.

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

DAILY_CRON = "0 6 * * *"
DAILY = AC.on_cron(DAILY_CRON, "UTC").with_label("daily at 06:00 UTC, once new data has arrived")
