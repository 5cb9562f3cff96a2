"""orders*.csv: order lines -> clean_order_lines / clean_returns / one purchased session per order."""

from datetime import date

import polars as pl

from ecom_assets.ingest import orders
from ecom_assets.ingest.parse import parse_drop
from ecom_assets.ingest.sources import ReturnRule
from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean, quarantine

TODAY = date(2026, 11, 24)
# A Shopify-like line-item export: line_amount after discount, status, currency; one refunded order,
# a POS line without a customer, a line exported twice, an order over two categories, and the last
# line cut off mid-row by an interrupted download.
SHOPIFY = """order_id,customer_id,order_time,product_id,product_name,category,quantity,line_amount,status,currency
#1001,C1,2024-03-01T09:15:00Z,SKU-1,Mug,Home,2,18.00,paid,usd
#1001,C1,2024-03-01T09:15:00Z,SKU-7,Novel,Books,1,12.50,paid,usd
#1001,C1,2024-03-01T09:15:00Z,SKU-7,Novel,Books,1,12.50,paid,usd
#1002,C2,2024-03-02 14:00:00+01:00,SKU-9,Lamp,Home,1,40.00,refunded,usd
#1003,,2024-03-02T15:00:00Z,SKU-1,Mug,Home,1,9.00,paid,usd
#1004,C1,2024-03-05T10:00:00Z,SKU-3,Atlas,Books,1,30.00,paid,usd
#1004,C1,2024-03-05T10:00:00Z,SKU-1,Mug,Home,-1,-9.00,paid,usd
#1005,C3,2024-03-06T10:00:00Z,SKU-3,Atlas,Books,1,30"""


def parse(text: str):
    return parse_drop(text.encode(), "orders", "orders_x.csv__abc", today=TODAY)


def test_every_line_has_one_fate_and_lines_without_customer_are_counted() -> None:
    parsed = parse(SHOPIFY)
    a = parsed.accounting
    assert (a["rows_in"], a["clean"], a["quarantined"], a["duplicate"]) == (8, 5, 2, 1)
    reasons = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert reasons[6] == "empty customer_id"
    assert reasons[9].startswith("truncated last line")


def test_returns_are_marked_with_a_reason_and_never_become_purchases() -> None:
    lines = orders.mark_returns(parse(SHOPIFY).clean)
    returns = dict(zip(lines.filter("is_return")["line"], lines.filter("is_return")["return_reason"]))
    assert returns == {5: "status 'refunded'", 8: "negative quantity"}
    sessions = orders.order_sessions(lines)
    # #1002 is only a refund: no purchase; #1004 keeps its bought line, its return goes to clean_returns
    assert sessions["session_id"].to_list() == ["#1001", "#1004"]
    assert sessions["purchase_amount"].to_list() == [30.5, 30.0]
    assert sessions["purchase_made"].all() and sessions["browsing_time_sec"].is_null().all()


def test_session_takes_the_category_with_the_largest_line_value_and_the_earliest_time() -> None:
    lines = orders.mark_returns(parse(SHOPIFY).clean)
    first = orders.order_sessions(lines).row(0, named=True)
    assert first["product_viewed"] == "Home"  # 18.00 of mugs beats 12.50 of books
    assert first["session_date"] == date(2024, 3, 1) and first["line"] == 2


def test_a_missing_category_becomes_unknown_never_a_product_id() -> None:
    # UCI-like export without a category column (order A), and an order whose biggest line has no
    # category (order B): a product id must never stand in for a category
    text = ("order_id,customer_id,order_time,product_id,quantity,unit_price\n"
            "A,C1,2024-01-01,P1,1,5\nA,C1,2024-01-01,P2,3,4\nA,C1,2024-01-01,P1,1,5\n")
    lines = orders.mark_returns(parse(text).clean)
    assert orders.order_sessions(lines)["product_viewed"].to_list() == ["unknown"]
    mixed = ("order_id,customer_id,order_time,product_id,quantity,unit_price,category\n"
             "B,C1,2024-01-01,1000501,9,40,\nB,C1,2024-01-01,P7,1,2,Garden\n")
    assert orders.order_sessions(orders.mark_returns(parse(mixed).clean))["product_viewed"].to_list() == ["Garden"]


def test_declared_prefix_rule_marks_cancellation_invoices() -> None:
    text = ("order_id,customer_id,order_time,product_id,quantity,unit_price\n"
            "536365,17850,2010-12-01 08:26,85123A,6,2.55\nC536379,14527,2010-12-01 09:41,D,1,27.50\n")
    lines = orders.mark_returns(parse(text).clean, ReturnRule("order_id", prefix="C"))
    assert lines["is_return"].to_list() == [False, True]
    assert lines["return_reason"][1] == "declared in sources.yaml: order_id starts with 'C'"


def test_header_without_price_or_amount_is_rejected() -> None:
    import pytest

    from ecom_assets.ingest.parse import FileRejected
    with pytest.raises(FileRejected, match="unit_price or line_amount"):
        parse("order_id,customer_id,order_time,product_id,quantity\nA,C1,2024-01-01,P1,1\n")


def test_orders_drop_flows_into_the_clean_tables(data_dir, instance, resources) -> None:
    drop(data_dir, "orders_march.csv", SHOPIFY + ",paid,usd\n")  # the last line complete this time
    tables = ingest_and_clean(data_dir, instance, resources)
    sessions = tables["sessions"].sort("session_id")
    assert sessions["session_id"].to_list() == ["#1001", "#1004", "#1005"]
    assert sessions["purchase_amount"].to_list() == [30.5, 30.0, 30.0]
    assert sessions["session_start"].dt.hour().to_list() == [9, 10, 10]
    assert tables["order_lines"].height == 4 and tables["returns"].height == 2
    assert tables["returns"]["line_amount"].abs().sum() == 49.0  # a refund keeps its positive amount
    assert quarantine(data_dir, "orders")["reason"].to_list() == ["empty customer_id"]


def test_a_later_drop_replaces_an_order_as_a_whole(data_dir, instance, resources) -> None:
    header = "order_id,customer_id,order_time,product_id,quantity,unit_price\n"
    drop(data_dir, "orders_1.csv", header + "A,C1,2024-01-01,P1,1,5\nA,C1,2024-01-01,P2,1,7\nB,C2,2024-01-02,P1,1,5\n")
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "orders_2.csv", header + "A,C1,2024-01-01,P1,1,5\nC,C2,2024-01-03,P1,2,5\n")  # A lost P2
    tables = ingest_and_clean(data_dir, instance, resources)
    lines = tables["order_lines"]
    assert sorted(lines["order_id"].to_list()) == ["A", "B", "C"]
    metadata = tables["result"].asset_materializations_for_node("clean_order_lines")[0].metadata
    assert (metadata["duplicates_across_files"].value, metadata["superseded_by_later_drop"].value) == (1, 1)
    amounts = dict(zip(tables["sessions"]["session_id"], tables["sessions"]["purchase_amount"]))
    assert amounts == {"A": 5.0, "B": 5.0, "C": 10.0}
    assert pl.Series(lines["line_amount"]).sum() == sum(amounts.values())


# UCI Online Retail as downloaded: its own column names, US month-first times without seconds or zone,
# float-formatted customer ids, `C` cancellation invoices, lines without a customer (whole invoices and
# single lines), a postage line, a line exported twice, a zero-price gift, an extra Country column.
UCI = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850.0,United Kingdom
536370,22728,ALARM CLOCK BAKELIKE PINK,24,12/1/2010 8:45,3.75,12583.0,France
536370,POST,POSTAGE,3,12/1/2010 8:45,18,12583.0,France
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527.0,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,12/1/2010 9:49,4.65,15311.0,United Kingdom
536414,22139,,56,12/1/2010 11:52,0,,United Kingdom
536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,12/1/2010 14:32,2.51,,United Kingdom
536981,22065,CHRISTMAS PUDDING TRINKET POT,12,12/3/2010 14:26,0,14911.0,EIRE
"""
UCI_SOURCES = """- match: "orders_*.csv"
  columns: {InvoiceNo: order_id, StockCode: product_id, Description: product_name, Quantity: quantity,
            InvoiceDate: order_time, UnitPrice: unit_price, CustomerID: customer_id}
  date_format: "%m/%d/%Y %H:%M"
"""


def test_uci_online_retail_with_only_columns_and_date_format_declared(data_dir, instance, resources) -> None:
    (data_dir / "sources.yaml").write_text(UCI_SOURCES)
    drop(data_dir, "orders_online_retail.csv", UCI)
    tables = ingest_and_clean(data_dir, instance, resources)
    # careful per-order reference: invoices not starting with C, lines with a customer, duplicates once
    reference = {"536365": 6 * 2.55 + 6 * 3.39, "536366": 6 * 1.85, "536370": 24 * 3.75 + 3 * 18, "536981": 0.0}
    got = dict(zip(tables["sessions"]["session_id"], tables["sessions"]["purchase_amount"]))
    assert got.keys() == reference.keys()
    assert all(abs(got[k] - v) < 1e-9 for k, v in reference.items())
    assert tables["sessions"]["session_date"].cast(pl.String).to_list().count("2010-12-01") == 3
    assert tables["sessions"]["session_start"].dt.strftime("%H:%M").sort().to_list()[0] == "08:26"
    # cancellations: negative quantities, never purchases; lines without a customer: quarantined, counted
    assert sorted(tables["returns"]["order_id"].to_list()) == ["C536379", "C536383"]
    assert quarantine(data_dir, "orders")["reason"].to_list() == ["empty customer_id"] * 2
    accounting = tables["result"].asset_materializations_for_node("clean_order_lines")
    assert accounting and tables["order_lines"].height == 6


def test_run_on_uci_orders_alone_exits_0(tmp_path) -> None:
    from ecom_assets.cli import main

    data = tmp_path / "data"
    (data / "landing").mkdir(parents=True)
    (data / "sources.yaml").write_text(UCI_SOURCES)
    (data / "landing" / "orders_retail.csv").write_text(UCI)
    assert main(["run", "--data-dir", str(data), "--no-automation"]) == 0
    sessions = pl.read_parquet(data / "warehouse" / "clean_sessions" / "part-*.parquet")
    assert sessions.height == 4 and sessions["unknown_customer"].all()  # no customers file: kept, flagged


# A music store's purchase log exported one row per order with its total (no product column at all),
# and the same shop's line export where one line lost its SKU.
ORDER_LEVEL = """order_id,customer_id,order_time,quantity,line_amount
10001,00001,1997-01-01,1,11.77
10002,00002,1997-01-12,1,12.00
10003,00002,1997-01-12,5,77.00
10004,00003,1997-01-02,2,20.76
"""


def test_an_order_level_log_without_products_is_read_as_unknown_products() -> None:
    parsed = parse(ORDER_LEVEL)
    assert parsed.accounting["clean"] == 4 and parsed.accounting["quarantined"] == 0
    assert parsed.clean["product_id"].unique().to_list() == ["unknown"]
    sessions = orders.order_sessions(orders.mark_returns(parsed.clean)).sort("session_id")
    assert sessions["purchase_amount"].to_list() == [11.77, 12.0, 77.0, 20.76]
    assert sessions["customer_id"].to_list() == ["00001", "00002", "00002", "00003"]  # leading zeros kept


def test_a_line_without_a_product_in_a_file_with_products_is_quarantined() -> None:
    """Neither a product id nor a name: the line is unreadable, and its order (read in part it would be a smaller
    purchase) is quarantined with it."""
    text = "order_id,customer_id,order_time,product_id,quantity,unit_price\nA,C1,2024-01-01,P1,1,5\nA,C1,2024-01-01,,2,7\n"
    parsed = parse(text)
    assert parsed.accounting["clean"] == 0
    assert parsed.quarantine["reason"].to_list() == [
        "another line of this order_id is quarantined (line 3: empty product_id and product_name), so the order is "
        "quarantined whole, never counted as a smaller purchase: 'A'", "empty product_id and product_name"]
    assert parsed.quarantine["line"].to_list() == [2, 3]


def test_an_orders_export_alone_gives_significant_basket_pairs_end_to_end(data_dir, instance, resources) -> None:
    import dagster as dg
    import numpy as np

    from ecom_assets.clean import clean_events, clean_order_lines
    from ecom_assets.ingest import raw_events, raw_orders
    from ecom_assets.insights.events import basket_pairs

    # A WooCommerce-like line-item export, no sessions or events file: 1,500 orders of 1-6 products
    # (popular products more often); customers who buy a grinder (SKU-02) add beans (SKU-07) to a
    # third of those orders. Nothing else goes together.
    rng = np.random.default_rng(21)
    popularity = 1 / np.arange(1, 13) ** 0.7
    rows = ["order_id,customer_id,order_time,product_id,category,quantity,unit_price"]
    for order in range(1500):
        products = set(rng.choice(12, min(rng.geometric(0.4), 6), replace=False, p=popularity / popularity.sum()))
        if 2 in products and rng.random() < 0.33:
            products.add(7)
        for product in sorted(products):
            rows.append(f"W{order:05d},C{order % 400:04d},2024-0{1 + order % 9}-1{order % 10}T10:00:00Z,"
                        f"SKU-{product:02d},{'coffee' if product in (2, 7) else f'range{product % 4}'},1,9.50")
    drop(data_dir, "orders_woo.csv", "\n".join(rows) + "\n")
    ingest_and_clean(data_dir, instance, resources)
    result = dg.materialize([raw_orders, raw_events, clean_order_lines, clean_events, basket_pairs], instance=instance,
                            resources=resources, selection=[basket_pairs])
    assert result.success
    pairs = result.output_for_node("basket_pairs")
    assert set(pairs["relation"]) == {"co_purchased"}  # no events: nothing co-viewed
    found = set(pairs.filter("significant").select("level", "item_a", "item_b").iter_rows())
    assert found == {("product", "SKU-02", "SKU-07")}
    export = pl.read_csv(data_dir / "exports" / "basket_pairs.csv")
    assert export.height == 1 and export["significant"].all() and export["item_b"][0] == "SKU-07"
    assert export["lift"][0] == round(export["lift"][0], 4)
    metadata = result.asset_materializations_for_node("basket_pairs")[0].metadata
    assert metadata["significant_pairs"].value == 1


# Shopify financial statuses: a paid order; a partially_refunded order (two items bought, one given back as
# a -1 line); a refunded order; a cancelled order that also carries a -1 line; a paid order a month later.
REFUNDS = """order_id,customer_id,order_time,product_id,category,quantity,unit_price,status,currency
#2001,C1,2024-03-01T09:00:00Z,SKU-1,Home,2,10.00,paid,usd
#2002,C2,2024-03-04T10:00:00Z,SKU-1,Home,1,10.00,partially_refunded,usd
#2002,C2,2024-03-04T10:00:00Z,SKU-2,Books,1,25.00,partially_refunded,usd
#2002,C2,2024-03-04T10:00:00Z,SKU-2,Books,-1,25.00,partially_refunded,usd
#2003,C3,2024-03-12T11:00:00Z,SKU-3,Books,3,8.00,refunded,usd
#2004,C1,2024-04-02T12:00:00Z,SKU-1,Home,1,10.00,cancelled,usd
#2004,C1,2024-04-02T12:00:00Z,SKU-1,Home,-1,10.00,cancelled,usd
#2005,C4,2024-04-20T08:00:00Z,SKU-2,Books,2,25.00,paid,usd
"""


def test_a_partially_refunded_order_is_bought_and_only_its_refund_line_is_a_refund() -> None:
    lines = orders.mark_returns(parse(REFUNDS).clean).with_columns(is_refund=orders.is_refund())
    returns = lines.filter("is_return")
    assert dict(zip(returns["line"], returns["return_reason"])) == {
        5: "negative quantity", 6: "status 'refunded'", 7: "status 'cancelled'", 8: "status 'cancelled'"}
    # only the -1 line of the bought order gives money back; the cancelled order's -1 line never was revenue
    assert returns.filter("is_refund")["line"].to_list() == [5]
    sessions = orders.order_sessions(lines).sort("session_id")
    assert dict(zip(sessions["session_id"], sessions["purchase_amount"])) == {"#2001": 20.0, "#2002": 35.0, "#2005": 50.0}
    # a shop's own status word declared in sources.yaml is an order status too: never revenue, no refund
    storno = orders.mark_returns(parse(REFUNDS.replace(",paid,usd\n#2002", ",storno,usd\n#2002")).clean,
                                 ReturnRule("status", values=("storno",))).with_columns(is_refund=orders.is_refund())
    assert storno.filter(pl.col("order_id") == "#2001").select("is_return", "is_refund").row(0) == (True, False)


def test_net_revenue_subtracts_each_refund_once_at_every_grain_and_on_the_dashboard(
        data_dir, instance, resources, tmp_path) -> None:
    from ecom_assets.insights.assets import sales_trends
    from ecom_assets.insights.dashboard import kpi_dashboard
    from ecom_assets.settings import EcomSettings

    drop(data_dir, "orders_refunds.csv", REFUNDS)
    tables = ingest_and_clean(data_dir, instance, resources)
    # careful figures: revenue 20 + 35 + 50 = 105; refunds 25 (#2002's -1 line); never revenue 24 + 10 + 10
    assert tables["returns"].filter("is_refund")["order_id"].to_list() == ["#2002"]
    trends = sales_trends(clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                          clean_order_lines=tables["order_lines"].lazy())
    for grain in ("day", "week", "month"):
        rows = trends.value.filter(pl.col("grain") == grain)
        assert rows["returns"].null_count() == rows["net_revenue"].null_count() == 0, grain
        assert rows.select("revenue", "returns", "refunds", "net_revenue").sum().row(0) == (105.0, 69.0, 25.0, 80.0)
    assert trends.value.filter(pl.col("grain") == "month")["net_revenue"].to_list() == [20.0 + 35.0 - 25.0, 50.0]
    assert (trends.metadata["revenue"].value, trends.metadata["net_revenue"].value) == (105.0, 80.0)
    settings = EcomSettings(data_dir=str(tmp_path / "dash"), currency="USD")
    output = kpi_dashboard(settings=settings, clean_sessions=tables["sessions"].lazy(),
                           clean_returns=tables["returns"].lazy(), clean_order_lines=tables["order_lines"].lazy(),
                           clean_events=tables["events"].lazy(), churn_predictions=pl.DataFrame(),
                           sales_trends=trends.value, product_funnel=pl.DataFrame(), customer_segments=pl.DataFrame(),
                           cohort_metrics=pl.DataFrame(), cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    tiles = dict(zip(output.value["kpi"], output.value["value"]))
    assert (tiles["revenue, all time"], tiles["refunds, all time"], tiles["net revenue, all time"],
            tiles["cancelled / refunded orders, all time"]) == ("105 USD", "25 USD", "80 USD", "44 USD")


# Shopify as exported: Email, Financial Status, Created at and Currency only on an order's first line item.
# #3002's lines disagree on the customer (two emails, then a blank line); #3003 is a one-line POS sale
# without email; #3004's first line was cut by the export (ragged) and gives nothing to its next line.
CONTINUATION = """order_id,customer_id,order_time,product_id,quantity,unit_price,status,currency
#3001,a@example.com,2025-02-01 10:00:00 +0100,SKU-1,1,10.00,paid,EUR
#3001,,,SKU-2,2,4.50,,
#3001,,,SKU-3,1,7.00,,
#3002,b@example.com,2025-02-02 11:00:00 +0100,SKU-1,1,10.00,paid,EUR
#3002,c@example.com,,SKU-2,1,4.50,,
#3002,,,SKU-3,1,7.00,,
#3003,,2025-02-03 12:00:00 +0100,SKU-1,1,10.00,paid,EUR
#3004,d@example.com,2025-02-04 09:00:00 +0100,SKU-1
#3004,,,SKU-2,1,4.50,,
"""


def test_continuation_lines_take_their_orders_fields_only_when_one_value_is_there() -> None:
    parsed = parse(CONTINUATION)
    a = parsed.accounting
    assert (a["rows_in"], a["clean"], a["quarantined"], a["duplicate"]) == (9, 3, 6, 0)
    clean = parsed.clean.sort("line")
    assert clean["line"].to_list() == [2, 3, 4]  # physical lines unchanged
    assert clean.filter(pl.col("order_id") == "#3001")["customer_id"].to_list() == ["a@example.com"] * 3
    third = clean.filter(pl.col("line") == 4).row(0, named=True)
    assert (third["status"], third["currency"], str(third["order_time"])) == ("paid", "EUR", "2025-02-01 09:00:00+00:00")
    # #3002's line 7 gets no customer (two values), so the order is not read in part: lines 5 and 6 go with it
    reasons = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert reasons[7] == "empty customer_id" and reasons[8] == "empty customer_id"
    assert reasons[5] == reasons[6] == ("another line of this order_id is quarantined (line 7: empty customer_id), so "
                                        "the order is quarantined whole, never counted as a smaller purchase: '#3002'")
    assert reasons[9].startswith("field count differs") and reasons[10].startswith("empty customer_id")
    assert "4 continuation line(s) took customer_id (2)/order_time/status/currency from the other lines " \
           "of their order_id (written on one line per order)" in a["notes"]


def test_a_second_line_of_the_same_sku_is_a_line_not_a_duplicate_once_its_order_fields_are_filled() -> None:
    # Shopify: two line items of SKU-1 in #3101 (a second item added separately); the continuation line only
    # equals the first after its order fields are filled in. A line repeated exactly as written stays a duplicate.
    parsed = parse("""order_id,customer_id,order_time,product_id,quantity,unit_price,status,currency
#3101,a@example.com,2025-02-01 10:00:00 +0100,SKU-1,1,10.00,paid,EUR
#3101,,,SKU-1,1,10.00,,
#3102,b@example.com,2025-02-02 10:00:00 +0100,SKU-2,1,5.00,paid,EUR
#3102,b@example.com,2025-02-02 10:00:00 +0100,SKU-2,1,5.00,paid,EUR
""")
    a = parsed.accounting
    assert (a["rows_in"], a["clean"], a["quarantined"], a["duplicate"]) == (4, 3, 0, 1)
    assert parsed.clean.filter(pl.col("order_id") == "#3101")["line"].to_list() == [2, 3]


# WooCommerce-like statuses: a completed order, and orders whose payment failed, is awaited (pending, On hold as the
# admin screen writes it) or only authorized (Shopify): none of them was paid, so none is revenue.
UNPAID = """order_id,customer_id,order_time,product_id,quantity,unit_price,status
20001,a@example.de,2025-02-01 10:00:00,SKU-1,1,10.00,completed
20002,b@example.de,2025-02-01 11:00:00,SKU-1,2,10.00,failed
20003,c@example.de,2025-02-01 12:00:00,SKU-2,1,25.00,pending
20004,d@example.de,2025-02-01 13:00:00,SKU-2,1,25.00,On hold
20005,e@example.de,2025-02-01 14:00:00,SKU-2,1,25.00,wc-on-hold
20006,f@example.de,2025-02-01 15:00:00,SKU-2,1,25.00,authorized
"""


def test_an_order_not_yet_paid_is_never_revenue_and_never_a_refund() -> None:
    lines = orders.mark_returns(parse(UNPAID).clean).with_columns(is_refund=orders.is_refund())
    returns = lines.filter("is_return")
    assert dict(zip(returns["order_id"], returns["return_reason"])) == {
        "20002": "status 'failed' (not paid)", "20003": "status 'pending' (not paid)",
        "20004": "status 'on hold' (not paid)", "20005": "status 'wc-on-hold' (not paid)",
        "20006": "status 'authorized' (not paid)"}
    assert not returns["is_refund"].any()
    assert orders.order_sessions(lines)["session_id"].to_list() == ["20001"]


# A multi-currency Shopify store: most orders in EUR, #4003 paid in USD (Currency on the first line item only);
# #4004 has no currency at all. Prices are in the order's currency, so USD lines can never be added to EUR.
CURRENCIES = """order_id,customer_id,order_time,product_id,quantity,unit_price,status,currency
#4001,a@example.de,2025-02-01 10:00:00 +0100,SKU-1,1,10.00,paid,EUR
#4001,,,SKU-2,1,5.00,,
#4002,b@example.de,2025-02-02 10:00:00 +0100,SKU-1,2,10.00,paid,eur
#4003,c@example.com,2025-02-03 10:00:00 +0100,SKU-1,1,12.00,paid,USD
#4003,,,SKU-2,1,6.00,,
#4004,d@example.de,2025-02-04 10:00:00 +0100,SKU-1,1,10.00,paid,
"""


def test_lines_in_another_currency_than_the_files_are_quarantined_never_added() -> None:
    parsed = parse(CURRENCIES)
    assert parsed.clean["order_id"].to_list() == ["#4001", "#4001", "#4002"]
    assert parsed.clean["currency"].unique().to_list() == ["EUR"]
    reasons = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert reasons[5] == reasons[6] == (
        "currency is not the file's reporting currency EUR (the most common of the file's lines: 3 of 5; declare "
        "the shop's `currency` in sources.yaml to choose); amounts in different currencies are never added: 'USD'")
    assert reasons[7].startswith("empty currency in a file holding more than one currency")
    assert "currency: EUR is the reporting currency (the most common of the file's lines: 3 of 5); 2 line(s) in " \
           "USD quarantined, never added" in parsed.notes


def test_a_declared_currency_wins_and_a_tie_is_never_guessed() -> None:
    from ecom_assets.ingest.sources import SourceSpec

    usd = parse_drop(CURRENCIES.encode(), "orders", "orders_x.csv__abc", today=TODAY,
                     spec=SourceSpec("orders_*.csv", currency="USD"))
    assert usd.clean["order_id"].to_list() == ["#4003", "#4003"]
    assert usd.quarantine.filter(pl.col("line") == 2)["reason"].item() == (
        "currency is not the reporting currency USD declared in sources.yaml; amounts in different currencies "
        "are never added: 'EUR'")
    tie = parse(CURRENCIES.replace("#4002,b@example.de,2025-02-02 10:00:00 +0100,SKU-1,2,10.00,paid,eur\n", ""))
    assert tie.clean.is_empty()
    assert tie.quarantine["reason"][0].startswith("currency: the file holds as many EUR as USD lines, so none is")


def test_clean_sessions_flags_two_currencies_across_orders_files(data_dir, instance, resources) -> None:
    drop(data_dir, "orders_eu.csv", CURRENCIES.split("#4003")[0])
    drop(data_dir, "orders_us.csv", CURRENCIES.split("\n", 1)[0] + "\n#4003" + CURRENCIES.split("#4003", 1)[1]
         .split("#4004")[0])
    tables = ingest_and_clean(data_dir, instance, resources)
    assert sorted(tables["order_lines"]["currency"].unique()) == ["EUR", "USD"]
    check = next(c for c in tables["result"].get_asset_check_evaluations()
                 if c.asset_key.path == ["clean_sessions"] and c.check_name == "one_currency")
    assert not check.passed
    assert check.description.startswith("amounts in EUR (orders_eu.csv) and USD (orders_us.csv): revenue adds")


# Shopify as exported, with its order-level Refunded Amount on the first line item only: #5001 paid; #5002
# partially_refunded by 20.00 without any negative line; #5003 partially_refunded with Refunded Amount 15.00 and
# also a -1 line (10.00) itemising part of it; #5004 refunded as a whole (never revenue: nothing subtracted).
SHOPIFY_REFUNDS = """order_id,customer_id,order_time,product_id,quantity,unit_price,status,currency,refunded_amount
#5001,a@example.de,2025-03-01 10:00:00 +0100,SKU-1,1,10.00,paid,EUR,0.00
#5001,,,SKU-2,2,5.00,,,
#5002,b@example.de,2025-03-02 10:00:00 +0100,SKU-3,1,20.00,partially_refunded,EUR,20.00
#5002,,,SKU-1,3,10.00,,,
#5003,c@example.de,2025-03-03 10:00:00 +0100,SKU-1,2,10.00,partially_refunded,EUR,15.00
#5003,,,SKU-1,-1,10.00,,,
#5004,d@example.de,2025-03-04 10:00:00 +0100,SKU-3,1,20.00,refunded,EUR,20.00
"""


def test_an_order_level_refunded_amount_is_subtracted_once_per_order(data_dir, instance, resources, tmp_path) -> None:
    from ecom_assets.insights.assets import sales_trends
    from ecom_assets.insights.dashboard import kpi_dashboard
    from ecom_assets.settings import EcomSettings

    parsed = parse(SHOPIFY_REFUNDS)
    assert parsed.quarantine.is_empty()
    # continuation lines carry their order's figure (filled), and the figure is counted once per order
    assert parsed.clean.sort("line")["refunded_amount"].to_list() == [0.0, 0.0, 20.0, 20.0, 15.0, 15.0, 20.0]
    drop(data_dir, "orders_shopify.csv", SHOPIFY_REFUNDS)
    tables = ingest_and_clean(data_dir, instance, resources)
    refunds = orders.order_refunds(tables["order_lines"], tables["returns"]).collect().sort("order_id")
    # #5003: the order's 15.00 wins over its -1 line's 10.00 (its itemisation), never 25.00; #5004 never was revenue
    assert dict(zip(refunds["order_id"], refunds["refunds"])) == {"#5002": 20.0, "#5003": 15.0}
    # careful figures: revenue 20 + 50 + 20 = 90, refunds 35, net 55
    trends = sales_trends(clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                          clean_order_lines=tables["order_lines"].lazy())
    for grain in ("day", "week", "month"):
        rows = trends.value.filter(pl.col("grain") == grain)
        assert rows.select("revenue", "refunds", "net_revenue").sum().row(0) == (90.0, 35.0, 55.0), grain
    output = kpi_dashboard(settings=EcomSettings(data_dir=str(tmp_path / "dash")),
                           clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                           clean_order_lines=tables["order_lines"].lazy(), clean_events=tables["events"].lazy(),
                           churn_predictions=pl.DataFrame(),
                           sales_trends=trends.value, product_funnel=pl.DataFrame(), customer_segments=pl.DataFrame(),
                           cohort_metrics=pl.DataFrame(), cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    tiles = dict(zip(output.value["kpi"], output.value["value"]))
    assert (tiles["refunds, all time"], tiles["net revenue, all time"]) == ("35 EUR", "55 EUR")


def test_lines_of_one_order_disagreeing_on_its_refunded_amount_are_quarantined() -> None:
    parsed = parse(SHOPIFY_REFUNDS.replace("#5002,,,SKU-1,3,10.00,,,", "#5002,,,SKU-1,3,10.00,,,5.00")
                   .replace("#5001,,,SKU-2,2,5.00,,,", "#5001,,,SKU-2,2,5.00,,,-1"))
    reasons = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert reasons[4] == reasons[5].removesuffix("5.00'") + "20.00'" == (
        "refunded_amount differs between the lines of this order_id (an order-level figure): '20.00'")
    assert reasons[3].startswith("negative refunded_amount")


# CDNOW-like purchase log: no order id at all, one purchase per row. 00002 bought three times on one day; line 5
# repeats line 4 exactly: in a log whose records are purchases, a second identical purchase (it was counted as a
# duplicate: CDNOW's 255 repeated records, their revenue lost).
NO_ORDER_ID = """customer_id,order_time,quantity,line_amount
00001,1997-01-01,1,11.77
00002,1997-01-12,1,12.00
00002,1997-01-12,5,77.00
00002,1997-01-12,5,77.00
00003,1997-01-02,2,20.76
"""


def test_a_purchase_log_without_order_ids_is_one_order_per_row_keyed_by_its_content(
        data_dir, instance, resources) -> None:
    parsed = parse(NO_ORDER_ID)
    a = parsed.accounting
    assert (a["rows_in"], a["clean"], a["quarantined"], a["duplicate"]) == (5, 5, 0, 0)
    assert any(n.startswith("no order_id column: every row is one order") for n in a["notes"])
    assert "1 row(s) repeat an earlier row of this file exactly: each kept as an order of its own" in " ".join(a["notes"])
    ids = dict(zip(parsed.clean["line"], parsed.clean["order_id"]))
    assert len(set(ids.values())) == 5 and all(i.startswith("row-") for i in ids.values())
    # an overlapping re-export (rows in another order, one new row, the repeated row twice again) gives the same
    # rows the same ids, the k-th copy the k-th copy's, never line numbers
    lines = NO_ORDER_ID.splitlines()
    overlap = "\n".join([lines[0], lines[4], "00004,1997-02-01,1,9.99", lines[3], lines[1]]) + "\n"
    again = dict(zip(parse(overlap).clean["line"], parse(overlap).clean["order_id"]))
    assert (again[2], again[4], again[5]) == (ids[4], ids[5], ids[2]) and again[3] not in ids.values()
    drop(data_dir, "orders_log_1.csv", NO_ORDER_ID)
    drop(data_dir, "orders_log_2.csv", overlap)
    sessions = ingest_and_clean(data_dir, instance, resources)["sessions"]
    # six orders, each once: 11.77 + 12.00 + 77.00 + 77.00 + 20.76 + 9.99
    assert sessions.height == 6 and round(sessions["purchase_amount"].sum(), 2) == 208.52


def test_an_order_session_counts_the_items_bought_not_the_returned_ones() -> None:
    # #1001: 2 mugs + 1 novel (the line exported twice is a duplicate, counted once); #1004: 1 atlas bought,
    # its returned mug (-1) goes to clean_returns; #1002 is only a refund
    sessions = orders.order_sessions(orders.mark_returns(parse(SHOPIFY).clean))
    assert dict(zip(sessions["session_id"], sessions["units_purchased"])) == {"#1001": 3.0, "#1004": 1.0}


# A US shop's ERP export: no currency column at all; the shop declares `currency: USD` in sources.yaml. The
# dashboard showed EUR (the setting's default) beside these dollars, and the clean lines had no currency.
US_ERP = """order_id,customer_id,order_time,product_id,quantity,unit_price
A-100,C1,2025-05-02 09:15,SKU-1,2,19.99
A-100,C1,2025-05-02 09:15,SKU-2,1,5.00
A-101,C2,2025-05-03 14:00,SKU-1,1,19.99
"""


def test_a_declared_currency_reaches_the_lines_and_the_dashboard(data_dir, instance, resources, tmp_path) -> None:
    from ecom_assets.insights.dashboard import kpi_dashboard
    from ecom_assets.settings import EcomSettings

    (data_dir / "sources.yaml").write_text('- match: "orders_*.csv"\n  kind: orders\n  currency: usd\n')
    drop(data_dir, "orders_us.csv", US_ERP)
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["order_lines"]["currency"].to_list() == ["USD"] * 3
    lines = tables["order_lines"].select("source_file", "currency")
    assert orders.shown_currency(lines, "EUR") == "USD"
    assert orders.shown_currency(lines.clear(), "GBP") == "GBP"  # no lines: the setting
    output = kpi_dashboard(settings=EcomSettings(data_dir=str(tmp_path / "dash")),  # the default setting, EUR
                           clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                           clean_order_lines=tables["order_lines"].lazy(), clean_events=tables["events"].lazy(),
                           churn_predictions=pl.DataFrame(),
                           sales_trends=pl.DataFrame(), product_funnel=pl.DataFrame(), customer_segments=pl.DataFrame(),
                           cohort_metrics=pl.DataFrame(), cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    assert dict(zip(output.value["kpi"], output.value["value"]))["revenue, all time"] == "65 USD"
    assert output.metadata["currency"].value == "USD"
    assert "money in USD" in (tmp_path / "dash" / "reports" / "dashboard.html").read_text()
