"""The one definition of a customer's churn status, shared by the churn risk list and the segments.

`lapsed`: no purchase for more than LAPSED_GAP_MULTIPLE x the customer's typical gap between
purchases and over LAPSED_MIN_DAYS days (a win-back case, not retention), unless the served churn
probability says they are more likely than not to buy in the horizon (below AT_RISK_PROBABILITY:
`active`, the probability is calibrated on the holdout, the gap rule is not; a status never
contradicts the score beside it); one-purchase buyers, who have no gap of their own yet, are judged
by the repeat buyers' median gap. `at_risk`: churn
probability >= AT_RISK_PROBABILITY and not lapsed. Otherwise `active`; `never_purchased` for
never-buyers, `unscored` where no model could score the customer.
"""

from __future__ import annotations

import polars as pl

LAPSED_MIN_DAYS = 180
LAPSED_GAP_MULTIPLE = 2.0
AT_RISK_PROBABILITY = 0.5


def typical_gap(frame: pl.DataFrame) -> float | None:
    """The repeat buyers' median typical gap between purchases (days): what a one-purchase buyer, who has
    no gap of their own yet, is judged by. None without repeat buyers."""
    gaps = frame.filter(~pl.col("cold_start"))["gap_mean_days"].drop_nulls()
    return float(gaps.median()) if gaps.len() else None


def churn_status(frame: pl.DataFrame) -> pl.Series:
    """The one definition of `lapsed` and `at_risk` that the churn list and the customer segments share:
    `status` per row of `frame` (columns cold_start, days_since_last_purchase, gap_mean_days,
    churn_probability; the whole population, which sets the typical gap of one-purchase buyers)."""
    return frame.select(status(typical_gap(frame)).alias("status")).to_series()


def status(median_gap: float | None) -> pl.Expr:
    """lapsed | at_risk | active | never_purchased | unscored, from the columns of the list frame (use
    `churn_status`, which takes the typical gap from the same frame)."""
    gap = pl.col("gap_mean_days").fill_null(median_gap) if median_gap is not None else pl.col("gap_mean_days")
    threshold = pl.max_horizontal(pl.lit(float(LAPSED_MIN_DAYS)), LAPSED_GAP_MULTIPLE * gap)
    return (pl.when(pl.col("cold_start")).then(pl.lit("never_purchased"))
            .when((pl.col("days_since_last_purchase") > threshold)
                  & pl.col("churn_probability").is_null().or_(pl.col("churn_probability") >= AT_RISK_PROBABILITY))
            .then(pl.lit("lapsed"))
            .when(pl.col("churn_probability").is_null()).then(pl.lit("unscored"))
            .when(pl.col("churn_probability") >= AT_RISK_PROBABILITY).then(pl.lit("at_risk"))
            .otherwise(pl.lit("active")))
