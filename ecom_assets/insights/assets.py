"""Insight assets (group `insights`): thin wrappers around `analyses`, each with its table in the
warehouse, a readable summary (and a plot where it helps) in the metadata."""

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_DAILY, REFRESH_PER_DROP
from ecom_assets.exports import write_safe_csv
from ecom_assets.ingest.orders import REFUND_INPUT_COLUMNS, order_refunds
from ecom_assets.insights import analyses, events
from ecom_assets.insights.stats import MAX_ITEMS, MIN_TESTED_TOGETHER, TESTED_CELLS
from ecom_assets.io import columns_in
from ecom_assets.metadata import column_schema, empty_table, md_table
from ecom_assets.plots import png_markdown
from ecom_assets.settings import EcomSettings

MARKETING = ["team:marketing"]
ANALYTICS = ["team:analytics"]
ALL_DROPS = dg.AssetIn(partition_mapping=dg.AllPartitionMapping())


SEGMENT_COLUMNS = {"customer_id": "string", "segment": "string - lapsed | at_risk (the churn risk list's status, "
    "same definition) | new | hibernating | browsers | high_ltv | active_loyal | occasional", "churn_probability": "float64",
    "revenue": "float64", "n_purchases": "float64", "days_since_last_purchase": "float64",
    "favourite_category": "string", "as_of": "date", "action": "string"}
FUNNEL_COLUMNS = {"leakage_rank": "int (null: not a category)", "category": "string",
    "views": "int - browsing sessions of the category (an order is no visit)",
    "cart_known": "int - views whose cart flag is known", "carts": "int (null without added_to_cart)",
    "purchases": "int - browsing sessions that converted", "purchases_after_cart": "int",
    "purchases_without_cart": "int", "revenue": "float64 - every session's purchase_amount, orders included",
    "conversion": "float64 in [0, 1]", "conversion_low": "float64", "conversion_high": "float64",
    "view_to_cart": "float64 in [0, 1] (+ _low / _high)", "cart_to_purchase": "float64 in [0, 1] (+ _low / _high)",
    "q_value": "float64", "lost_purchases": "float64", "leaking": "bool"}
TREND_COLUMNS = {"grain": "day | week | month | weekday_index | month_index | hour_of_day | day_of_week",
    "session_date": "date", "sessions": "int - every session (orders too)",
    "browsing_sessions": "int - sessions with a visit (browsing time, page views, or no purchase): conversion's base",
    "converted": "int - browsing sessions that ended in a purchase (their order counted on its own session or not)",
    "purchases": "int - purchases counted once per order", "revenue": "float64",
    "returns": "float64 - amount of every clean_returns line (refunds + lines of cancelled/refunded orders)",
    "refunds": "float64 - money given back on bought orders, once per order (its refunded_amount, at most the "
               "order's revenue, else its clean_returns.is_refund lines), by the order time",
    "net_revenue": "float64 - revenue - refunds (lines of cancelled/refunded orders never were revenue)", "buyers": "int",
    "conversion": "float64 - converted / browsing_sessions (day, week, month; null without browsing sessions), "
                  "purchases / sessions by hour_of_day and day_of_week",
    "aov": "float64", "level": "string", "index": "float64",
    "low": "float64", "high": "float64"}
LIFT_COLUMNS = {"campaign_id": "string", "name": "string", "start_date": "date", "end_date": "date",
    "days": "int", "conversion_lift": "float64 - converted visits per visit in the window / baseline; null without "
    "60 days of visits (orders-only data)", "conversion_lift_low": "float64", "conversion_lift_high": "float64",
    "p_value": "float64 - of the conversion lift", "revenue_per_session_lift": "float64",
    "revenue_lift_low": "float64", "revenue_lift_high": "float64"}
COHORT_COLUMNS = {"kind": "signup_month | first_purchase_month | retention", "cohort": "date",
    "customers": "int", "buyers": "int", "revenue": "float64", "aov": "float64",
    "revenue_per_customer": "float64", "months_since": "int", "retention": "float64"}
RULE_COLUMNS = {"antecedent": "string", "consequent": "string", "customers": "int", "support": "float64",
    "confidence": "float64", "confidence_reverse": "float64", "lift": "float64",
    "adjusted_lift": "float64 - observed / mean under the null", "z": "float64 - (observed - 1/2 - null mean) / null sd",
    "p_value": "float64 - one-sided, Pearson III tail of the null's mean, sd and skewness",
    "q_value": "float64 (null below 20 customers: not tested)", "significant": "bool"}
SIGNAL_COLUMNS = {"signal": "string", "auc": "float64", "top5_median": "float64",
    "others_median": "float64"}
ASSIGNMENT_COLUMNS = {"customer_id": "string", "arm": "control | offer_10 | offer_20", "risk_tier": "string",
    "churn_probability": "float64", "assigned_on": "date"}
RESULT_COLUMNS = {"arm": "string", "customers": "int", "returned": "int", "return_rate": "float64",
    "uplift": "float64", "uplift_low": "float64", "uplift_high": "float64", "p_value": "float64"}


def no_data(columns: dict[str, str], state: str) -> dg.Output:
    """The asset's typed, empty table while its input has no rows (the IO manager adds "no data yet")."""
    return dg.Output(empty_table(columns), metadata={"state": state, "dagster/row_count": 0})


def no_rows(frame: pl.LazyFrame) -> bool:
    return frame.select(pl.len()).collect().item() == 0  # parquet row counts: read from the footers


def insight(owners=ANALYTICS, kinds=frozenset({"polars"}), tags=REFRESH_DAILY, **kwargs):
    """@dg.asset with the settings every insight shares (refreshed daily unless said otherwise)."""
    return dg.asset(group_name="insights", owners=owners, kinds=set(kinds), tags=tags,
                    **kwargs)


@insight(
    owners=MARKETING,
    kinds={"polars", "csv"},
    tags=REFRESH_PER_DROP,  # an action list: as fresh as the churn scores it is built from
    ins={"customer_features": columns_in(analyses.SEGMENT_FEATURES),
         "churn_predictions": columns_in(["customer_id", "churn_probability"])},
    description="Customer segments with a recommended action each; exports/segments.csv. Rules: " + analyses.SEGMENT_RULES,
    metadata=column_schema(SEGMENT_COLUMNS),
)
def customer_segments(settings: EcomSettings, customer_features: pl.DataFrame,
                      churn_predictions: pl.DataFrame) -> dg.Output:
    if customer_features.is_empty():  # the header alone: segments exported earlier are never left standing
        empty = no_data(SEGMENT_COLUMNS, "no customers yet")
        write_safe_csv(empty.value, settings.exports / "segments.csv")
        return empty
    segments = analyses.customer_segments(customer_features, churn_predictions)
    summary = analyses.segment_summary(segments)
    path = write_safe_csv(segments, settings.exports / "segments.csv")
    return dg.Output(segments, metadata={"dagster/row_count": segments.height, "export": dg.MetadataValue.path(str(path)),
                                         "segments": dg.MetadataValue.md(md_table(summary))})


@insight(
    ins={"clean_sessions": columns_in(analyses.FUNNEL_SESSION_COLUMNS)},
    description="View -> cart -> purchase per product category. Every rate is a share of the same sessions "
    "with a 95 % Wilson interval: conversion = purchases / views, view_to_cart = carts / views, cart_to_purchase = "
    "purchases in a session with a cart / sessions with a cart; purchases without a cart are counted in their own "
    "column. Each session counts once, under its `product_viewed` (the category it viewed most; an order's, the one of "
    "its largest lines), so a session's purchase counts there even when it bought from another category or its "
    "purchase names no product: category_funnel (events drops) counts a session under every category it touched. "
    "Leakage ranking: real categories (never `unknown`) whose conversion is significantly below the others' "
    "(two-proportion z-test, Benjamini-Hochberg q < 0.05), ordered by purchases lost against the overall rate.",
    metadata=column_schema(FUNNEL_COLUMNS),
)
def product_funnel(clean_sessions: pl.LazyFrame) -> dg.Output:
    if no_rows(clean_sessions):
        return no_data(FUNNEL_COLUMNS, "no sessions yet")
    funnel = analyses.product_funnel(clean_sessions)
    leaking = funnel.filter(pl.col("leaking"))["category"].to_list()
    return dg.Output(funnel, metadata={
        "dagster/row_count": funnel.height,
        "leaks_most": leaking[0] if leaking else "no category leaks significantly",
        "funnel": dg.MetadataValue.md(md_table(funnel.select(
            "leakage_rank", "category", "views", "carts", "purchases", "purchases_without_cart", "conversion",
            "conversion_low", "conversion_high", "cart_to_purchase", "q_value", "leaking"))),
    })


@insight(
    ins={"clean_sessions": columns_in(analyses.DAILY_SESSION_COLUMNS + events.HOURLY_SESSION_COLUMNS),
         "clean_returns": columns_in(["order_id", "order_time", "line_amount", "is_refund"]),
         "clean_order_lines": columns_in(REFUND_INPUT_COLUMNS)},
    description="Daily, weekly and monthly sessions, buyers, revenue, returns (every clean_returns line, by return "
    "date), refunds (money given back on bought orders, once per order: its order-level `refunded_amount` when the "
    "export gives one, capped at the order's revenue (metadata `refunds_above_revenue`: refunded shipping and taxes "
    "revenue never held), else its `is_refund` lines), net revenue = revenue - refunds (a cancelled/refunded order never was "
    "revenue, so it is not subtracted again), conversion (converted browsing sessions / browsing sessions: an order "
    "is a purchase, not a visit) and AOV, plus weekday and month indices of traffic with 95 % intervals (log-linear "
    "regression on weekday, month and a smooth trend), and conversion by hour of day (UTC) and day of week with "
    "Wilson intervals over sessions that record browsing (events / session exports; orders are purchases by "
    "construction and are left out of conversion).",
    metadata=column_schema(TREND_COLUMNS),
)
def sales_trends(clean_sessions: pl.LazyFrame, clean_returns: pl.LazyFrame, clean_order_lines: pl.LazyFrame) -> dg.Output:
    if no_rows(clean_sessions):
        return no_data(TREND_COLUMNS, "no sessions yet")
    daily = analyses.daily_sales(clean_sessions)
    refunds = order_refunds(clean_order_lines, clean_returns).collect()
    returns = analyses.daily_returns(clean_returns, refunds)
    # every day with sessions or returns (a refunded order's day may have no purchase), so the week and month
    # rows add up to the totals; the seasonality fit takes the days with traffic only
    daily = daily.join(returns, on="session_date", how="full", coalesce=True).sort("session_date") \
        .with_columns(pl.col("sessions", "browsing_sessions", "converted", "purchases", "buyers").fill_null(0),
                      pl.col("revenue", "returns", "refunds").fill_null(0.0)) \
        .with_columns(net_revenue=pl.col("revenue") - pl.col("refunds"))
    revenue, returned, refunded = (float(daily[c].sum()) for c in ("revenue", "returns", "refunds"))
    season = analyses.seasonality(daily.filter(pl.col("sessions") > 0))
    by_time = events.conversion_by_time(clean_sessions)
    table = pl.concat([
        daily.with_columns(grain=pl.lit("day")),
        analyses.rollup(daily, "1w").with_columns(grain=pl.lit("week")),
        analyses.rollup(daily, "1mo").with_columns(grain=pl.lit("month")),
        season.with_columns(grain=pl.concat_str(pl.col("kind"), pl.lit("_index"))).drop("kind"),
        by_time.with_columns(pl.col("level").cast(pl.String)),
    ], how="diagonal_relaxed")
    monthly = analyses.rollup(daily, "1mo")

    def revenue_plot(ax):
        ax.plot(monthly["session_date"].to_list(), monthly["revenue"].to_list(), "o-")
        ax.set_ylabel("revenue per month")

    peak = season.filter(pl.col("kind") == "month").sort("index").tail(1)
    return dg.Output(table, metadata={
        "dagster/row_count": table.height,
        "peak_month": f"{peak['level'][0]} (index {peak['index'][0]:.2f})" if peak.height else "not enough history",
        "revenue": round(revenue, 2),
        "returns": round(returned, 2),
        "refunds": round(refunded, 2),
        "net_revenue": round(revenue - refunded, 2),
        "refunds_above_revenue": round(float(refunds["refund_above_revenue"].sum()), 2),
        "conversion_by_hour": dg.MetadataValue.md(md_table(by_time.filter(pl.col("grain") == "hour_of_day"), 24))
        if by_time.height else "no sessions with browsing and a start time",
        "seasonality": dg.MetadataValue.md(md_table(season, max_rows=20)),
        "monthly_revenue": dg.MetadataValue.md(png_markdown(revenue_plot, "Revenue by month")),
    })


@insight(
    owners=MARKETING,
    ins={"raw_campaigns": ALL_DROPS, "clean_sessions": columns_in(analyses.DAILY_SESSION_COLUMNS)},
    description="Lift of each campaign in raw_campaigns: conversion and revenue-per-session ratio inside the window vs "
    "the weekday/season/trend baseline (quasi-Poisson GLMs, over-dispersion-corrected 95 % intervals: converted "
    "visits with a log(visits) offset, so orders — purchases without a visit — never dilute it, null without 60 days "
    "of visits; revenue with a log(sessions) offset). Without a campaigns file the table is empty and says so.",
    metadata=column_schema(LIFT_COLUMNS),
)
def campaign_lift(clean_sessions: pl.LazyFrame, raw_campaigns: pl.DataFrame) -> dg.Output:
    if raw_campaigns.is_empty() or no_rows(clean_sessions):
        return dg.Output(analyses.campaign_lift(pl.DataFrame(), pl.DataFrame()),
                         metadata={"state": "no campaigns file has been dropped (campaigns*.csv)"})
    campaigns = raw_campaigns.sort("ingested_at").unique("campaign_id", keep="last").sort("start_date")
    lift = analyses.campaign_lift(analyses.daily_sales(clean_sessions), campaigns)
    return dg.Output(lift, metadata={"dagster/row_count": lift.height, "campaigns": dg.MetadataValue.md(md_table(lift))})


@insight(
    ins={"clean_sessions": columns_in(analyses.PURCHASE_SESSION_COLUMNS)},
    description="Cohorts by signup month and by first-purchase month (customers, buyers, AOV, revenue per customer) "
    "and the retention triangle: share of each first-purchase cohort buying again k months later.",
    metadata=column_schema(COHORT_COLUMNS),
)
def cohort_metrics(clean_sessions: pl.LazyFrame, clean_customers: pl.DataFrame) -> dg.Output:
    if no_rows(clean_sessions):
        return no_data(COHORT_COLUMNS, "no sessions yet")
    cohorts, triangle = analyses.cohort_metrics(clean_sessions, clean_customers)
    table = pl.concat([cohorts, triangle.with_columns(kind=pl.lit("retention"))], how="diagonal_relaxed")
    top = cohorts.filter(pl.col("kind") == "signup_month").sort("revenue", descending=True).head(5)

    def heatmap(ax):
        pivot = triangle.filter(pl.col("months_since").is_between(1, 12)).pivot(
            on="months_since", index="cohort", values="retention").sort("cohort")
        cells = pivot.drop("cohort").to_numpy()
        if cells.size == 0:  # less than a month after the first purchase: no retention to draw
            ax.text(0.5, 0.5, "not enough history yet (retention starts one month after a first purchase)",
                    ha="center", va="center", wrap=True)
            ax.set_axis_off()
            return
        ax.imshow(cells, aspect="auto", cmap="Blues")
        ax.set_xlabel("months since first purchase")
        ax.set_ylabel("first-purchase cohort")

    return dg.Output(table, metadata={"dagster/row_count": table.height,
                                      "top_revenue_cohorts": dg.MetadataValue.md(md_table(top)),
                                      "retention_triangle": dg.MetadataValue.md(png_markdown(heatmap, "Retention"))})


@insight(
    ins={"clean_sessions": columns_in(analyses.PURCHASE_SESSION_COLUMNS)},
    owners=MARKETING,
    kinds={"polars", "csv"},
    description="Every pair of categories bought by the same customers: support, confidence, lift, and a "
    "permutation test against a null that keeps each customer's number of distinct categories and each "
    "category's number of buyers exactly (curveball randomisation of the customer × category matrix, Strona et al. "
    "2014, over the customers holding two or more categories; one-sided p from the Pearson III tail of the null's "
    f"mean, spread and skewness, z reported; Benjamini-Hochberg q < 0.05, >= {MIN_TESTED_TOGETHER} customers; at most "
    f"{MAX_ITEMS} categories, beyond {TESTED_CELLS:,} customer × category cells a hash-sample of customers, metadata "
    "`sample`). Heavy buyers and "
    "popular categories explain nothing: only `significant` pairs are findings. "
    "The table keeps every pair; exports/cross_sell.csv holds the significant ones, highest lift first.",
    metadata=column_schema(RULE_COLUMNS),
)
def cross_sell_rules(settings: EcomSettings, clean_sessions: pl.LazyFrame) -> dg.Output:
    rules, how = ((analyses._empty_rules(), {"state": "no sessions yet"}) if no_rows(clean_sessions)
                  else analyses.cross_sell_rules(clean_sessions))
    findings = analyses.cross_sell_export(rules)
    path = write_safe_csv(findings, settings.exports / "cross_sell.csv")
    return dg.Output(rules, metadata={
        "dagster/row_count": rules.height, "significant_rules": findings.height, **how,
        "export": dg.MetadataValue.path(str(path)),
        "findings": dg.MetadataValue.md(md_table(findings) if findings.height else "_no pair is bought together more "
                                        "often than customers' basket sizes and categories' popularity explain_"),
    })


@insight(
    ins={"clean_sessions": columns_in(analyses.EARLY_SESSION_COLUMNS)},
    description="Top-5 % customers by revenue over the history, and what their first 30 days looked like: per-signal "
    "AUC and a logistic model on first-30-day signals evaluated on 30 % held-out customers (precision in the top "
    "5 % of scores vs the 5 % base rate).",
    metadata=column_schema(SIGNAL_COLUMNS),
)
def high_value_early_signals(clean_sessions: pl.LazyFrame) -> dg.Output:
    if no_rows(clean_sessions):
        return no_data(SIGNAL_COLUMNS, "no sessions yet")
    signals, model = analyses.high_value_early_signals(clean_sessions)
    meta = {k: v for k, v in model.items() if isinstance(v, (int, float, str))}
    return dg.Output(signals, metadata={"dagster/row_count": signals.height, **meta,
                                        "signals": dg.MetadataValue.md(md_table(signals))})


@insight(
    owners=MARKETING,
    kinds={"polars", "csv"},
    description="Win-back experiment: purchasers with churn probability >= 0.6 split into control / offer_10 / "
    "offer_20, balanced within each risk tier by a salted SHA-256 order (deterministic); power calculation for a "
    "5-point uplift at alpha 0.05, power 0.8. exports/winback_assignment.csv.",
    metadata=column_schema(ASSIGNMENT_COLUMNS),
)
def winback_assignment(settings: EcomSettings, churn_predictions: pl.DataFrame) -> dg.Output:
    if churn_predictions.is_empty():
        return no_data(ASSIGNMENT_COLUMNS, "no predictions yet")
    salt = f"winback-{churn_predictions['as_of'][0]}"
    assignment, power = analyses.winback_assignment(churn_predictions, salt)
    path = write_safe_csv(assignment, settings.exports / "winback_assignment.csv")
    arms = assignment.group_by("arm").len().sort("arm") if assignment.height else assignment
    return dg.Output(assignment, metadata={"dagster/row_count": assignment.height, "salt": salt, **power,
                                           "arms": dg.MetadataValue.md(md_table(arms)),
                                           "export": dg.MetadataValue.path(str(path))})


@insight(
    ins={"clean_sessions": columns_in(analyses.WINBACK_SESSION_COLUMNS)},
    owners=MARKETING,
    description="Win-back read-out: 90-day return rate per arm after the assignment date, uplift vs control with 95 % "
    "interval and p-value (two-proportion z-test). Says 'waiting for outcomes' until sessions after the assignment "
    "date arrive.",
    metadata=column_schema(RESULT_COLUMNS),
)
def winback_results(winback_assignment: pl.DataFrame, clean_sessions: pl.LazyFrame) -> dg.Output:
    table, state = analyses.winback_results(winback_assignment, clean_sessions)
    if table.is_empty():
        return no_data(RESULT_COLUMNS, state)
    return dg.Output(table, metadata={"state": state, "dagster/row_count": table.height,
                                      "results": dg.MetadataValue.md(md_table(table))})
