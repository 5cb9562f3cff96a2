"""kpi_dashboard reflects the registry and the data: rebuilt when the churn list is rescored, dated by the
data, a one-day last week drawn apart (not a revenue collapse), currency from the settings, the previous
period compared, segment counts and revenue share on the page."""

import html
from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl

from ecom_assets.insights import analyses
from ecom_assets.insights.dashboard import PERIOD_DAYS, kpi_dashboard
from ecom_assets.settings import EcomSettings

# a sessions-only shop: no order lines
NO_RETURNS = pl.DataFrame(schema={"order_id": pl.String, "order_time": pl.Datetime("us", "UTC"), "line_amount": pl.Float64,
                                  "is_refund": pl.Boolean, "source_file": pl.String})
NO_LINES = pl.DataFrame(schema={"order_id": pl.String, "order_time": pl.Datetime("us", "UTC"), "line_amount": pl.Float64,
                                "refunded_amount": pl.Float64, "discount_amount": pl.Float64, "currency": pl.String,
                                "source_file": pl.String})
LAST = date(2024, 6, 3)  # a Monday: the last week holds one day of data


def sessions(days: int = 120, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40 * days
    day = rng.integers(0, days, n)
    buy = rng.random(n) < 0.2
    return pl.DataFrame({
        "customer_id": [f"C{c}" for c in rng.integers(0, 400, n)],
        "session_date": [LAST - timedelta(days=int(d)) for d in day],
        "product_viewed": rng.choice(["Books", "Home", "unknown"], n).tolist(),
        "added_to_cart": (rng.random(n) < 0.3).tolist(), "purchase_made": buy.tolist(),
        "purchase_amount": np.where(buy, rng.gamma(2, 30, n), 0.0).tolist(),
        "source_file": "sessions_2024.csv__5e1f0a",
    })


def sales_trends(frame: pl.DataFrame) -> pl.DataFrame:
    """The sales_trends table the dashboard reads: daily and weekly rows of `frame`."""
    daily = analyses.daily_sales(frame)
    return pl.concat([daily.with_columns(grain=pl.lit("day")),
                      analyses.rollup(daily, "1w").with_columns(grain=pl.lit("week"))], how="diagonal_relaxed")


def test_page_is_dated_marks_the_partial_week_and_compares_periods(tmp_path) -> None:
    settings = EcomSettings(data_dir=str(tmp_path / "data"), currency="GBP")
    frame = sessions()
    trends = sales_trends(frame)
    customers = frame.group_by("customer_id").agg(revenue=pl.col("purchase_amount").sum())
    segments = customers.with_columns(
        segment=pl.when(pl.col("revenue") > customers["revenue"].median()).then(pl.lit("high_ltv"))
        .otherwise(pl.lit("occasional")), churn_probability=pl.lit(0.3))
    predictions = pl.DataFrame({"customer_id": ["C1", "C2", "C3"], "risk_tier": ["high", "high", "low"]})
    output = kpi_dashboard(settings=settings, clean_sessions=frame.lazy(), clean_returns=NO_RETURNS.lazy(), clean_order_lines=NO_LINES.lazy(), clean_events=pl.LazyFrame(), churn_predictions=predictions,
                           sales_trends=trends, product_funnel=analyses.product_funnel(frame),
                           customer_segments=segments, cohort_metrics=pl.DataFrame(),
                           cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    page = (settings.reports / "dashboard.html").read_text()
    assert f"Data as of {LAST}" in page and output.metadata["as_of"].value == str(LAST)
    assert "The last week holds 1 of 7 days of data" in page
    assert "GBP" in page and "EUR" not in page
    tiles = {row["kpi"]: row for row in output.value.iter_rows(named=True)}
    revenue = tiles[f"revenue, last {PERIOD_DAYS} days"]
    recent = frame.filter(pl.col("session_date") > LAST - timedelta(days=PERIOD_DAYS))["purchase_amount"].sum()
    before = frame.filter(pl.col("session_date").is_between(LAST - timedelta(days=2 * PERIOD_DAYS - 1),
                                                            LAST - timedelta(days=PERIOD_DAYS)))["purchase_amount"].sum()
    assert revenue["value"] == f"{recent:,.0f} GBP"
    assert revenue["change"] == f"{recent / before - 1:+.1%} vs the previous {PERIOD_DAYS} days"
    # a rate's change in percentage points, never a relative change of a rate
    window = frame.filter(pl.col("session_date") > LAST - timedelta(days=PERIOD_DAYS))
    earlier = frame.filter(pl.col("session_date").is_between(LAST - timedelta(days=2 * PERIOD_DAYS - 1),
                                                             LAST - timedelta(days=PERIOD_DAYS)))
    points = (window["purchase_made"].mean() - earlier["purchase_made"].mean()) * 100
    assert tiles[f"conversion, last {PERIOD_DAYS} days"]["change"] == f"{points:+.1f} pp vs the previous {PERIOD_DAYS} days"
    assert tiles["high churn risk"]["value"] == "2"
    # segment counts and revenue shares are on the page itself, not behind a click
    high = segments.filter(pl.col("segment") == "high_ltv")
    assert f"<td>high_ltv</td><td>{high.height}</td>" in page
    assert f"<td>{high['revenue'].sum() / segments['revenue'].sum():.1%}</td>" in page


def test_a_short_history_has_no_previous_period(tmp_path) -> None:
    settings = EcomSettings(data_dir=str(tmp_path / "data"))
    frame = sessions(days=40)
    output = kpi_dashboard(settings=settings, clean_sessions=frame.lazy(), clean_returns=NO_RETURNS.lazy(), clean_order_lines=NO_LINES.lazy(), clean_events=pl.LazyFrame(), churn_predictions=pl.DataFrame(),
                           sales_trends=pl.DataFrame(), product_funnel=pl.DataFrame(),
                           customer_segments=pl.DataFrame(), cohort_metrics=pl.DataFrame(),
                           cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    assert output.value.filter(pl.col("kpi").str.starts_with("revenue, last"))["change"][0] == \
        "no whole previous period yet"


def test_rebuilt_with_the_churn_list_once_it_exists_and_after_each_retrain() -> None:
    """The dashboard is a daily report that also follows the churn list: a drop refresh rebuilds it
    once the daily reports it reads exist, and a successful retrain requests it (promotion re-scores
    the list in that run), so the page never names a stale champion."""
    from dagster._core.test_utils import create_run_for_test

    from ecom_assets.jobs import DASHBOARD, dashboard_after_retrain_sensor, refreshed_by_drops

    sessions_drop = [dg.AssetKey("raw_sessions")]
    assert DASHBOARD not in refreshed_by_drops(sessions_drop, has_model=True)  # before the first daily refresh
    assert DASHBOARD in refreshed_by_drops(sessions_drop, has_model=True, dashboard=True)
    with dg.instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="churn_retrain_job", status=dg.DagsterRunStatus.SUCCESS)

        def evaluate():
            context = dg.build_run_status_sensor_context(
                sensor_name="dashboard_after_retrain_sensor", dagster_instance=instance,
                dagster_run=run, dagster_event=dg.DagsterEvent("PIPELINE_SUCCESS", "churn_retrain_job"))
            return dashboard_after_retrain_sensor(context)

        assert isinstance(evaluate(), dg.SkipReason)  # no dashboard yet: the first daily refresh builds it
        instance.report_runless_asset_event(dg.AssetMaterialization("kpi_dashboard"))
        request = evaluate()
        assert isinstance(request, dg.RunRequest) and request.asset_selection == [DASHBOARD]


def orders_only_sessions(days: int = 70, seed: int = 3) -> pl.DataFrame:
    """What a shop that exports only orders (Shopify-style lines, two per order) becomes in clean_sessions:
    one purchased session per order, no browsing time, no page views (ingest.orders.order_sessions)."""
    from datetime import datetime, timezone

    from ecom_assets.ingest.orders import order_sessions

    rng = np.random.default_rng(seed)
    n = 300
    when = [datetime(2024, 6, 3, 12, tzinfo=timezone.utc) - timedelta(days=int(d), hours=int(h))
            for d, h in zip(rng.integers(0, days, n), rng.integers(0, 10, n))]
    orders = pl.DataFrame({"order_id": [f"#{1001 + i}" for i in range(n)], "customer_id": [f"C{c}" for c in rng.integers(0, 90, n)],
                           "order_time": when, "amount": rng.gamma(2, 60, n)})
    lines = pl.concat([orders.with_columns(product_id=pl.lit(f"SKU-{k}"), category=pl.lit(cat), line=pl.int_range(2 + k, 2 * n + 2 + k, 2),
                                           line_amount=pl.col("amount") * share)
                       for k, (cat, share) in enumerate((("Kitchen", 0.7), ("Garden", 0.3)))])
    lines = lines.with_columns(order_date=pl.col("order_time").dt.date(), is_return=pl.lit(False), quantity=pl.lit(1.0),
                               source_file=pl.lit("orders.csv__abc"), order_time=pl.col("order_time").dt.replace_time_zone(None)
                               .dt.replace_time_zone("UTC"))
    sessions = order_sessions(lines)
    assert sessions["purchase_made"].all() and sessions["browsing_time_sec"].null_count() == sessions.height
    return sessions.with_columns(page_views=pl.lit(None, pl.Int64))


def test_orders_only_data_has_no_conversion_and_money_is_written_as_money(tmp_path) -> None:
    settings = EcomSettings(data_dir=str(tmp_path / "data"), currency="EUR")
    frame = orders_only_sessions()
    trends = sales_trends(frame)
    # two segments whose revenue .3g would print as 4.35e+04 and 1.23e+03
    segments = pl.DataFrame({"customer_id": ["A", "B", "C"], "segment": ["high_ltv", "high_ltv", "occasional"],
                             "revenue": [30000.0, 13512.5, 1234.0], "churn_probability": [0.2, 0.3, 0.6]})
    output = kpi_dashboard(settings=settings, clean_sessions=frame.lazy(), clean_returns=NO_RETURNS.lazy(), clean_order_lines=NO_LINES.lazy(), clean_events=pl.LazyFrame(),
                           churn_predictions=pl.DataFrame(), sales_trends=trends,
                           product_funnel=analyses.product_funnel(frame), customer_segments=segments,
                           cohort_metrics=pl.DataFrame(), cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    page = (settings.reports / "dashboard.html").read_text()
    tiles = {row["kpi"]: row for row in output.value.iter_rows(named=True)}
    conversion = tiles[f"conversion, last {PERIOD_DAYS} days"]
    assert conversion["value"] == "n/a — orders-only data (no browsing sessions)" and conversion["change"] == ""
    assert "100.0%" not in conversion["value"] and "View → purchase conversion by category" not in page
    assert "n/a — orders-only data (no browsing sessions)" in page
    assert "4.35e+04" not in page and "1.23e+03" not in page
    assert "<td>high_ltv</td><td>2</td><td>66.7%</td><td>43,512.50</td><td>97.2%</td>" in page
    assert "<td>1,234.00</td>" in page and "revenue (EUR)" in page
    revenue = frame.filter(pl.col("session_date") > LAST - timedelta(days=PERIOD_DAYS))["purchase_amount"].sum()
    assert tiles[f"revenue, last {PERIOD_DAYS} days"]["value"] == f"{revenue:,.0f} EUR"
    assert '"tickformat":",.0f"' in page  # chart axes in whole money units with separators, not 43.5k


def test_a_browsed_shop_still_shows_its_conversion(tmp_path) -> None:
    settings = EcomSettings(data_dir=str(tmp_path / "data"))
    frame = sessions(days=60).with_columns(browsing_time_sec=pl.lit(None, pl.Float64), page_views=pl.lit(None, pl.Int64))
    output = kpi_dashboard(settings=settings, clean_sessions=frame.lazy(), clean_returns=NO_RETURNS.lazy(), clean_order_lines=NO_LINES.lazy(), clean_events=pl.LazyFrame(),
                           churn_predictions=pl.DataFrame(), sales_trends=pl.DataFrame(), product_funnel=pl.DataFrame(),
                           customer_segments=pl.DataFrame(), cohort_metrics=pl.DataFrame(),
                           cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    recent = frame.filter(pl.col("session_date") > LAST - timedelta(days=PERIOD_DAYS))
    value = output.value.filter(pl.col("kpi") == f"conversion, last {PERIOD_DAYS} days")["value"][0]
    assert value == f"{recent['purchase_made'].mean():.1%}"  # sessions without a purchase are browsing


def test_serving_line_says_what_the_cli_says(tmp_path) -> None:
    """A young shop serves nothing and a no-skill classic serves the base rate: never "the calibrated classic
    baseline" just because there is no champion."""
    from ecom_assets.churn import registry
    from ecom_assets.insights.dashboard import model_status

    settings = EcomSettings(data_dir=str(tmp_path / "data"))
    registry.write_card(settings.models, "v0001", {
        "version": "v0001", "trigger": "initial", "status": "insufficient_history",
        "status_reason": "120 days seen: too little history for a 90-day churn label"})
    young = model_status(settings)
    assert "not enough history to estimate even the classic baseline" in young and "calibrated classic" not in young
    registry.save_baseline(settings.models, "v0001", {"classic": "recency", "classic_skill": {
        "has_skill": False, "classic": "recency", "holdout_auc": 0.512, "ci_low": -0.031, "ci_high": 0.055}})
    no_skill = model_status(settings)
    assert "the base rate, no skill" in no_skill and "holdout AUC 0.512" in no_skill
    assert "calibrated classic baseline" not in no_skill
    assert registry.serving_in_words(settings.models) in html.unescape(no_skill)
