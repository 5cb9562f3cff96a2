"""customer_segments and the churn risk list call a customer lapsed or at risk by one definition
(churn.status), so a marketer who reads both never sees the same customer in two states.

Planted customers are each one of the cases where the two used to disagree: gone 200 days with a high
probability (the list said lapsed, the segments at_risk), a one-order buyer at 0.55 (list at_risk,
segments not: they asked for 0.6 and two orders), a newcomer at risk (segments said new), a slow
buyer 400 days out with a 250-day rhythm (segments hibernating by a fixed 365 days, list at_risk).
"""

from datetime import date

import polars as pl

from ecom_assets.churn import risk_list
from ecom_assets.insights import analyses

AS_OF = date(2024, 12, 30)
DEFAULT = {"churn_probability": 0.3, "churn_probability_low": 0.2, "churn_probability_high": 0.4,
           "risk_tier": "low", "top_drivers": ["days_since_last_purchase ↓"], "cold_start_reason": None,
           "model_version": "v0001", "cold_start": False, "n_purchases": 5.0, "aov": 60.0, "revenue": 300.0,
           "tenure_days": 500.0, "gap_mean_days": 40.0, "gap_std_days": 8.0, "days_since_last_purchase": 25.0,
           "days_since_last_session": 10.0, "sessions_30d": 2.0, "purchases_30d": 1.0, "sessions_prev_60d": 2.0,
           "purchases_prev_60d": 1.0, "browsing_mean_30d": 90.0, "browsing_mean_sec": 95.0,
           "days_since_signup": 510.0, "age": 35.0, "gender": "M", "location": "Bristol",
           "favourite_category": "Books", "repeat_purchases": 4.0, "days_since_first_purchase": 185.0,
           "last_purchase_month": 11.0, "n_sessions": 12.0,
           "score_basis": "XGBoost model v0001, holdout AUC 0.750 (the best classic, bgnbd: 0.700)"}
PLANTED = [
    {"customer_id": "gone_200d", "churn_probability": 0.95, "days_since_last_purchase": 200.0, "gap_mean_days": 30.0},
    {"customer_id": "one_order_055", "churn_probability": 0.55, "n_purchases": 1.0, "gap_mean_days": None,
     "revenue": 60.0, "days_since_last_purchase": 70.0},
    {"customer_id": "newcomer_at_risk", "churn_probability": 0.7, "tenure_days": 40.0, "n_purchases": 1.0,
     "gap_mean_days": None, "revenue": 60.0, "days_since_last_purchase": 38.0},
    {"customer_id": "slow_400d", "churn_probability": 0.8, "days_since_last_purchase": 400.0, "gap_mean_days": 250.0},
    {"customer_id": "once_400d", "churn_probability": 0.9, "n_purchases": 1.0, "gap_mean_days": None,
     "days_since_last_purchase": 400.0, "revenue": 60.0},
    {"customer_id": "loyal", "churn_probability": 0.1, "days_since_last_purchase": 12.0, "revenue": 2000.0},
    {"customer_id": "regular", "churn_probability": 0.2},
    {"customer_id": "browser", "churn_probability": 0.8, "cold_start": True, "n_purchases": 0.0, "aov": None,
     "revenue": 0.0, "days_since_last_purchase": None, "gap_mean_days": None},
    {"customer_id": "unscored_old", "churn_probability": None, "days_since_last_purchase": 30.0},
]


def planted() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(churn_predictions rows, customer_features rows) of the planted customers."""
    frame = pl.DataFrame([{**DEFAULT, **row} for row in PLANTED]).with_columns(as_of=pl.lit(AS_OF))
    predictions = frame.select("customer_id", "churn_probability", "churn_probability_low", "churn_probability_high",
                               "risk_tier", "top_drivers", "cold_start_reason", "model_version", "score_basis", "as_of",
                               "cold_start")
    features = frame.select(*sorted(set(risk_list.FEATURE_INPUTS) | set(analyses.SEGMENT_FEATURES)))
    return predictions, features


def test_segments_and_the_risk_list_agree_on_lapsed_and_at_risk() -> None:
    predictions, features = planted()
    listed, _ = risk_list.build_risk_list(predictions, features)
    segments = analyses.customer_segments(features, predictions)
    both = listed.select("customer_id", "status").join(segments.select("customer_id", "segment"), on="customer_id")
    assert both.height == len(PLANTED)
    status = dict(both.select("customer_id", "status").iter_rows())
    segment = dict(both.select("customer_id", "segment").iter_rows())
    assert status["gone_200d"] == segment["gone_200d"] == "lapsed"
    assert status["once_400d"] == segment["once_400d"] == "lapsed"
    for name in ("one_order_055", "newcomer_at_risk", "slow_400d"):
        assert status[name] == segment[name] == "at_risk", name
    for label in ("lapsed", "at_risk"):
        disagree = both.filter((pl.col("status") == label) != (pl.col("segment") == label))
        assert disagree.is_empty(), disagree
    assert segment["browser"] == "browsers" and segment["loyal"] == "high_ltv"
    # the rules the asset publishes say where the two labels come from
    assert "churn_status" in analyses.SEGMENT_RULES and "at_risk = churn probability >= 0.5" in analyses.SEGMENT_RULES
    assert segments["action"].null_count() == 0
