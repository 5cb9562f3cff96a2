"""Features domain: point-in-time customer features and labelled training windows."""

import dagster as dg

from ecom_assets.features.assets import AsOfConfig, churn_training_set, customer_features, customer_history

# ops that take the as-of date as run config (`ecom-assets run --as-of`)
AS_OF_CONFIG_OPS = ["customer_features", "churn_training_set"]

__all__ = ["AS_OF_CONFIG_OPS", "AsOfConfig", "churn_training_set", "customer_features", "customer_history", "defs"]

defs = dg.Definitions(assets=[customer_history, customer_features, churn_training_set])
