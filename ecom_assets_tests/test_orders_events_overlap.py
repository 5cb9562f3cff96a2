"""A shop that drops both its orders export and its tracker's events: the tracker records the same orders
(GA4 `purchase` with `transaction_id` = the order's number). Each order counts once — on its order session, the
orders export being the record of money — and every conversion rate is a share of browsing sessions, never of
orders (a purchase without a visit)."""

from datetime import date

import polars as pl

from ecom_assets.clean.tables import count_orders_once
from ecom_assets.features.lifetime import lifetime_aggregates
from ecom_assets.insights import analyses
from ecom_assets.insights.dashboard import kpi_dashboard
from ecom_assets.insights.events import conversion_by_time
from ecom_assets.schemas import PURCHASE_ORDERS
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean

SOURCES = """- match: "orders_shopify*.csv"
  columns: {Name: order_id, Email: customer_id, Created at: order_time, Lineitem sku: product_id,
            Lineitem quantity: quantity, Lineitem price: unit_price, Financial Status: status, Currency: currency}
"""
# a few columns of a Shopify orders export: #1003 was bought with an ad blocker on, the tracker never saw it
SHOPIFY = """Name,Email,Financial Status,Currency,Created at,Lineitem quantity,Lineitem price,Lineitem sku
#1001,mia@example.com,paid,EUR,2025-04-02 10:15:00 +0200,2,18.00,MUG-01
#1001,,,,,1,12.50,BOOK-07
#1002,noah@example.com,paid,EUR,2025-04-03 16:40:00 +0200,1,40.00,LAMP-2
#1003,lea@example.com,paid,EUR,2025-04-04 09:05:00 +0200,1,25.00,TEE-4
"""
# the same shop's GA4-like events (user id = the logged-in e-mail): mia and noah buy #1001 and #1002; ana buys
# #0998, an order the orders export does not hold (placed before its date range); tom's purchase event came
# without a transaction id; ben and zoe only browse
GA4 = """event_time,event_type,customer_id,session_id,product_id,category,price,quantity,order_id,currency
2025-04-02T08:05:00Z,view_item,mia@example.com,1743581100,MUG-01,Kitchen,18.00,,,
2025-04-02T08:09:00Z,add_to_cart,mia@example.com,1743581100,MUG-01,Kitchen,18.00,2,,
2025-04-02T08:15:00Z,purchase,mia@example.com,1743581100,MUG-01,Kitchen,18.00,2,#1001,EUR
2025-04-02T08:15:00Z,purchase,mia@example.com,1743581100,BOOK-07,Books,12.50,1,#1001,EUR
2025-04-03T14:31:00Z,view_item,noah@example.com,1743690660,LAMP-2,Home,40.00,,,
2025-04-03T14:40:00Z,purchase,noah@example.com,1743690660,LAMP-2,Home,40.00,1,#1002,EUR
2025-04-03T18:00:00Z,view_item,ben@example.com,1743703200,MUG-01,Kitchen,18.00,,,
2025-04-03T18:03:00Z,view_item,ben@example.com,1743703200,LAMP-2,Home,40.00,,,
2025-04-01T12:00:00Z,view_item,ana@example.com,1743508800,CAP-3,Apparel,15.00,,,
2025-04-01T12:06:00Z,purchase,ana@example.com,1743508800,CAP-3,Apparel,15.00,1,#0998,EUR
2025-04-04T20:10:00Z,view_item,tom@example.com,1743797400,SOCK-9,Apparel,9.90,,,
2025-04-04T20:12:00Z,purchase,tom@example.com,1743797400,SOCK-9,Apparel,9.90,1,,EUR
2025-04-04T21:00:00Z,view_item,zoe@example.com,1743800400,TEE-4,Apparel,25.00,,,
"""
ORDERS_REVENUE = 48.5 + 40.0 + 25.0
OTHER_EVENT_REVENUE = 15.0 + 9.9  # #0998 (not in the orders export) and tom's purchase without an id


def _figures(tables: dict) -> dict:
    sessions = tables["sessions"]
    meta = tables["result"].asset_materializations_for_node("clean_sessions")[0].metadata
    matched = sessions.filter("purchase_in_orders") if "purchase_in_orders" in sessions.columns else sessions.clear()
    return {"purchases": int(sessions["purchase_made"].sum()),
            "revenue": round(sessions["purchase_amount"].sum(), 2),
            "in_orders": matched["session_id"].sort().to_list(),
            "matched_sessions": getattr(meta.get("event_sessions_purchase_in_orders"), "value", None),
            "matched_amount": getattr(meta.get("event_amount_in_orders"), "value", None)}


def _check_counted_once(tables: dict) -> None:
    """The figures of SHOPIFY + GA4 merged, whichever file came first."""
    assert _figures(tables) == {
        # before: 7 purchases and 226.90 (#1001 and #1002 counted on their order and on their event session)
        "purchases": 3 + 2, "revenue": round(ORDERS_REVENUE + OTHER_EVENT_REVENUE, 2),
        "in_orders": ["mia@example.com#1743581100", "noah@example.com#1743690660"],
        "matched_sessions": 2, "matched_amount": 88.5}
    sessions = tables["sessions"]
    mia = sessions.filter(pl.col("session_id") == "mia@example.com#1743581100").row(0, named=True)
    # the visit converted; its purchase and money are the order's (#1001: 48.50 on its own session)
    assert (mia["purchase_made"], mia["purchase_amount"], mia["purchase_in_orders"]) == (False, 0.0, True)
    assert sessions.filter(pl.col("session_id") == "#1001")["purchase_amount"].to_list() == [48.5]
    # the churn features' inputs: one purchase per order
    history = lifetime_aggregates(sessions.lazy()).collect().sort("customer_id")
    per_customer = dict(zip(history["customer_id"], history["n_purchases"], strict=True))
    assert per_customer["mia@example.com"] == 1.0 and per_customer["noah@example.com"] == 1.0
    assert per_customer["ana@example.com"] == 1.0 and per_customer["tom@example.com"] == 1.0
    assert dict(zip(history["customer_id"], history["revenue"], strict=True))["mia@example.com"] == 48.5


def test_an_order_in_both_exports_counts_once(data_dir, instance, resources) -> None:
    (data_dir / "sources.yaml").write_text(SOURCES)
    drop(data_dir, "orders_shopify.csv", SHOPIFY)
    drop(data_dir, "events_ga4.csv", GA4)
    _check_counted_once(ingest_and_clean(data_dir, instance, resources))


def test_orders_dropped_after_the_events_take_back_their_purchases(data_dir, instance, resources) -> None:
    """The events export lands first (its sessions stored with their purchases), the orders export a day later:
    the stored events part is counted again, the figures are those of both dropped together."""
    (data_dir / "sources.yaml").write_text(SOURCES)
    drop(data_dir, "events_ga4.csv", GA4)
    first = ingest_and_clean(data_dir, instance, resources)
    assert _figures(first)["purchases"] == 4 and _figures(first)["in_orders"] == []
    drop(data_dir, "orders_shopify.csv", SHOPIFY)
    later = ingest_and_clean(data_dir, instance, resources)
    _check_counted_once(later)
    meta = later["result"].asset_materializations_for_node("clean_sessions")[0].metadata
    assert meta["mode"].value == "incremental" and meta["parts_rewritten"].value == 1


def test_a_tracker_logging_the_order_number_without_its_hash_is_matched(data_dir, instance, resources) -> None:
    """Shopify names the order `#1001`; GA4's transaction_id is usually its number, `1001`. Matched only as
    written, every such purchase counted twice with nothing said (a tryout: revenue 272,404 -> 469,983). Both
    orders of arrival."""
    (data_dir / "sources.yaml").write_text(SOURCES)
    drop(data_dir, "events_ga4.csv", GA4.replace(",#100", ",100"))
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "orders_shopify.csv", SHOPIFY)
    _check_counted_once(ingest_and_clean(data_dir, instance, resources))


def test_orders_the_tracker_never_saw_change_nothing(data_dir, instance, resources) -> None:
    """Disjoint order ids (the tracker's transactions are another store's): every purchase counts as before."""
    (data_dir / "sources.yaml").write_text(SOURCES)
    drop(data_dir, "orders_shopify.csv", SHOPIFY.replace("#100", "#200"))
    drop(data_dir, "events_ga4.csv", GA4)
    tables = ingest_and_clean(data_dir, instance, resources)
    assert _figures(tables) == {"purchases": 3 + 4, "revenue": round(ORDERS_REVENUE + 88.5 + OTHER_EVENT_REVENUE, 2),
                                "in_orders": [], "matched_sessions": 0, "matched_amount": 0.0}


def test_event_sessions_stored_before_purchase_orders_are_matched_from_their_events(data_dir, instance,
                                                                                      resources) -> None:
    """A raw_event_sessions partition stored by an earlier version has no purchase_orders: clean_sessions makes
    the column from the drop's stored events, so its orders still count once."""
    (data_dir / "sources.yaml").write_text(SOURCES)
    drop(data_dir, "orders_shopify.csv", SHOPIFY)
    drop(data_dir, "events_ga4.csv", GA4)
    ingest_and_clean(data_dir, instance, resources)
    stored = next((data_dir / "warehouse" / "raw_event_sessions").rglob("*.parquet"))
    pl.read_parquet(stored).drop("purchase_orders").write_parquet(stored)
    _check_counted_once(ingest_and_clean(data_dir, instance, resources))


def test_a_session_with_an_ordered_and_another_purchase_keeps_the_other() -> None:
    """Per order: a session buying #1001 (in the orders data) and #0998 (not) keeps #0998's purchase and money;
    applying the rule again, or after more orders arrived, is the same as once with all of them."""
    sessions = pl.DataFrame({
        "session_id": ["u#1", "u#2", "u#3"], "purchase_made": [True, True, False], "purchase_amount": [63.5, 9.9, 0.0],
        "purchase_orders": [[{"order_id": "#1001", "amount": 48.5}, {"order_id": "#0998", "amount": 15.0}],
                            [{"order_id": None, "amount": 9.9}], None]},
        schema_overrides={"purchase_orders": PURCHASE_ORDERS})
    once = count_orders_once(sessions, pl.Series(["#1001", "#1002"]))
    assert once.select("purchase_made", "purchase_amount", "purchase_in_orders").rows() == [
        (True, 15.0, True), (True, 9.9, False), (False, 0.0, False)]
    assert count_orders_once(once, pl.Series(["#1001", "#1002"])).equals(once)
    both = count_orders_once(once, pl.Series(["#1001", "#0998"]))
    assert both.row(0, named=True)["purchase_made"] is False and both["purchase_amount"].to_list()[0] == 0.0


def test_conversion_counts_browsing_sessions_only(data_dir, instance, resources, tmp_path) -> None:
    """Orders and events in one data folder: 9 sessions of which 3 are orders (no visit). Conversion is 4 of the
    6 browsing sessions (mia, noah, ana, tom); before, the dashboard read 7 / 9 = 77.8 %, the daily rows counted
    orders as converted visits and the funnel counted an order as a viewed-and-bought session."""
    (data_dir / "sources.yaml").write_text(SOURCES)
    drop(data_dir, "orders_shopify.csv", SHOPIFY)
    drop(data_dir, "events_ga4.csv", GA4)
    tables = ingest_and_clean(data_dir, instance, resources)
    sessions = tables["sessions"]
    assert sessions.height == 9
    output = kpi_dashboard(settings=EcomSettings(data_dir=str(tmp_path / "dash")), clean_sessions=sessions.lazy(),
                           clean_returns=tables["returns"].lazy(), clean_order_lines=tables["order_lines"].lazy(),
                           clean_events=tables["events"].lazy(),
                           churn_predictions=pl.DataFrame(), sales_trends=pl.DataFrame(), product_funnel=pl.DataFrame(),
                           customer_segments=pl.DataFrame(), cohort_metrics=pl.DataFrame(),
                           cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    tiles = dict(zip(output.value["kpi"], output.value["value"], strict=True))
    assert tiles["conversion, last 28 days"] == "66.7%"
    assert tiles["revenue, all time"] == "138 EUR"  # 113.50 of orders + 24.90 of purchases only the tracker saw
    daily = analyses.daily_sales(sessions)
    assert int(daily["browsing_sessions"].sum()) == 6 and int(daily["converted"].sum()) == 4
    week = analyses.rollup(daily, "1w")
    assert week["conversion"].to_list() == [4 / 6]  # 2025-03-31 .. 04-06: one week
    april_4 = daily.filter(pl.col("session_date") == date(2025, 4, 4)).row(0, named=True)
    # lea's order, tom's purchase, zoe's visit: 1 of 2 visits converted, not 2 of 3 sessions
    assert (april_4["sessions"], april_4["browsing_sessions"], april_4["conversion"]) == (3, 2, 0.5)
    funnel = {r["category"]: r for r in analyses.product_funnel(sessions).iter_rows(named=True)}
    # Home: noah's visit (bought) and ben's; the #1002 order is no view. Its money is the order's, under the
    # order's category: `unknown` here, the export has no category column
    assert (funnel["Home"]["views"], funnel["Home"]["purchases"], funnel["Home"]["revenue"]) == (2, 1, 0.0)
    assert (funnel["unknown"]["views"], funnel["unknown"]["revenue"]) == (0, ORDERS_REVENUE)
    assert funnel["Kitchen"]["views"] == 1 and funnel["Kitchen"]["purchases"] == 1  # mia's; #1001 is no view
    hourly = conversion_by_time(sessions).filter(pl.col("grain") == "hour_of_day")
    assert int(hourly["sessions"].sum()) == 6 and int(hourly["purchases"].sum()) == 4
