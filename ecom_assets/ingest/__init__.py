"""Ingest domain: landing-zone sensor and one raw partition per dropped file."""

import dagster as dg

from ecom_assets.ingest.assets import (RAW_ASSETS, SESSION_ASSETS, landing_rejects, raw_campaigns, raw_customers,
                                      raw_event_sessions, raw_events, raw_order_sessions, raw_orders, raw_sessions)
from ecom_assets.ingest.sensor import INGEST_JOBS, ingest_landing, landing_zone_sensor

__all__ = ["defs", "ingest_landing", "landing_rejects", "raw_campaigns", "raw_customers", "raw_event_sessions",
           "raw_events", "raw_order_sessions", "raw_orders", "raw_sessions"]

defs = dg.Definitions(assets=[*RAW_ASSETS.values(), *SESSION_ASSETS.values(), landing_rejects],
                      jobs=list(INGEST_JOBS.values()), sensors=[landing_zone_sensor])
