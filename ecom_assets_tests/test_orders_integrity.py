"""An order is counted whole or not at all, and the amounts of real exports are read as they are written.

Faults a new user found dropping WooCommerce and Shopify exports unchanged: one unreadable line made its order a
smaller purchase (revenue understated) while the order's whole refund was still subtracted; `1,185.85` was
unreadable; a gift-card line (no SKU) was quarantined; Shopify's order-level Discount Amount was never subtracted.
"""

from datetime import date

import polars as pl

from ecom_assets.ingest import orders
from ecom_assets.ingest.parse import parse_drop, reason_rule
from ecom_assets.ingest.sources import SourceSpec
from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean, quarantine

TODAY = date(2026, 11, 24)
WOO_COLUMNS = {"order number": "order_id", "billing email": "customer_id", "order date": "order_time",
               "sku": "product_id", "item name": "product_name", "quantity": "quantity", "item cost": "unit_price",
               "order status": "status", "order refund amount": "refunded_amount"}
WOO = SourceSpec("orders_woo*.csv", kind="orders", columns=WOO_COLUMNS)
WOO_SOURCES = """- match: "orders_woo*.csv"
  kind: orders
  columns: {Order Number: order_id, Billing Email: customer_id, Order Date: order_time, SKU: product_id,
            Item Name: product_name, Quantity: quantity, Item Cost: unit_price, Order Status: status,
            Order Refund Amount: refunded_amount}
"""
WOO_HEADER = "Order Number,Order Date,Order Status,Billing Email,SKU,Item Name,Quantity,Item Cost,Order Refund Amount\n"


def parse(text: str, spec: SourceSpec | None = WOO):
    return parse_drop(text.encode(), "orders", "orders_woo_2025.csv__abc", today=TODAY, spec=spec)


def reasons(parsed) -> dict[int, str]:
    return dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))


# WooCommerce (order fields on every item row): #4101 is a camera whose Item Cost a German shop system wrote as
# `1,185` (1185 with a thousands separator, or 1.185 with a decimal comma: nobody can tell), plus two SD cards,
# and 100.00 refunded on the order; #4102 is an ordinary one-item order.
WOO_ONE_BAD_LINE = WOO_HEADER + """4101,2025-03-03 10:12:00,wc-completed,anna@example.de,CAM-200,Kamera Alpha,1,"1,185",100.00
4101,2025-03-03 10:12:00,wc-completed,anna@example.de,SD-64,SD-Karte 64GB,2,19.90,100.00
4101,2025-03-03 10:12:00,wc-completed,anna@example.de,SD-64-B,SD-Karte 64GB (B-Ware),1,14.90,100.00
4102,2025-03-03 11:40:00,wc-processing,ben@example.de,SD-64,SD-Karte 64GB,1,19.90,0
"""


def test_an_order_with_one_unreadable_line_is_quarantined_whole_naming_the_line_and_rule() -> None:
    """Before: #4101 stayed a purchase of 54.70 (its two SD-card lines) instead of ~1,240, and its 100.00 refund
    was subtracted from that: the order looked smaller and net revenue went negative. Now its other lines are
    quarantined with it, each naming the order, the faulty physical line and its rule; the accounting adds up."""
    parsed = parse(WOO_ONE_BAD_LINE)
    a = parsed.accounting
    assert (a["rows_in"], a["clean"], a["quarantined"], a["duplicate"]) == (4, 1, 3, 0)
    assert parsed.clean["order_id"].to_list() == ["4102"]
    why = reasons(parsed)
    assert why[2].startswith("unit_price is ambiguous") and why[2].endswith(": '1,185'")
    for line in (3, 4):
        assert why[line] == ("another line of this order_id is quarantined (line 2: unit_price is ambiguous: one "
                             "comma before 3 digits is a thousands separator (1185) or a decimal comma (1.185) — "
                             "export the amount with its decimals (1,185.00) or without separators), so the order "
                             "is quarantined whole, never counted as a smaller purchase: '4101'")
    # one rule for every such order in quarantine summaries, whichever line and order it names
    rules = parsed.quarantine.filter(pl.col("line") > 2).select(reason_rule(pl.col("reason")))["reason"]
    assert rules.n_unique() == 1 and "line 2" not in rules[0] and "4101" not in rules[0]
    assert any(n.startswith("1 order(s) with a quarantined line quarantined whole (2 more line(s))")
               for n in parsed.notes)


def test_the_lines_of_an_order_are_judged_whole_across_batches() -> None:
    """A large drop is judged in batches; an order whose faulty line falls in a later batch than its other
    lines is still quarantined whole (the same result as judging the file at once)."""
    from ecom_assets.ingest import parse as parse_module

    kind = parse_module.KINDS["orders"]
    read = parse_module.read_text_table(WOO_ONE_BAD_LINE.encode(), kind, "orders_woo.csv__abc", WOO)
    table, reading, _ = parse_module.prepare(read.table, kind, TODAY, WOO, read.delimiter)
    reordered = pl.concat([table.slice(1), table.slice(0, 1)])  # the camera line last, in a batch of its own
    clean, quarantined, _ = parse_module.split_rows(parse_module.batches(reordered, 2), kind, TODAY, reading=reading)
    assert clean["order_id"].to_list() == ["4102"] and sorted(quarantined["line"].to_list()) == [2, 3, 4]


def test_an_order_read_in_part_never_reaches_the_clean_tables_or_revenue(data_dir, instance, resources) -> None:
    """The same export dropped unchanged through the real path: no purchase, no refund of #4101 anywhere;
    every line is in the quarantine, and clean_sessions holds only #4102."""
    from ecom_assets.insights.assets import sales_trends

    (data_dir / "sources.yaml").write_text(WOO_SOURCES)
    drop(data_dir, "orders_woo_2025-03.csv", WOO_ONE_BAD_LINE)
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["sessions"]["session_id"].to_list() == ["4102"]
    assert tables["order_lines"]["order_id"].to_list() == ["4102"] and tables["returns"].height == 0
    assert sorted(quarantine(data_dir, "orders")["line"].to_list()) == [2, 3, 4]
    trends = sales_trends(clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                          clean_order_lines=tables["order_lines"].lazy())
    assert tuple(trends.metadata[k].value for k in ("revenue", "refunds", "net_revenue")) == (19.9, 0.0, 19.9)


def test_thousands_separators_are_read_where_unambiguous_and_quarantined_where_not() -> None:
    """WooCommerce writes prices with the shop's thousands separator when the export is formatted
    (`"1,185.85"`, `"12,345.00"`); the same export in a German shop `"1.185,85"` in a comma-delimited file. A
    lone `1,185` (1185 or 1.185?) is quarantined saying why; `1,23,456.00` (lakh grouping) is not 3-digit groups."""
    text = WOO_HEADER + """5001,2025-03-04 09:00:00,wc-completed,c@example.com,CAM-200,Kamera Alpha,1,"1,185.85",
5002,2025-03-04 09:30:00,wc-completed,d@example.com,TV-65,Fernseher 65,1,"12,345.00",
5003,2025-03-04 10:00:00,wc-completed,e@example.com,CAR-1,Anhänger,1,"1,234,567",
5004,2025-03-04 10:30:00,wc-completed,f@example.com,SD-64,SD-Karte 64GB,2,19.90,"1,185.85"
5005,2025-03-04 11:00:00,wc-completed,g@example.com,CAM-200,Kamera Alpha,1,"1,185",
5006,2025-03-04 11:30:00,wc-completed,h@example.com,CAM-200,Kamera Alpha,1,"1,23,456.00",
"""
    parsed = parse(text)
    clean = dict(zip(parsed.clean["order_id"], parsed.clean["unit_price"]))
    assert clean == {"5001": 1185.85, "5002": 12345.0, "5003": 1234567.0, "5004": 19.9}
    assert parsed.clean.filter(pl.col("order_id") == "5004")["refunded_amount"].to_list() == [1185.85]
    why = reasons(parsed)
    assert why[6].startswith("unit_price is ambiguous: one comma before 3 digits") and why[6].endswith("'1,185'")
    assert why[7] == "unit_price is not a number (its thousands separators are not in groups of 3 digits: 1,234.50): '1,23,456.00'"
    # the German shop: the file's decimal mark is the comma, said by a value only a decimal comma can be
    german = WOO_HEADER + """5101,2025-03-04 09:00:00,wc-completed,c@example.de,CAM-200,Kamera Alpha,1,"1.185,85",
5102,2025-03-04 09:30:00,wc-completed,d@example.de,SD-64,SD-Karte 64GB,2,"19,90",
5103,2025-03-04 10:00:00,wc-completed,e@example.de,TV-65,Fernseher 65,1,"1.234.567",
5104,2025-03-04 10:30:00,wc-completed,f@example.de,SD-64,SD-Karte 64GB,1,"1.299",
"""
    parsed = parse(german)
    assert dict(zip(parsed.clean["order_id"], parsed.clean["unit_price"])) == {
        "5101": 1185.85, "5102": 19.9, "5103": 1234567.0}
    assert reasons(parsed)[5].startswith("unit_price is ambiguous in a decimal-comma file")
    assert any("decimal comma inferred for unit_price" in n for n in parsed.notes)
    # a point decimal in the same column keeps the file on points: the decimal-comma values are then quarantined
    # (`1.299` reads as a decimal point, as in any decimal-point file)
    mixed = parse(german + "5105,2025-03-04 11:00:00,wc-completed,g@example.de,SD-64,SD-Karte,1,19.90,\n")
    assert dict(zip(mixed.clean["order_id"], mixed.clean["unit_price"])) == {"5104": 1.299, "5105": 19.9}


# Shopify's order export as downloaded (a subset of its ~70 columns, in its order): order-level fields (Email,
# Financial Status, Currency, Subtotal, Shipping, Taxes, Total, Discount Amount, Created at, Refunded Amount) on an
# order's first line item only. #1101: 2 mugs and a novel (48.50), code WELCOME10 takes 4.85 off (Subtotal 43.65);
# #1102: a lamp (40.00) + 5.90 shipping, refunded in full with its shipping (Refunded Amount 45.90, the platform's
# total given back); #1103: a mug and a 25.00 gift card (Shopify writes no SKU for a gift card).
SHOPIFY_SOURCES = """- match: "orders_shopify*.csv"
  columns: {Name: order_id, Email: customer_id, Created at: order_time, Lineitem sku: product_id,
            Lineitem name: product_name, Lineitem quantity: quantity, Lineitem price: unit_price,
            Financial Status: status, Currency: currency, Refunded Amount: refunded_amount,
            Discount Amount: discount_amount}
"""
SHOPIFY_HEADER = ("Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,"
                  "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Refunded Amount\n")
SHOPIFY_1101 = """#1101,mia@example.com,paid,EUR,43.65,4.90,0.00,48.55,WELCOME10,4.85,2025-04-02 10:15:00 +0200,2,Mug,18.00,MUG-01,0.00
#1101,,,,,,,,,,,1,Novel,12.50,BOOK-07,
"""
SHOPIFY_1102 = """#1102,noah@example.com,partially_refunded,EUR,40.00,5.90,0.00,45.90,,0.00,2025-04-03 16:40:00 +0200,1,Lamp,40.00,LAMP-2,45.90
"""
SHOPIFY_1103 = """#1103,ola@example.com,paid,EUR,43.00,0.00,0.00,43.00,,0.00,2025-04-04 09:05:00 +0200,1,Mug,18.00,MUG-01,0.00
#1103,,,,,,,,,,,1,Gift Card,25.00,,
"""
SHOPIFY_COLUMNS = {"name": "order_id", "email": "customer_id", "created at": "order_time", "lineitem sku": "product_id",
                   "lineitem name": "product_name", "lineitem quantity": "quantity", "lineitem price": "unit_price",
                   "financial status": "status", "currency": "currency", "refunded amount": "refunded_amount",
                   "discount amount": "discount_amount"}
SHOPIFY = SourceSpec("orders_shopify*.csv", columns=SHOPIFY_COLUMNS)


def _sessions(text: str) -> dict[str, float]:
    lines = orders.mark_returns(parse(text, SHOPIFY).clean)
    sessions = orders.order_sessions(lines)
    return {k: round(v, 2) for k, v in zip(sessions["session_id"], sessions["purchase_amount"])}


def test_an_order_level_discount_is_subtracted_once_from_the_orders_revenue() -> None:
    """Before: Discount Amount was an ignored extra column and #1101 counted 48.50 (+11 % over what was paid for
    its items). It is on the first line item only: the novel's line takes it, and it is subtracted once."""
    parsed = parse(SHOPIFY_HEADER + SHOPIFY_1101 + SHOPIFY_1102, SHOPIFY)
    assert parsed.clean.filter(pl.col("order_id") == "#1101")["discount_amount"].to_list() == [4.85, 4.85]
    assert _sessions(SHOPIFY_HEADER + SHOPIFY_1101 + SHOPIFY_1102) == {"#1101": 43.65, "#1102": 40.0}
    # a discount the lines disagree on, or a negative one, is no order-level figure: the order is quarantined
    bad = parse(SHOPIFY_HEADER + SHOPIFY_1101.replace(",,,,,,,,,,,1,Novel", ",,,,,,,,,5.00,,1,Novel")
                + SHOPIFY_1102.replace(",0.00,2025-04-03", ",-3.00,2025-04-03"), SHOPIFY)
    assert bad.clean.is_empty()
    assert reasons(bad)[3].startswith("discount_amount differs between the lines of this order_id")
    assert reasons(bad)[4] == "negative discount_amount (the order's discounts, written positive): '-3.00'"


def test_a_refund_above_the_orders_revenue_is_capped_at_it(data_dir, instance, resources) -> None:
    """Before: #1102's 45.90 refund (the lamp and its shipping) was subtracted from the 40.00 of revenue the lamp
    counted, so net revenue fell 5.90 below what the shop kept from its items (revenue never holds shipping).
    An order-level refund is now capped at the order's revenue (its purchased lines less its discount); the part
    above is reported in sales_trends' metadata, never subtracted."""
    from ecom_assets.insights.assets import sales_trends

    (data_dir / "sources.yaml").write_text(SHOPIFY_SOURCES)
    drop(data_dir, "orders_shopify_2025-04.csv", SHOPIFY_HEADER + SHOPIFY_1101 + SHOPIFY_1102)
    tables = ingest_and_clean(data_dir, instance, resources)
    refunds = orders.order_refunds(tables["order_lines"], tables["returns"]).collect()
    assert refunds.select("order_id", "refunds", pl.col("refund_above_revenue").round(2)).rows() == [("#1102", 40.0, 5.9)]
    trends = sales_trends(clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                          clean_order_lines=tables["order_lines"].lazy())
    figures = {k: trends.metadata[k].value for k in ("revenue", "refunds", "net_revenue", "refunds_above_revenue")}
    assert figures == {"revenue": 83.65, "refunds": 40.0, "net_revenue": 43.65, "refunds_above_revenue": 5.9}


def test_a_line_without_a_product_id_is_keyed_by_its_name_and_counted() -> None:
    """Shopify writes no `Lineitem sku` for a gift card (nor for a custom item or a tip); WooCommerce products often
    have no SKU. Before: the line was quarantined ("empty product_id") and #1103 counted 18.00 of its 43.00. Such a
    line is keyed by its name (`name:` + product_name, never mistaken for a SKU) and said in the drop's metadata;
    a line with neither an id nor a name is still quarantined, and its order with it."""
    parsed = parse(SHOPIFY_HEADER + SHOPIFY_1103, SHOPIFY)
    assert parsed.quarantine.is_empty()
    assert parsed.clean["product_id"].to_list() == ["MUG-01", "name:Gift Card"]
    assert _sessions(SHOPIFY_HEADER + SHOPIFY_1103) == {"#1103": 43.0}
    nameless = parse(SHOPIFY_HEADER + SHOPIFY_1103.replace("Gift Card", ""), SHOPIFY)
    assert nameless.clean.is_empty()
    assert reasons(nameless)[3] == "empty product_id and product_name"


def test_lines_keyed_by_name_are_counted_in_the_drops_metadata(data_dir) -> None:
    """The whole Shopify tryout file dropped unchanged: every line kept, the gift card line counted as keyed by
    its name in the raw_orders metadata, no order quarantined whole."""
    from ecom_assets.ingest.assets import ingest_drop
    from ecom_assets.ingest.landing import sha256_of
    from ecom_assets.ingest.partitions import partition_key
    from ecom_assets.settings import EcomSettings

    (data_dir / "sources.yaml").write_text(SHOPIFY_SOURCES)
    path = drop(data_dir, "orders_shopify_2025-04.csv", SHOPIFY_HEADER + SHOPIFY_1101 + SHOPIFY_1102 + SHOPIFY_1103)
    key = partition_key(path.name, sha256_of(path))
    _, accounting, metadata, _, handoff = ingest_drop(EcomSettings(data_dir=str(data_dir)), "orders", key)
    handoff.wait()
    assert (accounting["rows_in"], accounting["clean"], accounting["quarantined"]) == (5, 5, 0)
    assert (metadata["lines_keyed_by_name"], metadata["orders_quarantined_whole"]) == (1, 0)


def test_an_order_re_exported_unreadable_keeps_its_earlier_export(data_dir, instance, resources) -> None:
    """Day 1 exports #4101 readable (`1,185.00`); day 2 re-exports it with the camera as `1,185`. The day-2 export
    cannot be read whole, so it restates nothing: #4101 stays the day-1 purchase (1,185.00 + 39.80 + 14.90), never
    the day-2 remainder of 54.70."""
    (data_dir / "sources.yaml").write_text(WOO_SOURCES)
    drop(data_dir, "orders_woo_2025-03-03.csv", WOO_ONE_BAD_LINE.replace('"1,185"', '"1,185.00"'))
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "orders_woo_2025-03-04.csv", WOO_ONE_BAD_LINE)
    tables = ingest_and_clean(data_dir, instance, resources)
    sessions = dict(zip(tables["sessions"]["session_id"], tables["sessions"]["purchase_amount"]))
    assert {k: round(v, 2) for k, v in sessions.items()} == {"4101": 1239.7, "4102": 19.9}
    kept = tables["order_lines"].filter(pl.col("order_id") == "4101")
    assert kept.height == 3 and kept["source_file"].str.starts_with("orders_woo_2025-03-03").all()
