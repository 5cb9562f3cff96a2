"""An order exported again in a later orders drop: its newest export replaces every row of its earlier ones,
in clean_order_lines, clean_returns and clean_sessions alike (Shopify daily exports re-include edited orders;
WooCommerce statuses move processing -> completed -> refunded)."""

import polars as pl

from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean

HEADER = "order_id,customer_id,order_time,product_id,category,quantity,unit_price,status,currency\n"
# day 1: three paid orders (#5001 two items, #5002 one item, #5003 two items)
DAY_1 = HEADER + """#5001,C1,2024-05-01T09:00:00Z,SKU-1,Home,2,10.00,paid,usd
#5001,C1,2024-05-01T09:00:00Z,SKU-2,Books,1,25.00,paid,usd
#5002,C2,2024-05-01T10:00:00Z,SKU-3,Books,1,8.00,paid,usd
#5003,C3,2024-05-01T11:00:00Z,SKU-1,Home,1,10.00,paid,usd
#5003,C3,2024-05-01T11:00:00Z,SKU-2,Books,1,25.00,paid,usd
"""


def _checks(tables: dict) -> dict[str, bool]:
    """asset -> whether its rows_accounted_for check passed in this build."""
    result = tables["result"]
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()
            if e.check_name == "rows_accounted_for"}


def _accounting(tables: dict, asset: str) -> tuple[int, int, int, int]:
    """(rows from drops, kept, duplicates across files, superseded) from the asset's metadata."""
    m = tables["result"].asset_materializations_for_node(asset)[0].metadata
    return (m["rows_from_drops"].value, m["dagster/row_count"].value, m["duplicates_across_files"].value,
            m["superseded_by_later_drop"].value)


def _two_drops(data_dir, instance, resources, day_2: str) -> dict:
    drop(data_dir, "orders_2024-05-01.csv", DAY_1)
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "orders_2024-05-02.csv", HEADER + day_2)
    return ingest_and_clean(data_dir, instance, resources)


def _net_revenue(tables: dict) -> tuple[float, float, float]:
    from ecom_assets.insights.assets import sales_trends

    trends = sales_trends(clean_sessions=tables["sessions"].lazy(), clean_returns=tables["returns"].lazy(),
                          clean_order_lines=tables["order_lines"].lazy())
    return tuple(trends.metadata[k].value for k in ("revenue", "refunds", "net_revenue"))


def test_an_order_refunded_in_a_later_drop_is_no_longer_a_purchase(data_dir, instance, resources) -> None:
    # day 2 re-exports #5001 whole, refunded (Shopify's Financial Status after a full refund)
    tables = _two_drops(data_dir, instance, resources, """#5001,C1,2024-05-01T09:00:00Z,SKU-1,Home,2,10.00,refunded,usd
#5001,C1,2024-05-01T09:00:00Z,SKU-2,Books,1,25.00,refunded,usd
""")
    assert "#5001" not in tables["order_lines"]["order_id"].to_list()
    assert sorted(tables["sessions"]["session_id"].to_list()) == ["#5002", "#5003"]
    returns = tables["returns"]
    assert returns["order_id"].to_list() == ["#5001", "#5001"] and not returns["is_refund"].any()
    assert returns["source_file"].str.starts_with("orders_2024-05-02").all()
    # the refunded order never was revenue: not bought, and not subtracted as a refund either
    assert _net_revenue(tables) == (8.0 + 35.0, 0.0, 43.0)
    # 5 purchased lines from the drops = 3 kept + 2 superseded; 3 sessions = 2 kept + 1 superseded
    assert _accounting(tables, "clean_order_lines") == (5, 3, 0, 2)
    assert _accounting(tables, "clean_returns") == (2, 2, 0, 0)
    assert _accounting(tables, "clean_sessions") == (3, 2, 0, 1)
    assert all(_checks(tables).values()) and len(_checks(tables)) == 5


def test_woocommerce_status_changes_keep_the_latest_state(data_dir, instance, resources) -> None:
    # WooCommerce: #5002 processing (day 1 wrote paid), completed on day 2, cancelled on day 3
    drop(data_dir, "orders_2024-05-01.csv", DAY_1)
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "orders_2024-05-02.csv", HEADER + "#5002,C2,2024-05-01T10:00:00Z,SKU-3,Books,1,8.00,completed,usd\n")
    completed = ingest_and_clean(data_dir, instance, resources)
    assert "#5002" in completed["sessions"]["session_id"].to_list()
    drop(data_dir, "orders_2024-05-03.csv", HEADER + "#5002,C2,2024-05-01T10:00:00Z,SKU-3,Books,1,8.00,cancelled,usd\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    assert sorted(tables["sessions"]["session_id"].to_list()) == ["#5001", "#5003"]
    assert "#5002" not in tables["order_lines"]["order_id"].to_list()
    assert tables["returns"]["source_file"].str.starts_with("orders_2024-05-03").to_list() == [True]
    assert _accounting(tables, "clean_order_lines") == (6, 4, 0, 2)
    assert _accounting(tables, "clean_sessions") == (4, 2, 1, 1)  # day 2's session equals day 1's: a duplicate
    assert all(_checks(tables).values())


def test_a_partial_refund_in_a_later_drop_is_subtracted_once(data_dir, instance, resources) -> None:
    # day 2 re-exports #5001 partially refunded: both items as bought, the book given back as a -1 line
    tables = _two_drops(data_dir, instance, resources, """#5001,C1,2024-05-01T09:00:00Z,SKU-1,Home,2,10.00,partially_refunded,usd
#5001,C1,2024-05-01T09:00:00Z,SKU-2,Books,1,25.00,partially_refunded,usd
#5001,C1,2024-05-03T15:00:00Z,SKU-2,Books,-1,25.00,partially_refunded,usd
""")
    amounts = dict(zip(tables["sessions"]["session_id"], tables["sessions"]["purchase_amount"]))
    assert amounts == {"#5001": 45.0, "#5002": 8.0, "#5003": 35.0}
    assert tables["order_lines"].filter(pl.col("order_id") == "#5001")["status"].to_list() == ["partially_refunded"] * 2
    assert tables["returns"]["is_refund"].to_list() == [True]
    assert _net_revenue(tables) == (88.0, 25.0, 63.0)
    assert all(_checks(tables).values())


def test_a_line_removed_in_a_later_drop_is_gone_from_every_table(data_dir, instance, resources) -> None:
    # day 1: #5004 bought two items and gave one back (-1 line); day 2 re-exports it without the refund line
    # (the refund was reversed) and #5003 without its book (edited order)
    drop(data_dir, "orders_2024-05-01.csv", DAY_1 + "#5004,C4,2024-05-01T12:00:00Z,SKU-1,Home,2,10.00,paid,usd\n"
         "#5004,C4,2024-05-01T12:00:00Z,SKU-1,Home,-1,10.00,paid,usd\n")
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "orders_2024-05-02.csv", HEADER + "#5003,C3,2024-05-01T11:00:00Z,SKU-1,Home,1,10.00,paid,usd\n"
         "#5004,C4,2024-05-01T12:00:00Z,SKU-1,Home,2,10.00,paid,usd\n")
    tables = ingest_and_clean(data_dir, instance, resources)
    assert tables["returns"].is_empty()
    assert tables["order_lines"].filter(pl.col("order_id") == "#5003")["product_id"].to_list() == ["SKU-1"]
    amounts = dict(zip(tables["sessions"]["session_id"], tables["sessions"]["purchase_amount"]))
    assert amounts == {"#5001": 45.0, "#5002": 8.0, "#5003": 10.0, "#5004": 20.0}
    assert _net_revenue(tables) == (83.0, 0.0, 83.0)
    # returns: day 1's -1 line superseded; lines: 8 = 5 kept + 2 identical to a kept line + #5003's book
    assert _accounting(tables, "clean_returns") == (1, 0, 0, 1)
    assert _accounting(tables, "clean_order_lines") == (8, 5, 2, 1)
    assert all(_checks(tables).values())


def test_refund_lines_exported_alone_later_add_to_the_order(data_dir, instance, resources) -> None:
    # an incremental export of the day's transactions: day 2 holds only #5001's refund line (the order itself
    # is not restated), so the purchase stays and the refund is subtracted once
    tables = _two_drops(data_dir, instance, resources,
                        "#5001,C1,2024-05-02T15:00:00Z,SKU-2,Books,-1,25.00,partially_refunded,usd\n")
    assert tables["order_lines"].filter(pl.col("order_id") == "#5001").height == 2
    assert "#5001" in tables["sessions"]["session_id"].to_list()
    assert tables["returns"]["is_refund"].to_list() == [True]
    assert _net_revenue(tables) == (88.0, 25.0, 63.0)
    # day 3 restates #5001 with the same refund line: nothing counted twice
    drop(data_dir, "orders_2024-05-03.csv", HEADER + """#5001,C1,2024-05-01T09:00:00Z,SKU-1,Home,2,10.00,partially_refunded,usd
#5001,C1,2024-05-01T09:00:00Z,SKU-2,Books,1,25.00,partially_refunded,usd
#5001,C1,2024-05-02T15:00:00Z,SKU-2,Books,-1,25.00,partially_refunded,usd
""")
    tables = ingest_and_clean(data_dir, instance, resources)
    assert _net_revenue(tables) == (88.0, 25.0, 63.0)
    assert _accounting(tables, "clean_returns") == (2, 1, 1, 0)
    assert all(_checks(tables).values())


def test_the_latest_drop_wins_even_when_its_order_times_are_older(data_dir, instance, resources) -> None:
    # "newer" is the drop ingested later (the contract has no export time): a later drop restating #5002 with
    # an earlier order_time (a corrected clock) still replaces it, and its refund status holds
    tables = _two_drops(data_dir, instance, resources,
                        "#5002,C2,2024-04-30T22:00:00Z,SKU-3,Books,1,8.00,refunded,usd\n")
    assert "#5002" not in tables["sessions"]["session_id"].to_list()
    assert tables["returns"]["order_date"].cast(pl.String).to_list() == ["2024-04-30"]
    assert all(_checks(tables).values())


def test_cli_run_after_a_refund_drop_counts_the_superseded_order(tmp_path, cli_env, capsys) -> None:
    from ecom_assets.cli import main

    data = tmp_path / "data"
    drop(data, "orders_2024-05-01.csv", DAY_1)
    assert main(["run", "--data-dir", str(data), "--no-automation"]) == 0
    drop(data, "orders_2024-05-02.csv", HEADER + "#5003,C3,2024-05-01T11:00:00Z,SKU-1,Home,1,10.00,refunded,usd\n"
         "#5003,C3,2024-05-01T11:00:00Z,SKU-2,Books,1,25.00,refunded,usd\n")
    capsys.readouterr()
    assert main(["run", "--data-dir", str(data), "--no-automation"]) == 0
    out = capsys.readouterr().out
    sessions = pl.read_parquet(data / "warehouse" / "clean_sessions" / "part-*.parquet")
    assert sorted(sessions["session_id"].to_list()) == ["#5001", "#5002"]
    assert "rows from drops 3 = 2 kept + 0 duplicate across files + 1 superseded" in out
    assert "rows from drops 5 = 3 kept + 0 duplicate across files + 2 superseded" in out


def test_a_refund_line_delivered_again_alone_after_its_order_is_one_refund() -> None:
    # pure rule, both arrival orders: the version holds the -1 line, then a refunds-only export repeats it
    # (overlapping incremental exports), and a second refunds-only export brings a new refund
    from datetime import datetime, timedelta, timezone

    from ecom_assets.clean.tables import latest_per_order

    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    lines = pl.DataFrame({
        "order_id": ["#6001"] * 5,
        "product_id": ["SKU-1", "SKU-2", "SKU-2", "SKU-2", "SKU-1"],
        "quantity": [1.0, 1.0, -1.0, -1.0, -1.0],
        "status": ["partially_refunded"] * 5,
        "source_file": ["orders_1", "orders_1", "orders_1", "orders_2", "orders_3"],
        "line": [2, 3, 4, 2, 2],
        "ingested_at": [start] * 3 + [start + timedelta(days=1), start + timedelta(days=2)],
    }).with_columns(is_return=pl.col("quantity") < 0, is_refund=pl.col("quantity") < 0)
    content = ["order_id", "product_id", "quantity", "status", "is_return"]
    refunds = latest_per_order(lines, content, table=pl.col("is_return"))
    assert sorted(zip(refunds.kept["source_file"], refunds.kept["product_id"])) == [("orders_1", "SKU-2"),
                                                                                    ("orders_3", "SKU-1")]
    assert (refunds.rows_from_drops, refunds.rows, refunds.duplicates_across_files, refunds.superseded) == (3, 2, 1, 0)
    bought = latest_per_order(lines, content, table=~pl.col("is_return"))
    assert (bought.rows, bought.duplicates_across_files, bought.superseded) == (2, 0, 0)
