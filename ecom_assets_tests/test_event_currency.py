"""An events export's currency is kept on its purchase events, so the one-currency check and the money shown see
events as they see order lines: a Shopify orders export in EUR beside a Segment events export whose orders are in
USD is flagged (revenue would add both), and an events-only shop whose export says GBP is shown in GBP."""

import html
from datetime import date

import dagster as dg
import polars as pl

from ecom_assets.ingest import ingest_landing
from ecom_assets.ingest.orders import shown_currency
from ecom_assets.ingest.parse import parse_drop
from ecom_assets.ingest.sources import SourceSpec
from ecom_assets.insights.dashboard import kpi_dashboard, money_rows
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.ingest_helpers import SESSIONS_HEADER, drop, ingest_and_clean

TODAY = date(2026, 11, 24)

# Segment's warehouse tables flattened, `properties.*` as `properties_*` columns: a product view, then the order
SEGMENT_SOURCES = """- match: "events_segment*.csv"
  columns: {timestamp: event_time, event_text: event_type, user_id: customer_id, properties_product_id: product_id,
            properties_price: price, properties_order_id: order_id, properties_revenue: order_amount,
            properties_currency: currency}
"""
SEGMENT_HEADER = ("id,timestamp,event_text,user_id,anonymous_id,properties_product_id,properties_price,"
                  "properties_order_id,properties_revenue,properties_currency\n")
SEGMENT_US = SEGMENT_HEADER + """\
ajs-1,2025-04-02T14:00:00.000Z,Product Viewed,u-301,a-9,SKU-77,35.00,,,USD
ajs-2,2025-04-02T14:03:00.000Z,Order Completed,u-301,a-9,,,US-5001,35.00,USD
ajs-3,2025-04-03T09:30:00.000Z,Order Completed,u-302,a-8,,,US-5002,120.00,usd
"""
# a Shopify export (a few of its columns) of the same shop's EU store, in EUR
SHOPIFY_SOURCES = """- match: "orders_shopify*.csv"
  columns: {Name: order_id, Email: customer_id, Created at: order_time, Lineitem sku: product_id,
            Lineitem quantity: quantity, Lineitem price: unit_price, Financial Status: status, Currency: currency}
"""
SHOPIFY_EU = """Name,Email,Financial Status,Currency,Created at,Lineitem quantity,Lineitem price,Lineitem sku
#1101,mia@example.com,paid,EUR,2025-04-02 10:15:00 +0200,2,18.00,MUG-01
#1101,,,,,1,12.50,BOOK-07
#1102,noah@example.com,paid,EUR,2025-04-03 16:40:00 +0200,1,40.00,LAMP-2
"""
# an events-only shop: a GA4-like export whose purchases say GBP
GA4_GB = """event_time,event_type,customer_id,session_id,product_id,price,quantity,order_id,currency
2025-05-10T08:00:00Z,view_item,g-1,1715328000,TEE-1,20.00,,,GBP
2025-05-10T08:04:00Z,purchase,g-1,1715328000,TEE-1,20.00,2,T-901,GBP
2025-05-11T19:20:00Z,purchase,g-2,1715455200,CAP-3,16.00,1,T-902,GBP
"""


def _one_currency(tables: dict):
    return next(c for c in tables["result"].get_asset_check_evaluations()
                if c.asset_key.path == ["clean_sessions"] and c.check_name == "one_currency")


def test_purchase_events_carry_their_files_reporting_currency() -> None:
    """Purchases carry the file's reporting currency (written lower-case or not), views none; a declared currency
    reaches the purchases of an export without a currency column; an export naming none leaves it null."""
    parsed = parse_drop(GA4_GB.replace("T-902,GBP", "T-902,gbp").encode(), "events", "events_ga4.csv__abc", TODAY)
    assert parsed.quarantine.height == 0
    assert parsed.clean.sort("line").select("event_type", "currency").rows() == [
        ("view", None), ("purchase", "GBP"), ("purchase", "GBP")]
    unwritten = GA4_GB.replace(",currency\n", "\n").replace(",GBP\n", "\n")
    declared = parse_drop(unwritten.encode(), "events", "events_ga4.csv__abc", TODAY,
                          SourceSpec("events_*.csv", currency="GBP"))
    assert declared.clean.sort("line")["currency"].to_list() == [None, "GBP", "GBP"]
    assert parse_drop(unwritten.encode(), "events", "events_ga4.csv__abc", TODAY).clean["currency"].null_count() == 3


def test_orders_in_eur_beside_events_in_usd_fail_one_currency(data_dir, instance, resources) -> None:
    """Before: both files' purchases reached clean_sessions (revenue 88.50 EUR + 155.00 USD added as 243.50) and
    every check passed: the events' currency was read only to choose the file's, then dropped."""
    (data_dir / "sources.yaml").write_text(SHOPIFY_SOURCES + SEGMENT_SOURCES)
    drop(data_dir, "orders_shopify_eu.csv", SHOPIFY_EU)
    drop(data_dir, "events_segment_us.csv", SEGMENT_US)
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["sessions"].filter("purchase_made")["purchase_amount"].sum() == 48.5 + 40.0 + 35.0 + 120.0
    assert tables["events"].sort("event_time").select("event_type", "currency").rows() == [
        ("view", None), ("purchase", "USD"), ("purchase", "USD")]
    check = _one_currency(tables)
    assert not check.passed
    assert check.description.startswith("amounts in EUR (orders_shopify_eu.csv) and USD (events_segment_us.csv): "
                                        "revenue adds these files as if they were one currency")
    assert check.metadata["currencies"].value == "EUR, USD"


def test_an_events_only_shop_in_gbp_is_shown_in_gbp(data_dir, instance, resources, tmp_path) -> None:
    """Before: the dashboard read the currency from order lines only, so an events-only shop was shown in the
    setting's EUR although its export says GBP."""
    drop(data_dir, "events_ga4_uk.csv", GA4_GB)
    tables = ingest_and_clean(data_dir, instance, resources)
    assert _one_currency(tables).passed and _one_currency(tables).metadata["currencies"].value == "GBP"
    output = kpi_dashboard(settings=EcomSettings(data_dir=str(tmp_path / "dash")),  # the default setting, EUR
                           clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                           clean_order_lines=tables["order_lines"].lazy(), clean_events=tables["events"].lazy(),
                           churn_predictions=pl.DataFrame(), sales_trends=pl.DataFrame(),
                           product_funnel=pl.DataFrame(), customer_segments=pl.DataFrame(),
                           cohort_metrics=pl.DataFrame(), cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    assert dict(zip(output.value["kpi"], output.value["value"]))["revenue, all time"] == "56 GBP"  # 2 x 20.00 + 16.00
    assert output.metadata["currency"].value == "GBP"


def test_shown_currency_is_the_one_currency_of_lines_and_events_else_the_setting() -> None:
    lines = pl.LazyFrame({"source_file": ["orders.csv__a1"] * 2, "currency": ["EUR", "EUR"]})
    events = pl.LazyFrame({"source_file": ["events.csv__b2"] * 2, "event_type": ["view", "purchase"],
                           "currency": [None, "USD"]})
    exported = pl.LazyFrame({"source_file": ["events.csv__b2", "sessions.csv__c3"], "purchase_made": [True, True]})
    nothing = lines.clear()
    assert shown_currency(money_rows(exported, lines, nothing, events.filter(pl.col("currency").is_null())),
                          "GBP") == "EUR"
    assert shown_currency(money_rows(exported, lines, nothing, events), "GBP") == "mixed EUR+USD"  # never one picked
    assert shown_currency(money_rows(exported, nothing, nothing, events), "EUR") == "USD"
    assert shown_currency(money_rows(exported.clear(), nothing, nothing, events.clear()), "GBP") == "GBP"
    # a clean_events stored before it had a currency, and one not built yet, name none
    assert shown_currency(money_rows(exported, lines, nothing, events.drop("currency")), "GBP") == "EUR"
    assert shown_currency(money_rows(exported, lines, nothing, pl.LazyFrame()), "GBP") == "EUR"


def test_events_drops_stored_before_the_currency_column_still_load(data_dir, instance, resources) -> None:
    """A data dir kept from the previous release: its events drop was stored without `currency`. The next
    drop, which re-delivers one of its purchases, is cleaned with it; that purchase is a duplicate across files
    (not a second purchase), and the check sees the new drop's currency only."""
    drop(data_dir, "events_ga4_uk_1.csv", GA4_GB)
    ingest_landing(instance, data_dir)
    (stored,) = (data_dir / "warehouse" / "raw_events").glob("*.parquet")
    pl.read_parquet(stored).drop("currency").write_parquet(stored)  # the old shape
    drop(data_dir, "events_ga4_uk_2.csv", GA4_GB.split("\n")[0] + "\n" + GA4_GB.split("\n")[3] + "\n"
         "2025-05-12T10:00:00Z,purchase,g-3,1715508000,TEE-1,20.00,1,T-903,GBP\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    events = tables["events"].sort("event_time")
    assert events.select("order_id", "currency").rows() == [(None, None), ("T-901", None), ("T-902", None),
                                                            ("T-903", "GBP")]
    (built,) = tables["result"].asset_materializations_for_node("clean_events")
    assert built.metadata["duplicates_across_files"].value == 1
    assert tables["sessions"].filter("purchase_made")["purchase_amount"].sort().to_list() == [16.0, 20.0, 40.0]
    check = _one_currency(tables)
    assert check.passed and check.metadata["currencies"].value == "GBP"
    assert check.metadata["files_naming_a_currency"].value == 1


def _dashboard(tables: dict, tmp_path) -> tuple[dg.Output, str]:
    settings = EcomSettings(data_dir=str(tmp_path / "dash"))  # the default setting, EUR
    output = kpi_dashboard(settings=settings, clean_sessions=tables["sessions"].lazy(),
                           clean_returns=tables["returns"].lazy(), clean_order_lines=tables["order_lines"].lazy(),
                           clean_events=tables["events"].lazy(), churn_predictions=pl.DataFrame(),
                           sales_trends=pl.DataFrame(), product_funnel=pl.DataFrame(), customer_segments=pl.DataFrame(),
                           cohort_metrics=pl.DataFrame(), cross_sell_rules=pl.DataFrame(), campaign_lift=pl.DataFrame())
    return output, html.unescape((settings.reports / "dashboard.html").read_text())


def test_eur_orders_beside_usd_events_are_never_shown_as_one_currency(data_dir, instance, resources,
                                                                      tmp_path) -> None:
    """Before: the page said "money in EUR" and "243 EUR revenue, all time" for 88.50 EUR + 155.00 USD, and never
    named USD nor the failed check."""
    (data_dir / "sources.yaml").write_text(SHOPIFY_SOURCES + SEGMENT_SOURCES)
    drop(data_dir, "orders_shopify_eu.csv", SHOPIFY_EU)
    drop(data_dir, "events_segment_us.csv", SEGMENT_US)
    tables = ingest_and_clean(data_dir, instance, resources)
    output, page = _dashboard(tables, tmp_path)
    assert "money in EUR" not in page and " EUR revenue" not in page
    assert "money in mixed EUR+USD" in page
    revenue = tables["sessions"].filter("purchase_made")["purchase_amount"].sum()  # 88.50 EUR + 155.00 USD
    assert dict(zip(output.value["kpi"], output.value["value"]))["revenue, all time"] == f"{revenue:,.0f} mixed EUR+USD"
    warning = ("Money in several currencies, added unconverted (check one_currency on clean_sessions fails): "
               + _one_currency(tables).description)
    assert warning in page and "amounts in EUR (orders_shopify_eu.csv) and USD (events_segment_us.csv)" in warning
    assert page.index(warning) < page.index("Data as of")  # above every figure
    assert output.metadata["currency"].value == "mixed EUR+USD"


SEGMENT_GB_NO_CURRENCY = """\
id,timestamp,event_text,user_id,anonymous_id,properties_product_id,properties_price,properties_order_id,properties_revenue
ajs-7,2025-04-04T11:00:00.000Z,Product Viewed,u-401,a-3,SKU-12,24.00,,
ajs-8,2025-04-04T11:06:00.000Z,Order Completed,u-401,a-3,,,UK-7001,48.00
"""


def test_money_files_naming_no_currency_beside_files_naming_one_are_named(data_dir, instance, resources,
                                                                        tmp_path) -> None:
    """Before: `one_currency` passed saying only "currencies: EUR" and the page added the events' 48.00 (really
    GBP) into EUR without a word. Its currency cannot be known: the check still passes, but says so."""
    (data_dir / "sources.yaml").write_text(SHOPIFY_SOURCES + SEGMENT_SOURCES.replace(
        ", properties_currency: currency", "").replace('"events_segment*.csv"', '"events_segment_uk*.csv"'))
    drop(data_dir, "orders_shopify_eu.csv", SHOPIFY_EU)
    drop(data_dir, "events_segment_uk.csv", SEGMENT_GB_NO_CURRENCY)
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["sessions"].filter("purchase_made")["purchase_amount"].sum() == 48.5 + 40.0 + 48.0
    check = _one_currency(tables)
    assert check.passed and check.metadata["currencies"].value == "EUR"
    (unnamed,) = check.metadata["files_naming_no_currency"].value.split(", ")
    assert unnamed.startswith("events_segment_uk.csv__")
    note = ("1 file(s) carrying money name no currency (events_segment_uk.csv): their amounts are assumed to be in "
            "EUR")
    assert note in check.description
    output, page = _dashboard(tables, tmp_path)
    assert note in page and note in output.metadata["currency_warnings"].value
    assert "money in EUR" in page  # one currency named: still shown in it, with the assumption said


def test_a_sessions_only_shop_is_not_told_its_files_name_no_currency(data_dir, instance, resources, tmp_path) -> None:
    """A sessions export never names a currency (its contract has none): alone, nothing to warn about; beside
    orders in EUR, its purchases are assumed to be in EUR, and that is said."""
    drop(data_dir, "sessions_2025.csv", f"{SESSIONS_HEADER}\nS1,C1,2025-04-01,Books,310,True,25.40\n"
         "S2,C2,2025-04-02,Home,95,False,0\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["sessions"].height == 2
    check = _one_currency(tables)
    assert check.passed and check.metadata["files_naming_no_currency"].value == "none"
    assert check.description == "no orders or events drop names a currency"
    output, page = _dashboard(tables, tmp_path)
    assert output.metadata["currency_warnings"].value == "none" and "class='warn'><b>" not in page
    (data_dir / "sources.yaml").write_text(SHOPIFY_SOURCES)
    drop(data_dir, "orders_shopify_eu.csv", SHOPIFY_EU)
    check = _one_currency(ingest_and_clean(data_dir, instance, resources))
    assert check.passed and check.metadata["files_naming_no_currency"].value.startswith("sessions_2025.csv__")
    assert "1 file(s) carrying money name no currency (sessions_2025.csv): their amounts are assumed to be in EUR" \
        in check.description
