"""Clean domain: validated, de-duplicated tables and the quarantine summary."""

import dagster as dg

from ecom_assets.clean.assets import (clean_customers, clean_events, clean_order_lines, clean_returns, clean_sessions,
                                      quarantine_summary)

defs = dg.Definitions(assets=[clean_customers, clean_sessions, clean_order_lines, clean_returns, clean_events,
                              quarantine_summary])
