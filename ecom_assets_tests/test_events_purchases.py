"""Purchase events that name an order, not a product (Segment `Order Completed`), visitors known only by
their anonymous id, and purchases a tracker logged twice (GA4 re-logs `purchase` on a thank-you page reload)."""

from datetime import date

import dagster as dg
import polars as pl

from ecom_assets.ingest import events, ingest_landing
from ecom_assets.ingest.parse import parse_drop
from ecom_assets.ingest.sources import load_sources, spec_for
from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean

TODAY = date(2026, 11, 24)

# Segment's warehouse tables flattened into one export: `properties.*` become columns, the `products` array of
# Order Completed is not there (nested), `user_id` is empty until the visitor logs in, `anonymous_id` always set
SEGMENT_HEADER = "id,timestamp,event_text,user_id,anonymous_id,product_id,category,price,order_id,revenue,currency"
SEGMENT_SOURCES = """- match: "events_segment*.csv"
  columns: {timestamp: event_time, event_text: event_type, user_id: customer_id, revenue: order_amount}
"""
ANON, OTHER = "9f1c2e7a-4b1d-4e0a-8c55-0d6f1a2b3c4d", "c0ffee00-1111-4222-8333-444455556666"
SEGMENT_ROWS = [
    # anonymous browsing, then login (identify) and the order with the user id
    f"m1,2024-03-04T09:00:00.000Z,Product Viewed,,{ANON},SKU-1,Shoes,59.90,,,",
    f"m2,2024-03-04T09:02:00.000Z,Product Added,,{ANON},SKU-1,Shoes,59.90,,,",
    f"m3,2024-03-04T09:05:00.000Z,Signed In,u-42,{ANON},,,,,,",
    f"m4,2024-03-04T09:06:00.000Z,Order Completed,u-42,{ANON},,,,ORD-1001,64.90,EUR",
    # a visitor who never logs in: browsing kept, under the anonymous id
    f"m5,2024-03-04T11:00:00.000Z,Product Viewed,,{OTHER},SKU-2,Bags,120.00,,,",
    # a logged-in customer on another device: a plain Order Completed
    f"m6,2024-03-04T12:00:00.000Z,Order Completed,u-7,,,,,ORD-1002,30.00,EUR",
]


def parse_segment(rows: list[str], tmp_path, sources: str = SEGMENT_SOURCES, name: str = "events_segment_1.csv"):
    (tmp_path / "sources.yaml").write_text(sources)
    spec = spec_for(name, load_sources(tmp_path))
    return parse_drop(("\n".join([SEGMENT_HEADER, *rows]) + "\n").encode(), "events", f"{name}__abc", TODAY, spec)


def test_order_completed_without_products_is_a_purchase_with_its_order_amount(tmp_path) -> None:
    """Before: every Order Completed row was quarantined ("event without product_id"), revenue 0."""
    parsed = parse_segment(SEGMENT_ROWS, tmp_path)
    assert parsed.quarantine.height == 0, parsed.quarantine["reason"].to_list()
    clean = parsed.clean.sort("line")
    orders = clean.filter(pl.col("event_type") == "purchase")
    assert orders.select("order_id", "order_amount", "product_id").rows() == [
        ("ORD-1001", 64.9, None), ("ORD-1002", 30.0, None)]
    sessions = events.event_sessions(events.sessionise(clean)).sort("customer_id")
    bought = sessions.filter("purchase_made")
    assert bought.select("customer_id", "purchase_amount").rows() == [("u-42", 64.9), ("u-7", 30.0)]


def test_an_anonymous_visitor_is_attributed_to_the_user_its_id_logged_in_as(tmp_path) -> None:
    """Segment writes `user_id` only after identify: the anonymous views and cart before the login belong
    to the user that anonymous id logged in as (one user only); a visitor who never logs in keeps
    `anonymous:<id>`; an event with neither id is quarantined."""
    rows = [*SEGMENT_ROWS, "m7,2024-03-04T13:00:00.000Z,Product Viewed,,,SKU-3,Hats,9.00,,,"]
    parsed = parse_segment(rows, tmp_path)
    assert parsed.quarantine["reason"].to_list() == ["empty customer_id and anonymous_id"]
    clean = events.sessionise(parsed.clean)
    assert clean.sort("line")["customer_id"].to_list() == ["u-42"] * 4 + [f"anonymous:{OTHER}", "u-7"]
    sessions = events.event_sessions(clean).sort("customer_id")
    first = sessions.filter(pl.col("customer_id") == "u-42").row(0, named=True)
    assert (first["product_views"], first["added_to_cart"], first["purchase_made"], first["purchase_amount"]) == (
        1, True, True, 64.9)


def test_an_anonymous_id_seen_with_two_users_is_nobody_s_but_its_own(tmp_path) -> None:
    """A shared device (two users logged in with one anonymous id): its anonymous events cannot be given to
    either user for sure, so they stay under the anonymous id."""
    rows = [f"m1,2024-03-04T09:00:00.000Z,Product Viewed,,{ANON},SKU-1,Shoes,59.90,,,",
            f"m2,2024-03-04T09:05:00.000Z,Signed In,u-1,{ANON},,,,,,",
            f"m3,2024-03-04T19:05:00.000Z,Signed In,u-2,{ANON},,,,,,"]
    clean = parse_segment(rows, tmp_path).clean.sort("line")
    assert clean["customer_id"].to_list() == [f"anonymous:{ANON}", "u-1", "u-2"]


def test_a_purchase_without_product_or_order_amount_is_quarantined_naming_what_to_map(tmp_path) -> None:
    """Without `order_amount` mapped the order's value is unknown: never counted as 0."""
    parsed = parse_segment(SEGMENT_ROWS[-1:], tmp_path, sources=SEGMENT_SOURCES.replace(", revenue: order_amount", ""))
    assert parsed.clean.height == 0
    assert parsed.quarantine["reason"][0].startswith("purchase event without product_id or order_amount")


def test_segment_order_completed_revenue_reaches_clean_sessions(data_dir, instance, resources) -> None:
    (data_dir / "sources.yaml").write_text(SEGMENT_SOURCES)
    drop(data_dir, "events_segment_1.csv", "\n".join([SEGMENT_HEADER, *SEGMENT_ROWS]) + "\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["sessions"]["purchase_amount"].sum() == 94.9
    assert tables["events"].filter(pl.col("order_id") == "ORD-1001")["order_amount"].to_list() == [64.9]
    figures = instance.get_latest_materialization_event(dg.AssetKey("raw_events")).asset_materialization.metadata
    assert (figures["order_level_purchases"].value, figures["anonymous_events"].value) == (2, 1)


# GA4 BigQuery export flattened to one row per item, `ecommerce.transaction_id` as a column
GA4_HEADER = ("event_timestamp,event_name,user_pseudo_id,ga_session_id,transaction_id,item_id,item_category,price,"
              "quantity")
GA4_SOURCES = """- match: "events_ga4*.csv"
  columns: {event_timestamp: event_time, event_name: event_type, user_pseudo_id: customer_id, item_id: product_id,
            item_category: category, ga_session_id: session_id, transaction_id: order_id}
  date_format: epoch_us
"""
USER = "1187604123.1714605000"
GA4_ROWS = [
    f"1714607460000000,view_item,{USER},1714607400,,SH-1,Shoes,89.9,",
    f"1714607700000000,purchase,{USER},1714607400,T-5001,SH-1,Shoes,89.9,1",
    f"1714607700000000,purchase,{USER},1714607400,T-5001,BG-2,Bags,20.0,2",
    # the thank-you page reloaded 40 s later: GA4 logs the same purchase again
    f"1714607740000000,purchase,{USER},1714607400,T-5001,SH-1,Shoes,89.9,1",
    f"1714607740000000,purchase,{USER},1714607400,T-5001,BG-2,Bags,20.0,2",
    # another order of the same product later in the session: a purchase of its own
    f"1714608000000000,purchase,{USER},1714607400,T-5002,SH-1,Shoes,89.9,1",
]


def parse_ga4(rows: list[str], tmp_path):
    (tmp_path / "sources.yaml").write_text(GA4_SOURCES)
    spec = spec_for("events_ga4_20240501.csv", load_sources(tmp_path))
    return parse_drop(("\n".join([GA4_HEADER, *rows]) + "\n").encode(), "events", "events_ga4_20240501.csv__abc",
                      TODAY, spec)


def test_a_purchase_relogged_with_the_same_transaction_id_is_a_counted_duplicate(tmp_path) -> None:
    """Before: the reload's two rows were a second purchase, revenue 219.8 instead of 129.9 + 89.9."""
    parsed = parse_ga4(GA4_ROWS, tmp_path)
    assert parsed.accounting["duplicate"] == 2 and parsed.quarantine.height == 0
    assert sorted(parsed.clean["line"].to_list()) == [2, 3, 4, 7]
    session = events.event_sessions(events.sessionise(parsed.clean)).row(0, named=True)
    assert session["purchase_amount"] == 89.9 + 40.0 + 89.9


def test_an_order_level_event_of_an_order_given_by_its_items_is_a_counted_duplicate(tmp_path) -> None:
    """Snowplow-like: a `transaction` event (the order, with its total) beside its `transaction_item` events
    (the items) of the same order id: the order is counted once, from its items."""
    rows = ["2024-05-01T10:00:00Z,transaction,u-1,S1,T-9,,,,,,99.0",
            "2024-05-01T10:00:00Z,transaction_item,u-1,S1,T-9,P1,shoes,49.5,2,,"]
    text = "event_time,event_type,customer_id,session_id,order_id,product_id,category,price,quantity,brand,order_amount"
    parsed = parse_drop(("\n".join([text, *rows]) + "\n").encode(), "events", "events_sp.csv__abc", TODAY)
    assert parsed.accounting["duplicate"] == 1 and parsed.clean["line"].to_list() == [3]
    assert events.event_sessions(events.sessionise(parsed.clean))["purchase_amount"].to_list() == [99.0]


def test_events_stored_before_order_amount_existed_still_make_sessions(tmp_path) -> None:
    """A raw_events partition written by the previous version has no order_id / order_amount columns: its
    sessions are derived from it as before (its product-less purchases were quarantined then)."""
    text = "event_time,event_type,customer_id,product_id,price\n2024-01-01T10:00:00Z,purchase,U1,P1,5\n"
    clean = events.sessionise(parse_drop(text.encode(), "events", "events_old.csv__abc", TODAY).clean)
    clean.drop("order_id", "order_amount").write_parquet(tmp_path / "old.parquet")
    sessions = events.event_sessions(pl.scan_parquet(tmp_path / "old.parquet"))
    assert sessions.select("purchase_made", "purchase_amount").row(0) == (True, 5.0)


def test_a_data_dir_whose_only_events_drop_predates_order_ids_is_cleaned(data_dir, instance, resources) -> None:
    """A data dir kept from the previous release: its one stored raw_events partition has no order_id /
    order_amount. clean_events is built from it, the two columns null."""
    drop(data_dir, "events_001.csv", "event_time,event_type,customer_id,product_id,price\n"
                                     "2024-01-01T10:00:00Z,view,U1,P1,5\n2024-01-01T10:01:00Z,purchase,U1,P1,5\n")
    ingest_landing(instance, data_dir)
    (stored,) = (data_dir / "warehouse" / "raw_events").glob("*.parquet")
    pl.read_parquet(stored).drop("order_id", "order_amount").write_parquet(stored)  # the old shape
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["events"].height == 2 and tables["events"]["order_amount"].null_count() == 2
    assert tables["sessions"]["purchase_amount"].to_list() == [5.0]


def test_an_order_in_another_currency_is_quarantined_never_added(tmp_path) -> None:
    """Segment's Order Completed carries `currency`: a shop selling in EUR and USD writes both in one export.
    Purchases are added up, so one in another currency than the file's reporting currency (the most common,
    or `currency` declared in sources.yaml) is quarantined, as order lines are; a view is no revenue."""
    rows = [*SEGMENT_ROWS, "m8,2024-03-04T14:00:00.000Z,Order Completed,u-9,,,,,ORD-1003,50.00,USD",
            "m9,2024-03-04T14:10:00.000Z,Product Viewed,u-9,,SKU-4,Hats,9.00,,,USD"]
    parsed = parse_segment(rows, tmp_path)
    assert parsed.quarantine["line"].to_list() == [8]
    assert parsed.quarantine["reason"][0].startswith("currency is not the file's reporting currency EUR")
    assert parsed.clean.filter(pl.col("event_type") == "purchase")["order_amount"].sum() == 94.9
    declared = parse_segment(rows, tmp_path, sources=SEGMENT_SOURCES + "  currency: USD\n")
    assert declared.quarantine["line"].to_list() == [5, 7]


def test_category_funnel_says_how_many_purchasing_sessions_name_no_product(data_dir, instance, resources) -> None:
    """A tryout read Bags 14 purchases in product_funnel and 23 in category_funnel and could not tell why: an
    Order Completed names no product, so category_funnel (events about a product) cannot place it, while
    product_funnel gives the whole session to its most-viewed category. The funnel's metadata now counts them."""
    from ecom_assets.clean import clean_events
    from ecom_assets.ingest import raw_events
    from ecom_assets.insights.events import category_funnel

    (data_dir / "sources.yaml").write_text(SEGMENT_SOURCES)
    rows = [*SEGMENT_ROWS,  # and a session whose purchase names its product: placed under Hats
            "m8,2024-03-05T10:00:00.000Z,Product Viewed,u-9,,SKU-3,Hats,9.00,,,",
            "m9,2024-03-05T10:01:00.000Z,Order Completed,u-9,,SKU-3,Hats,9.00,ORD-1003,,EUR"]
    drop(data_dir, "events_segment_1.csv", "\n".join([SEGMENT_HEADER, *rows]) + "\n")
    ingest_and_clean(data_dir, instance, resources)
    result = dg.materialize([raw_events, clean_events, category_funnel], instance=instance, resources=resources,
                            selection=[category_funnel])
    funnel = result.output_for_node("category_funnel")
    # ORD-1001 and ORD-1002 name no product: the purchase columns are not measurable, even Hats' (see below)
    assert funnel["sessions_purchased"].null_count() == funnel.height
    figures = result.asset_materializations_for_node("category_funnel")[0].metadata
    assert figures["purchasing_sessions_without_product"].value == 2
    assert figures["purchase_columns"].value.startswith("not measurable: 2 purchasing session(s) name no product")


def _sessions(carted: int, bought_with_product: int, bought_without_product: int, browsed: int) -> pl.DataFrame:
    """Clean events of sessions that view and cart SKU-1 (Shoes); some buy it (purchase naming it), some place an
    order-level purchase (no product, as Segment's Order Completed), the rest leave; `browsed` only view it."""
    rows = []
    for i in range(carted):
        rows += [(f"s{i}", "view", "SKU-1", "Shoes"), (f"s{i}", "cart", "SKU-1", "Shoes")]
        if i < bought_with_product:
            rows.append((f"s{i}", "purchase", "SKU-1", "Shoes"))
        elif i < bought_with_product + bought_without_product:
            rows.append((f"s{i}", "purchase", None, None))
    rows += [(f"b{i}", "view", "SKU-1", "Shoes") for i in range(browsed)]
    return pl.DataFrame(rows, schema=["session_id", "event_type", "product_id", "category"], orient="row")


def test_order_level_purchases_leave_the_funnels_purchase_columns_null() -> None:
    """Before: 9 carted sessions, 5 of which placed an order-level purchase, read sessions_purchased 0,
    cart_to_purchase 0.0 and cart_abandonment 1.0 (Wilson 0.70-1.0); truth is 5 of 9 bought (~0.56)."""
    from ecom_assets.insights.events import PURCHASE_COLUMNS, event_funnel

    order_level = event_funnel(_sessions(9, 0, 5, 11), "category")
    (shoes,) = order_level.iter_rows(named=True)
    assert {c: shoes[c] for c in PURCHASE_COLUMNS} == dict.fromkeys(PURCHASE_COLUMNS)
    assert (shoes["sessions_viewed"], shoes["sessions_carted"], shoes["view_to_cart"]) == (20, 9, 9 / 20)
    # one order-level purchase among product-level ones: those sessions may have bought any carted item
    assert event_funnel(_sessions(9, 4, 1, 11), "product_id")["cart_abandonment"].to_list() == [None]
    # every purchasing session names its products: measured
    (measured,) = event_funnel(_sessions(9, 5, 0, 11), "category").iter_rows(named=True)
    assert (measured["sessions_purchased"], measured["carted_not_purchased"]) == (5, 4)
    assert measured["cart_to_purchase"] == 5 / 9 and measured["cart_abandonment"] == 4 / 9
