"""`ecom-assets generate --shape orders|events`: the same history as order lines or events, and the
product recovers what was planted there (a leaky product, an hour-of-day effect, order revenue)."""

import json
from pathlib import Path

import polars as pl
import pytest

from ecom_assets.cli import main
from ecom_assets.ingest import events, orders
from ecom_assets.ingest.parse import parse_drop
from ecom_assets.ingest.sources import ReturnRule
from ecom_assets.insights.events import MIN_ITEM_SESSIONS, conversion_by_time, event_funnel


def _generate(tmp_path: Path, shape: str) -> tuple[Path, dict]:
    out, truth = tmp_path / shape, tmp_path / f"{shape}_truth"
    assert main(["generate", "--out", str(out), "--customers", "1500", "--days", "240", "--seed", "4",
                 "--shape", shape, "--truth-out", str(truth)]) == 0
    return out, json.loads((truth / "truth.json").read_text())


@pytest.fixture(scope="module")
def event_sample(tmp_path_factory):
    out, truth = _generate(tmp_path_factory.mktemp("gen"), "events")
    parsed = parse_drop(out / "events.csv", "events", "events.csv__x")
    return parsed, events.sessionise(parsed.clean), truth


def test_events_shape_is_accounted_with_its_planted_defects(event_sample) -> None:
    parsed, _, truth = event_sample
    planted = truth["events"][0]
    a = parsed.accounting
    assert a["rows_in"] == planted["events_written"]
    assert a["duplicate"] == planted["double_logged_rows"]
    # the sessions' empty customer ids stay empty in their events: quarantined, never guessed
    assert set(parsed.quarantine["reason"]) <= {"empty customer_id"}
    other_quarantined = (parsed.quarantine["event_type"] == "login").sum()  # logged for a customer without an id
    assert (parsed.clean["event_type"] == "other").sum() + other_quarantined == planted["other_events"]


def test_item_funnel_finds_the_planted_leaky_product(event_sample) -> None:
    _, clean, truth = event_sample
    items = event_funnel(clean, "product_id", MIN_ITEM_SESSIONS)
    worst = items.sort("view_to_purchase").row(0, named=True)
    assert worst["product_id"] == truth["events"][0]["leaky_product"]
    # the worst by a margin: its interval lies below every other product's rate
    assert worst["view_to_purchase_high"] < items.filter(pl.col("product_id") != worst["product_id"])[
        "view_to_purchase"].min()
    assert worst["cart_abandonment"] > 0.9


def test_conversion_by_hour_recovers_the_planted_evening_effect(event_sample) -> None:
    _, clean, truth = event_sample
    sessions = events.event_sessions(clean)
    peak = truth["events"][0]["peak_conversion_hours"]
    hours = conversion_by_time(sessions).filter(grain="hour_of_day")
    in_peak = hours.filter(pl.col("level").is_in(peak)).select(pl.col("purchases").sum() / pl.col("sessions").sum()).item()
    daytime = hours.filter(pl.col("level").is_between(6, 18)).select(
        pl.col("purchases").sum() / pl.col("sessions").sum()).item()
    assert in_peak / daytime == pytest.approx(1.6, rel=0.2)  # planted: x1.6 in the evening hours
    assert hours.sort("conversion")["level"][0] < 6  # and x0.5 at night


def test_orders_shape_revenue_and_returns_match_the_truth(tmp_path: Path) -> None:
    out, truth = _generate(tmp_path, "orders")
    planted = truth["orders"][0]
    parsed = parse_drop(out / "orders.csv", "orders", "orders.csv__x")
    assert parsed.accounting["rows_in"] == planted["lines_written"]
    assert parsed.quarantine.height == planted["lines_without_customer"]
    assert parsed.duplicates == planted["duplicated_lines"]
    lines = orders.mark_returns(parsed.clean, ReturnRule("order_id", prefix="C"))
    sessions = orders.order_sessions(lines)
    assert sessions.height == planted["orders"]
    assert sessions["purchase_amount"].sum() == pytest.approx(planted["order_revenue"], abs=0.01)
    returned = lines.filter("is_return").select((pl.col("quantity").abs() * pl.col("unit_price")).sum()).item()
    assert returned == pytest.approx(planted["cancelled_amount"], abs=0.01)
