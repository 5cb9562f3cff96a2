"""events*.csv: event rows -> clean_events, one clean_sessions row per session, funnels and pairs."""

import random
import re
from collections import defaultdict
from datetime import date, datetime, timedelta

import dagster as dg
import pytest
import polars as pl

from ecom_assets.clean import clean_events
from ecom_assets.ingest import events, raw_events
from ecom_assets.ingest import parse as parse_module
from ecom_assets.ingest.parse import parse_drop
from ecom_assets.progress import key_figure
from ecom_assets.insights.events import category_funnel, conversion_by_time, event_funnel, item_funnel, pairs_within
from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean, quarantine

TODAY = date(2026, 11, 24)
HEADER = "event_time,event_type,product_id,category,brand,price,customer_id,session_id"
CATEGORIES = ["electronics.smartphone", "appliances.kitchen", "apparel.shoes", ""]


def store_log(seed: int = 3, sessions: int = 120) -> list[str]:
    """A multi-category store's log in the REES46 style: `... UTC` times, view/cart/remove_from_cart/
    purchase, empty category codes, purchases without a cart event, some rows logged twice by the
    tracker, a few unknown event types, and a session id on every row."""
    rng = random.Random(seed)
    rows = []
    start = datetime(2019, 10, 1)
    for s in range(sessions):
        t = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
        customer = f"U{rng.randrange(40)}"
        for _ in range(rng.randrange(1, 9)):
            category = rng.choice(CATEGORIES)
            product = f"P{CATEGORIES.index(category)}{rng.randrange(6)}"
            kind = rng.choices(["view", "cart", "remove_from_cart", "purchase", "login"], [60, 15, 4, 10, 3])[0]
            t += timedelta(seconds=rng.randrange(5, 400))
            row = f"{t:%Y-%m-%d %H:%M:%S} UTC,{kind},{product},{category},acme,{rng.randrange(5, 500)}.99,{customer},S{s}"
            rows.append(row)
            if rng.random() < 0.05:
                rows.append(row)  # double-logged by the tracker
    return rows


def reference_funnel(rows: list[str]) -> dict[str, tuple[int, int, int]]:
    """Event-level reference, row by row in plain Python: sessions with a view / cart / purchase per category."""
    seen = defaultdict(lambda: (set(), set(), set()))
    for row in rows:
        fields = row.split(",")
        if len(fields) != 8:
            continue
        _, kind, _, category, _, _, _, session = fields
        slot = {"view": 0, "cart": 1, "purchase": 2}.get(kind)
        if slot is not None:
            seen[category or "unknown"][slot].add(session)
    return {c: tuple(len(s) for s in sets) for c, sets in seen.items()}


def parse(text: str):
    return parse_drop(text.encode(), "events", "events_x.csv__abc", today=TODAY)


def test_double_logged_rows_are_duplicates_and_the_truncated_last_line_is_quarantined() -> None:
    rows = store_log()
    text = "\n".join([HEADER, *rows, rows[-1][:30]])  # the export was cut off mid-row
    parsed = parse(text)
    a = parsed.accounting
    assert a["rows_in"] == len(rows) + 1
    assert a["duplicate"] == len(rows) - len(set(rows)) and a["quarantined"] == 1
    assert parsed.quarantine["reason"][0].startswith("truncated last line")
    assert (parsed.clean["event_type"] == "other").sum() == sum(",login," in r for r in set(rows))


def test_a_drop_judged_in_released_batches_gets_the_fates_of_one_batch(monkeypatch) -> None:
    """parse_drop hands split_rows its table as batches it releases once judged: duplicates (a copy in
    another batch), bad rows and the truncated last line are found exactly as in one batch; a row whose
    brand and category are swapped is no duplicate (the row hash combines one hash per column)."""
    rows = store_log(seed=5, sessions=60)
    swapped = rows[0].split(",")
    swapped[3], swapped[4] = swapped[4], swapped[3]
    rows = [*rows, ",".join(swapped), rows[0], "2019-10-02 10:00:00 UTC,cart,,shoes,acme,5.99,U1,S1"]
    text = "\n".join([HEADER, *rows, rows[-1][:30]])
    whole = parse(text)
    monkeypatch.setattr(parse_module, "BATCH_ROWS", 7)
    batched = parse(text)
    assert batched.clean.equals(whole.clean) and batched.quarantine.equals(whole.quarantine)
    assert batched.accounting == whole.accounting
    assert whole.duplicates == len(rows) - len(set(rows)) and ",".join(swapped) in set(rows)
    last_two = whole.quarantine["reason"].to_list()[-2:]
    assert last_two[0] == "event without product_id: 'cart'" and last_two[1].startswith("truncated last line")


def test_platform_event_names_are_normalised_and_unknown_ones_kept_as_other() -> None:
    # Snowplow's ecommerce tracker logs each bought item as `transaction_item`
    names = ["view_item", "add_to_cart", "Product Removed", "Order Completed", "page_view", "scroll", "transaction_item"]
    text = "\n".join([HEADER] + [f"2024-01-01T10:0{i}:00Z,{n},P1,c,,5,U1,S1" for i, n in enumerate(names)]) + "\n"
    clean = parse(text).clean.sort("line")
    assert clean["event_type"].to_list() == ["view", "cart", "remove_from_cart", "purchase", "view", "other", "purchase"]
    assert clean["event_name"][-2] == "scroll"


def test_without_session_id_a_session_ends_after_30_minutes_of_inactivity() -> None:
    text = "\n".join(["event_time,event_type,customer_id,product_id,price",
                      "2024-01-01T10:00:00Z,view,U1,P1,5", "2024-01-01T10:29:00Z,cart,U1,P1,5",
                      "2024-01-01T10:58:59Z,purchase,U1,P1,5",  # 29:59 after the cart: same session
                      "2024-01-01T11:29:00Z,view,U1,P2,5",  # 30:01 later: a new session
                      "2024-01-01T10:10:00Z,view,U2,P1,5"]) + "\n"
    sessions = events.event_sessions(events.sessionise(parse(text).clean)).sort("session_id")
    assert sessions["session_id"].to_list() == ["U1@2024-01-01T10:00:00Z", "U1@2024-01-01T11:29:00Z",
                                                "U2@2024-01-01T10:10:00Z"]
    first = sessions.row(0, named=True)
    assert first["browsing_time_sec"] == 3539.0 and first["purchase_amount"] == 5.0
    assert first["added_to_cart"] and first["purchase_made"] and first["page_views"] == 1


def test_session_rows_count_views_categories_and_purchase_value() -> None:
    text = "\n".join([HEADER,
                      "2024-01-01 10:00:00 UTC,view,P1,shoes,,50,U1,S1", "2024-01-01 10:01:00 UTC,view,P2,shoes,,60,U1,S1",
                      "2024-01-01 10:02:00 UTC,view,P3,bags,,80,U1,S1", "2024-01-01 10:03:00 UTC,view,,,,,U1,S1",
                      "2024-01-01 10:04:00 UTC,purchase,P3,bags,,80,U1,S1", "2024-01-01 10:05:00 UTC,purchase,P1,shoes,,50,U1,S1"])
    row = events.event_sessions(events.sessionise(parse(text + "\n").clean)).row(0, named=True)
    assert (row["page_views"], row["product_views"], row["categories_viewed"]) == (4, 3, 2)
    assert row["product_viewed"] == "shoes" and row["purchase_amount"] == 130.0 and row["added_to_cart"] is False


def test_a_missing_category_becomes_unknown_never_a_product_id() -> None:
    # REES46 writes an empty category_code for many products: S1 views only such products (most views
    # on 1000501), S2 views more uncategorised products than categorised ones
    text = "\n".join([HEADER,
                      "2024-01-01 10:00:00 UTC,view,1000501,,,50,U1,S1", "2024-01-01 10:01:00 UTC,view,1000501,,,50,U1,S1",
                      "2024-01-01 10:02:00 UTC,view,1000777,,,80,U1,S1",
                      "2024-01-01 11:00:00 UTC,view,1000501,,,50,U2,S2", "2024-01-01 11:01:00 UTC,view,1000502,,,60,U2,S2",
                      "2024-01-01 11:02:00 UTC,view,P9,apparel.shoes,,80,U2,S2"])
    sessions = events.event_sessions(events.sessionise(parse(text + "\n").clean)).sort("session_id")
    assert sessions["product_viewed"].to_list() == ["unknown", "apparel.shoes"]
    assert sessions["categories_viewed"].to_list() == [0, 1] and sessions["product_views"].to_list() == [3, 3]


def test_ga4_not_set_category_is_no_category() -> None:
    # GA4 writes `(not set)` where an item has no category: it must never be ranked as a category
    text = "\n".join([HEADER, "2024-01-01 10:00:00 UTC,view,P1,(not set),,50,U1,S1",
                      "2024-01-01 10:01:00 UTC,view,P2,(Not Set),,50,U1,S1", "2024-01-01 10:02:00 UTC,view,P3,(none),,5,U2,S2"])
    clean = parse(text + "\n").clean
    assert clean["category"].null_count() == 3
    assert events.event_sessions(events.sessionise(clean))["product_viewed"].to_list() == ["unknown", "unknown"]


def test_no_category_worked_out_per_distinct_value_reads_the_rows_the_row_rule_reads() -> None:
    """`prepare` decides once per distinct category which spellings mean "none" (`Reading.no_category`);
    the rows it marks must be exactly those the per-row rule (`no_category`: trimmed, any case) marks:
    GA4's padded and upper-case placeholders, our `unknown`, empty and missing cells, and real categories
    that merely contain such a word."""
    values = [" (Not Set) ", "(none)", "UNKNOWN", "unknown", "", None, "Books", "Unknown Books", "(none)x", "books"]
    table = pl.DataFrame({"category": values * 3})
    reading = parse_module.Reading(date(2024, 1, 1), no_category_values={
        "category": parse_module.no_category_spellings(table["category"])})
    by_value = table.select(reading.no_category("category"))["category"].to_list()
    assert by_value == table.select(parse_module.no_category("category"))["category"].to_list()
    assert by_value[:10] == [True, True, True, True, True, True, False, False, False, False]
    # a file with no placeholder at all: the rule is only "empty"
    plain = pl.DataFrame({"category": ["Books", None, "Toys"]})
    assert parse_module.no_category_spellings(plain["category"]) == ()


def test_category_funnel_equals_an_event_level_reference() -> None:
    rows = store_log(seed=11, sessions=300)
    clean = events.sessionise(parse("\n".join([HEADER, *rows]) + "\n").clean)
    funnel = event_funnel(clean, "category")
    got = {r["category"]: (r["sessions_viewed"], r["sessions_carted"], r["sessions_purchased"])
           for r in funnel.iter_rows(named=True)}
    assert got == reference_funnel(rows)
    row = funnel.row(0, named=True)
    assert row["view_to_purchase_low"] <= row["view_to_purchase"] <= row["view_to_purchase_high"]
    assert abs(row["cart_abandonment"] + row["cart_to_purchase"] - 1) < 1e-12


def test_pairs_within_baskets_count_baskets_holding_both() -> None:
    baskets = pl.DataFrame({"basket": ["a", "a", "a", "b", "b", "c"], "item": ["x", "y", "y", "x", "y", "x"]})
    pairs, how = pairs_within(baskets, "basket", "item", min_baskets=1)
    assert how["baskets"] == 3 and how["tested_baskets"] == 2  # basket c holds one item: no pair in any null
    assert pairs.select("item_a", "item_b", "baskets_together", "baskets_a", "baskets_b").row(0) == ("x", "y", 2, 3, 2)
    assert abs(pairs["lift"][0] - 2 * 3 / (3 * 2)) < 1e-12


def test_conversion_by_hour_leaves_out_sessions_without_browsing() -> None:
    sessions = pl.DataFrame({
        "session_start": [datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 9, 30), datetime(2024, 1, 2, 9)],
        "browsing_time_sec": [10.0, 20.0, None],  # the last is an order: a purchase by construction
        "purchase_made": [True, False, True],
    }).with_columns(pl.col("session_start").dt.replace_time_zone("UTC"))
    hour = conversion_by_time(sessions).filter(grain="hour_of_day").row(0, named=True)
    assert (hour["level"], hour["sessions"], hour["purchases"], hour["conversion"]) == (9, 2, 1, 0.5)


# REES46's own header (category_code and user_* names, a category_id column we do not use) and the
# sources.yaml entry that maps it: nothing else declared
REES46_HEADER = "event_time,event_type,product_id,category_code,brand,price,user_id,user_session"
REES46_SOURCES = """- match: "events_*.csv"
  columns: {user_id: customer_id, user_session: session_id, category_code: category}
"""


def test_events_drop_flows_into_sessions_and_funnels(data_dir, instance, resources) -> None:
    rows = store_log(seed=5, sessions=80)
    (data_dir / "sources.yaml").write_text(REES46_SOURCES)
    drop(data_dir, "events_2019_10.csv", "\n".join([REES46_HEADER, *rows, rows[0][:25]]))
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["events"].height == len(set(rows))
    sessions = tables["sessions"]
    assert sessions.height == tables["events"]["session_id"].n_unique()
    expected = sum(float(r.split(",")[5]) for r in set(rows) if ",purchase," in r)
    assert abs(sessions["purchase_amount"].sum() - expected) < 1e-6
    assert sessions["page_views"].is_not_null().all() and sessions["session_start"].is_not_null().all()
    assert quarantine(data_dir, "events")["reason"][0].startswith("truncated last line")
    result = dg.materialize([raw_events, clean_events, category_funnel, item_funnel], instance=instance, resources=resources,
                            selection=[category_funnel, item_funnel])
    funnel = result.output_for_node("category_funnel")
    got = {r["category"]: (r["sessions_viewed"], r["sessions_carted"], r["sessions_purchased"])
           for r in funnel.iter_rows(named=True)}
    assert got == reference_funnel(rows)


def test_run_on_an_event_log_alone_exits_0_with_funnels_equal_to_the_reference(tmp_path) -> None:
    from ecom_assets.cli import main

    data = tmp_path / "data"
    (data / "landing").mkdir(parents=True)
    (data / "sources.yaml").write_text(REES46_SOURCES)
    rows = store_log(seed=8, sessions=200)
    (data / "landing" / "events_store.csv").write_text("\n".join([REES46_HEADER, *rows, rows[3][:40]]))
    assert main(["run", "--data-dir", str(data), "--no-automation"]) == 0
    funnel = pl.read_parquet(data / "warehouse" / "category_funnel.parquet")
    got = {r["category"]: (r["sessions_viewed"], r["sessions_carted"], r["sessions_purchased"])
           for r in funnel.iter_rows(named=True)}
    assert got == reference_funnel(rows)
    trends = pl.read_parquet(data / "warehouse" / "sales_trends.parquet")
    assert trends.filter(grain="hour_of_day")["sessions"].sum() == len({r.split(",")[-1] for r in rows})


# A daily export cut at midnight: customer C1's session runs 23:50-00:10 and lands half in each file.
# C1 comes back at 09:00 (a new session: > 30 minutes later); C2's session sits inside day 1.
DAY_1 = ["2024-05-01 23:50:00 UTC,view,P1,shoes,acme,,C1,S1",
         "2024-05-01 23:55:00 UTC,cart,P1,shoes,acme,30.00,C1,S1",
         "2024-05-01 10:00:00 UTC,view,P2,books,acme,,C2,S2"]
DAY_2 = ["2024-05-02 00:05:00 UTC,view,P3,bags,acme,,C1,S1",
         "2024-05-02 00:10:00 UTC,purchase,P1,shoes,acme,30.00,C1,S1",
         "2024-05-02 09:00:00 UTC,view,P3,bags,acme,,C1,S3"]


def export(rows: list[str], with_session_id: bool) -> str:
    if with_session_id:
        return "\n".join([HEADER, *rows]) + "\n"
    return "\n".join([HEADER.rsplit(",", 1)[0], *(r.rsplit(",", 1)[0] for r in rows)]) + "\n"


def check_whole_session(tables: dict, sessions_from_drops: int) -> None:
    sessions = tables["sessions"].sort("session_start")
    assert sessions.height == 3  # C2's, C1's night session, C1's morning session
    night = sessions.filter(pl.col("customer_id") == "C1").row(0, named=True)
    assert night["session_start"] == datetime(2024, 5, 1, 23, 50, tzinfo=night["session_start"].tzinfo)
    assert night["browsing_time_sec"] == 20 * 60 and night["session_date"] == date(2024, 5, 1)
    assert (night["page_views"], night["categories_viewed"], night["added_to_cart"], night["purchase_made"],
            night["purchase_amount"]) == (2, 2, True, True, 30.0)
    figures = tables["result"].asset_materializations_for_node("clean_sessions")[-1].metadata
    assert figures["rows_from_drops"].value == sessions_from_drops
    assert figures["merged_across_files"].value == 1
    # the run's console line for clean_sessions adds up: every term of the accounting is printed
    line = key_figure(figures)
    assert "+ 1 session parts merged across files" in line
    total, *parts = (int(n.replace(",", "")) for n in re.findall(r"[\d,]+\d|\d", line))
    assert total == sessions_from_drops == sum(parts)
    events = tables["events"]
    assert events.height == 6 and events["session_id"].n_unique() == 3
    assert set(events.filter(pl.col("event_time").dt.hour().is_in([23, 0]))["session_id"]) == {night["session_id"]}


@pytest.mark.parametrize("with_session_id", [True, False])
def test_a_session_cut_at_midnight_is_one_session_across_two_files(data_dir, instance, resources,
                                                                     with_session_id) -> None:
    drop(data_dir, "events_2024-05-01.csv", export(DAY_1, with_session_id))
    drop(data_dir, "events_2024-05-02.csv", export(DAY_2, with_session_id))
    check_whole_session(ingest_and_clean(data_dir, instance, resources), sessions_from_drops=4)


@pytest.mark.parametrize("with_session_id", [True, False])
def test_the_second_file_arriving_first_gives_the_same_session_and_a_redrop_counts_as_duplicates(
        data_dir, instance, resources, with_session_id) -> None:
    drop(data_dir, "events_2024-05-02.csv", export(DAY_2, with_session_id))
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "events_2024-05-01.csv", export(DAY_1, with_session_id))
    check_whole_session(ingest_and_clean(data_dir, instance, resources), sessions_from_drops=4)
    # the day-1 file again under another name: its two session parts and three events add nothing
    drop(data_dir, "events_2024-05-01_again.csv", export(DAY_1, with_session_id))
    tables = ingest_and_clean(data_dir, instance, resources)
    check_whole_session(tables, sessions_from_drops=6)
    figures = tables["result"].asset_materializations_for_node("clean_sessions")[-1].metadata
    assert figures["duplicates_across_files"].value == 2
    assert tables["result"].asset_materializations_for_node("clean_events")[-1].metadata[
        "duplicates_across_files"].value == 3


# GA4's BigQuery export, flattened one item per row: `ga_session_id` is the session start in epoch seconds,
# unique only per `user_pseudo_id`. Users A and B both start a session at 2024-05-01 23:50:00 UTC
# (1714607400); A's session runs past midnight into the next daily file, B buys an item GA4 sent without
# item_category; A comes back at 09:00 (a new session). session_start / page_view rows carry no item.
GA4_HEADER = "event_date,event_timestamp,event_name,user_pseudo_id,ga_session_id,item_id,item_category,price,quantity"
GA4_SOURCES = """- match: "events_ga4*.csv"
  columns: {event_timestamp: event_time, event_name: event_type, user_pseudo_id: customer_id, item_id: product_id,
            item_category: category, ga_session_id: session_id}
  date_format: epoch_us
"""
A, B = "1187604123.1714605000", "2039485761.1714606211"
GA4_DAY_1 = [f"20240501,1714607400120000,session_start,{A},1714607400,,,,",
             f"20240501,1714607400350000,session_start,{B},1714607400,,,,",
             f"20240501,1714607405000000,page_view,{A},1714607400,,,,",
             f"20240501,1714607406000000,page_view,{B},1714607400,,,,",
             f"20240501,1714607460000000,view_item,{A},1714607400,SH-1,Shoes,89.9,",
             f"20240501,1714607470000000,view_item,{B},1714607400,HT-1,,19.99,",
             f"20240501,1714607700000000,add_to_cart,{A},1714607400,SH-1,Shoes,89.9,1",
             f"20240501,1714607880000000,purchase,{B},1714607400,HT-1,,19.99,2"]
GA4_DAY_2 = [f"20240502,1714608300000000,view_item,{A},1714607400,BG-1,Bags,45.0,",
             f"20240502,1714608600000000,purchase,{A},1714607400,SH-1,Shoes,89.9,1",
             f"20240502,1714640400000000,session_start,{A},1714640400,,,,",
             f"20240502,1714640410000000,page_view,{A},1714640400,,,,"]


def test_two_users_who_start_a_session_in_the_same_second_have_two_sessions() -> None:
    text = "\n".join([HEADER,
                      "2024-05-01T23:50:00Z,view,SH-1,Shoes,,89.9,A,1714607400",
                      "2024-05-01T23:51:00Z,cart,SH-1,Shoes,,89.9,A,1714607400",
                      "2024-05-01T23:50:00Z,view,HT-1,Hats,,19.99,B,1714607400",
                      "2024-05-01T23:58:00Z,purchase,HT-1,Hats,,19.99,B,1714607400"]) + "\n"
    clean = events.sessionise(parse(text).clean)
    sessions = events.event_sessions(clean).sort("customer_id")
    assert sessions["customer_id"].to_list() == ["A", "B"]
    assert sessions["purchase_amount"].to_list() == [0.0, 19.99]
    assert sessions["added_to_cart"].to_list() == [True, False]
    funnel = {r["category"]: (r["sessions_viewed"], r["sessions_carted"], r["sessions_purchased"])
              for r in event_funnel(clean, "category").iter_rows(named=True)}
    assert funnel == {"Shoes": (1, 1, 0), "Hats": (1, 0, 1)}


def test_a_session_id_names_its_customer_and_no_two_customers_share_one() -> None:
    """The export's id is kept readable after the customer id; `#`, `@` and `%` inside it are %-encoded, so
    no two (customer, export id) pairs and no gap-rule id `<customer_id>@<time>` can write the same id."""
    text = "\n".join(["event_time,event_type,customer_id,product_id,session_id",
                      "2024-01-01T10:00:00Z,view,a#b,P1,c", "2024-01-01T10:00:00Z,view,a,P1,b#c",
                      "2024-01-01T10:00:00Z,view,c#d,P1,", "2024-01-01T10:00:00Z,view,c,P1,d@2024-01-01T10:00:00Z",
                      "2024-01-01T10:00:00Z,view,e,P1,50%"]) + "\n"
    ids = dict(events.sessionise(parse(text).clean).select("customer_id", "session_id").iter_rows())
    assert ids == {"a#b": "a#b#c", "a": "a#b%23c", "c#d": "c#d@2024-01-01T10:00:00Z",
                   "c": "c#d%402024-01-01T10:00:00Z", "e": "e#50%25"}


def test_funnels_count_only_events_about_a_product() -> None:
    """A page view or session start names no product: it is a page view of the session, never a view of
    category `unknown`; a product view GA4 sent without item_category is one."""
    text = "\n".join([HEADER,
                      "2024-01-01T10:00:00Z,page_view,,,,,U1,S1", "2024-01-01T10:01:00Z,view_item,P1,shoes,,50,U1,S1",
                      "2024-01-01T10:02:00Z,add_to_cart,P1,shoes,,50,U1,S1",
                      "2024-01-01T11:00:00Z,page_view,,,,,U2,S2", "2024-01-01T11:01:00Z,page_view,,,,,U2,S2",
                      "2024-01-01T12:00:00Z,page_view,,,,,U3,S3", "2024-01-01T12:01:00Z,view_item,P2,,,9,U3,S3"]) + "\n"
    clean = events.sessionise(parse(text).clean)
    by_category = {r["category"]: (r["sessions_viewed"], r["sessions_carted"], r["view_to_cart"])
                   for r in event_funnel(clean, "category").iter_rows(named=True)}
    assert by_category == {"shoes": (1, 1, 1.0), "unknown": (1, 0, 0.0)}
    assert set(event_funnel(clean, "product_id")["product_id"]) == {"P1", "P2"}
    sessions = events.event_sessions(clean).sort("customer_id")
    assert sessions["page_views"].to_list() == [2, 2, 2] and sessions["product_views"].to_list() == [1, 0, 1]


def test_ga4_sessions_are_per_user_across_daily_files(data_dir, instance, resources) -> None:
    (data_dir / "sources.yaml").write_text(GA4_SOURCES)
    drop(data_dir, "events_ga4_20240501.csv", "\n".join([GA4_HEADER, *GA4_DAY_1]) + "\n")
    drop(data_dir, "events_ga4_20240502.csv", "\n".join([GA4_HEADER, *GA4_DAY_2]) + "\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    sessions = tables["sessions"].sort("session_start", "customer_id")
    assert sessions.select("customer_id", "purchase_amount", "added_to_cart", "page_views").rows() == [
        (A, 89.9, True, 3), (B, 39.98, False, 2), (A, 0.0, False, 1)]
    assert sessions["session_id"].to_list() == [f"{A}#1714607400", f"{B}#1714607400", f"{A}#1714640400"]
    figures = tables["result"].asset_materializations_for_node("clean_sessions")[-1].metadata
    assert figures["merged_across_files"].value == 1 and figures["rows_from_drops"].value == 4
    owners = tables["events"].group_by("session_id").agg(pl.col("customer_id").n_unique())
    assert owners.height == 3 and (owners["customer_id"] == 1).all()
    result = dg.materialize([raw_events, clean_events, category_funnel, item_funnel], instance=instance,
                            resources=resources, selection=[category_funnel])
    funnel = {r["category"]: (r["sessions_viewed"], r["sessions_carted"], r["sessions_purchased"])
              for r in result.output_for_node("category_funnel").iter_rows(named=True)}
    assert funnel == {"Shoes": (1, 1, 1), "Bags": (1, 0, 0), "unknown": (1, 0, 1)}


# Snowplow / Segment-like: a UUID session id (domain_sessionid) names the session across files by itself
SNOWPLOW_HEADER = "derived_tstamp,event_name,domain_userid,product_id,product_category,price,domain_sessionid"
SNOWPLOW_SOURCES = """- match: "events_snowplow*.csv"
  columns: {derived_tstamp: event_time, event_name: event_type, domain_userid: customer_id,
            product_category: category, domain_sessionid: session_id}
"""


def test_uuid_session_ids_of_a_snowplow_export_still_make_one_session_across_files(data_dir, instance,
                                                                                      resources) -> None:
    night, other = "3f1c2a9e-8d4b-4f6a-9c1e-2b7d5e0a4c11", "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
    day_1 = [f"2024-05-01 23:50:00.120,product_view,u-1,P1,shoes,30.00,{night}",
             f"2024-05-01 23:55:00.000,add_to_cart,u-1,P1,shoes,30.00,{night}",
             f"2024-05-01 10:00:00.000,product_view,u-2,P2,books,12.00,{other}"]
    day_2 = [f"2024-05-02 00:10:00.000,transaction,u-1,P1,shoes,30.00,{night}"]
    (data_dir / "sources.yaml").write_text(SNOWPLOW_SOURCES)
    drop(data_dir, "events_snowplow_1.csv", "\n".join([SNOWPLOW_HEADER, *day_1]) + "\n")
    drop(data_dir, "events_snowplow_2.csv", "\n".join([SNOWPLOW_HEADER, *day_2]) + "\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    sessions = tables["sessions"].sort("customer_id")
    assert sessions["session_id"].to_list() == [f"u-1#{night}", f"u-2#{other}"]
    assert sessions.select("added_to_cart", "purchase_made", "purchase_amount").row(0) == (True, True, 30.0)
    assert sessions["browsing_time_sec"][0] == 20 * 60 - 0.12
    assert set(tables["events"]["session_id"]) == set(sessions["session_id"])


def test_repeated_row_hashes_found_by_the_integer_sort_match_the_text_sort() -> None:
    """`schemas.repeated` sorts integer values (row hashes) with numpy and everything else with polars;
    both must flag exactly the values that occur more than once (candidates for in-file duplicates)."""
    from ecom_assets.schemas import repeated

    rng = random.Random(5)
    numbers = [rng.randrange(0, 50) for _ in range(200)] + [2**64 - 1, 2**64 - 1, 0]
    hashes = pl.Series("h", numbers, dtype=pl.UInt64)
    assert repeated(hashes).to_list() == repeated(hashes.cast(pl.String)).to_list()
    assert repeated(hashes).to_list() == [numbers.count(n) > 1 for n in numbers]
    assert not repeated(pl.Series("h", [3, 1, 2], dtype=pl.UInt64)).any()
