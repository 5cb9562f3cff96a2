"""Insights domain: segments, funnel, trends, campaigns, cohorts, cross-sell, early signals, win-back, dashboard."""

import dagster as dg

from ecom_assets.insights.assets import (
    campaign_lift,
    cohort_metrics,
    cross_sell_rules,
    customer_segments,
    high_value_early_signals,
    product_funnel,
    sales_trends,
    winback_assignment,
    winback_results,
)
from ecom_assets.insights.dashboard import kpi_dashboard
from ecom_assets.insights.events import EVENT_ASSETS

INSIGHT_ASSETS = [customer_segments, product_funnel, sales_trends, campaign_lift, cohort_metrics, cross_sell_rules,
                  high_value_early_signals, winback_assignment, winback_results, kpi_dashboard, *EVENT_ASSETS]

defs = dg.Definitions(assets=INSIGHT_ASSETS)
