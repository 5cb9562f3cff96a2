"""Monitoring domain: drift reports, realised performance, retraining and on-call alerts."""

import dagster as dg

from ecom_assets.monitoring.assets import feature_drift_report, model_performance, sessions_drop_profile
from ecom_assets.monitoring.sensors import alert_on_run_failure, retrain_sensor, scoring_schedule

__all__ = ["defs"]

defs = dg.Definitions(
    assets=[feature_drift_report, sessions_drop_profile, model_performance],
    sensors=[retrain_sensor, alert_on_run_failure],
    schedules=[scoring_schedule],
)
