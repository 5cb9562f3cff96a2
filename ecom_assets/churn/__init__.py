"""Churn domain: the XGBoost model with its gates, predictions with drivers, the risk-list export."""

import dagster as dg

from ecom_assets.churn.assets import (
    churn_model,
    churn_predictions,
    churn_retrain_job,
    churn_risk_list,
    churn_scoring_job,
)

defs = dg.Definitions(
    assets=[churn_model, churn_predictions, churn_risk_list],
    jobs=[churn_retrain_job, churn_scoring_job],
)
