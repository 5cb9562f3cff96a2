"""A new drop recomputes only the customers it touched, and the features equal a from-scratch build."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from ecom_assets.clean import clean_customers, clean_sessions
from ecom_assets.features import customer_features, customer_history
from ecom_assets.features.build import build_features
from ecom_assets.features.lifetime import lifetime_aggregates, update_with_drop
from ecom_assets.generate import generate
from ecom_assets.ingest import ingest_landing, raw_campaigns, raw_customers, raw_sessions
from ecom_assets.io import StoredParts
from ecom_assets_tests.ingest_helpers import drop

BUILD = [clean_customers, clean_sessions, customer_history, customer_features]


def build(data_dir: Path, instance, resources) -> dict:
    ingest_landing(instance, data_dir)
    result = dg.materialize([raw_customers, raw_sessions, raw_campaigns, *BUILD], selection=BUILD,
                            instance=instance, resources=resources)
    assert result.success
    return {k: v.value for k, v in result.asset_materializations_for_node("customer_history")[0].metadata.items()}


def test_new_drop_recomputes_touched_customers_only(tmp_path: Path, data_dir: Path, instance, resources) -> None:
    generate(tmp_path / "gen", customers=1500, sessions=30_000, seed=11)
    sessions = pl.read_csv(tmp_path / "gen" / "sessions.csv", infer_schema=False)
    (data_dir / "landing" / "customers.csv").write_bytes((tmp_path / "gen" / "customers.csv").read_bytes())
    history_rows = sessions.filter(pl.col("session_date") < "2024-12-01")
    history_rows.write_csv(data_dir / "landing" / "sessions_history.csv")
    first = build(data_dir, instance, resources)
    assert first["mode"] == "full"

    # next export: the December sessions of a few customers, and the as-of date moves forward
    december = sessions.filter(pl.col("session_date") >= "2024-12-01")
    touched = december["customer_id"].drop_nulls().unique().sort().head(40)
    new = december.filter(pl.col("customer_id").is_in(touched.implode()))
    new.write_csv(data_dir / "landing" / "sessions_december.csv")
    second = build(data_dir, instance, resources)
    assert second["mode"] == "incremental"
    assert 0 < second["customers_merged"] + second["customers_recomputed"] <= touched.len() < second["dagster/row_count"]

    clean = StoredParts(data_dir / "warehouse" / "clean_sessions").scan()
    customers = pl.read_parquet(data_dir / "warehouse" / "clean_customers.parquet")
    as_of = clean.select(pl.col("session_date").max()).collect().item()
    stored = pl.read_parquet(data_dir / "warehouse" / "customer_features.parquet")
    assert stored["as_of"][0] == as_of
    # float sums may differ in the last bit with a different row order; everything else is exact
    assert_frame_equal(stored, build_features(clean, customers, as_of)[0], check_exact=False, rel_tol=1e-12)

    # nothing new: nothing recomputed
    assert build(data_dir, instance, resources)["mode"] == "unchanged"
    # a new customers drop re-flags the stored parts (files rewritten): the history is recomputed in full
    drop(data_dir, "customers_late.csv", "customer_id,age,gender,location,signup_date\nCNEW,30,Female,Ghana,2024-01-01\n")
    assert build(data_dir, instance, resources)["mode"] == "full"


def test_category_mix_is_the_same_counted_wide_or_long() -> None:
    """Few categories are counted as columns in the main group-by; many fall back to a (customer,
    category) group-by. Ties go to the alphabetically first category; `unknown` never counts."""
    from ecom_assets.schemas import UNKNOWN_PRODUCT

    sessions = pl.DataFrame({
        "customer_id": ["A", "A", "A", "A", "B", "B", "C", "D", "D"],
        "session_date": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 9), eager=True),
        "product_viewed": ["Toys", "Books", "Toys", "Books", "Garden", UNKNOWN_PRODUCT, UNKNOWN_PRODUCT, "Books",
                           "Toys"],
        "browsing_time_sec": [10.0, 20.0, None, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0],
        "purchase_made": [True, False, True, True, False, True, False, True, True],
        "purchase_amount": [5.0, 0.0, 7.0, 9.0, 0.0, 3.0, 0.0, 4.0, 6.0],
    })
    wide = lifetime_aggregates(sessions).collect().sort("customer_id")
    long = lifetime_aggregates(sessions, max_wide=0).collect().sort("customer_id").select(wide.columns)
    assert_frame_equal(wide, long, check_exact=False, rel_tol=1e-12)
    mix = wide.select("customer_id", "distinct_categories", "favourite_category", "favourite_category_share",
                      "browsing_mean_sec", "gap_mean_days")
    assert mix.rows() == [("A", 2.0, "Books", 0.5, 70 / 3, 1.5), ("B", 1.0, "Garden", 1.0, 55.0, None),
                          ("C", 0.0, None, None, 70.0, None), ("D", 2.0, "Books", 0.5, 85.0, 1.0)]


def test_merging_drops_equals_recomputing_everything() -> None:
    """History merged drop by drop (new customers, purchases on the last purchase day, late purchases
    that split a gap, a category that appears later) equals the aggregates over all sessions at once."""
    generated = pl.DataFrame({
        "customer_id": [f"C{i % 37}" for i in range(600)],
        "session_date": [date(2024, 1, 1) + timedelta(days=(i * 7919) % 400) for i in range(600)],
        "product_viewed": [["Books", "Toys", "Garden", "unknown", f"New{i // 200}"][(i * 31) % 5] for i in range(600)],
        "browsing_time_sec": [None if i % 11 == 0 else float((i * 13) % 300) for i in range(600)],
        "purchase_made": [(i * 17) % 3 == 0 for i in range(600)],
    }).with_columns(purchase_amount=pl.when(pl.col("purchase_made")).then(pl.int_range(600) % 90 + 1.0).otherwise(0.0))
    drops = [generated.slice(0, 300), generated.slice(300, 150), generated.slice(450, 150)]
    history = lifetime_aggregates(drops[0]).collect().sort("customer_id")
    merged_total, late_total = 0, 0
    for n, drop_rows in enumerate(drops[1:], start=2):
        history, merged, late = update_with_drop(history, drop_rows, pl.concat(drops[:n]).lazy())
        merged_total, late_total = merged_total + merged, late_total + late
    assert merged_total > 0 and late_total > 0  # dates are shuffled: some drops carry purchases before the last one
    assert_frame_equal(history, lifetime_aggregates(generated).collect().sort("customer_id"), check_exact=False,
                       rel_tol=1e-12)


def test_tables_in_an_object_store_equal_the_local_ones(tmp_path: Path, monkeypatch) -> None:
    """With ECOM_WAREHOUSE_URL the IO manager keeps every table in an fsspec store (here fsspec's
    in-process memory file system; s3:// and gs:// take the same code path): a first build and an
    incremental drop give the same tables as the local warehouse, and nothing lands in data/warehouse."""
    from upath import UPath

    from ecom_assets.io import read_parquet
    from ecom_assets.resources import WAREHOUSE_URL_ENV, build_resources

    generate(tmp_path / "gen", customers=300, sessions=6_000, seed=5)
    sessions = pl.read_csv(tmp_path / "gen" / "sessions.csv", infer_schema=False)
    url = f"memory://ecom-test-{tmp_path.name}/warehouse"
    tables = {}
    for where in ("local", "remote"):
        data_dir = tmp_path / where
        (data_dir / "landing").mkdir(parents=True)
        if where == "remote":
            monkeypatch.setenv(WAREHOUSE_URL_ENV, url)
        (data_dir / "landing" / "customers.csv").write_bytes((tmp_path / "gen" / "customers.csv").read_bytes())
        sessions.filter(pl.col("session_date") < "2024-11-01").write_csv(data_dir / "landing" / "sessions_1.csv")
        with dg.instance_for_test() as instance:
            resources = build_resources(data_dir)
            assert build(data_dir, instance, resources)["mode"] == "full"
            sessions.filter(pl.col("session_date") >= "2024-11-01").write_csv(data_dir / "landing" / "sessions_2.csv")
            assert build(data_dir, instance, resources)["mode"] == "incremental"
        root = UPath(url) if where == "remote" else data_dir / "warehouse"
        tables[where] = {name: read_parquet(root / f"{name}.parquet") for name in ("customer_features", "customer_history")}
        tables[where]["clean_sessions"] = StoredParts(root / "clean_sessions").scan().collect()
    try:
        assert not list((tmp_path / "remote").glob("warehouse/**/*.parquet"))
        assert UPath(url).joinpath("raw_sessions").exists() and UPath(url).joinpath("clean_sessions", "_manifest.json").exists()
        for name, local in tables["local"].items():
            remote = tables["remote"][name]
            assert local.height > 0
            assert_frame_equal(local, remote, check_exact=False, rel_tol=1e-12)
    finally:
        UPath(url).fs.rm(UPath(url).path, recursive=True)


def _product_sessions(n: int, seed: int, start: date) -> pl.DataFrame:
    """An orders export without a category column: the product id stands in as `product_viewed`
    (hundreds of distinct values, a few popular), plus a real category literally called `other`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    products = np.where(rng.random(n) < 0.3, "other", np.char.add("SKU", (rng.zipf(1.6, n) % 400).astype(str)))
    buy = rng.random(n) < 0.4
    return pl.DataFrame({
        "customer_id": [f"C{i}" for i in rng.integers(0, 60, n)],
        "session_date": [start + timedelta(days=int(d)) for d in rng.integers(0, 120, n)],
        "product_viewed": products,
        "browsing_time_sec": rng.integers(0, 300, n).astype(float),
        "purchase_made": buy,
        "purchase_amount": np.where(buy, rng.integers(1, 90, n), 0).astype(float),
    })


def test_many_categories_are_capped_and_pooled_and_merging_stays_exact() -> None:
    from ecom_assets.features.lifetime import POOLED, visit_columns

    drops = [_product_sessions(800, 1, date(2024, 1, 1)), _product_sessions(300, 2, date(2024, 3, 1))]
    everything = pl.concat(drops)
    history = lifetime_aggregates(drops[0], max_categories=5).collect().sort("customer_id")
    assert len(visit_columns(history)) == 5 and POOLED in history.columns
    assert "visits::other" in visit_columns(history)  # an observed `other` is data, not the pool
    assert history[POOLED].sum() > 0
    merged = update_with_drop(history, drops[1], everything.lazy(), max_categories=5)
    scratch = lifetime_aggregates(everything, max_categories=5).collect().sort("customer_id")
    assert merged is not None  # the zipf head keeps the same top 5
    assert_frame_equal(merged[0], scratch, check_exact=False, rel_tol=1e-12)
    # every known visit is counted once: in a kept column or in the pool
    known = everything.filter(pl.col("product_viewed") != "unknown").height
    assert scratch.select(pl.sum_horizontal(POOLED, *visit_columns(scratch)).sum()).item() == known
    # a drop that makes a pooled product the most visited cannot be merged: it asks for a recompute
    surge = _product_sessions(300, 3, date(2024, 5, 1)).with_columns(product_viewed=pl.lit("SKU399"))
    assert update_with_drop(scratch, surge, pl.concat([everything, surge]).lazy(), max_categories=5) is None


def test_history_recomputes_when_a_drop_changes_the_kept_categories(tmp_path: Path) -> None:
    """update_history: a drop that keeps the top categories is merged; one whose pooled product
    overtakes a kept one is recomputed in full (mode says why), and both equal a from-scratch build."""
    from ecom_assets.features.history import update_history

    parts = []
    for n, rows in enumerate([_product_sessions(800, 1, date(2024, 1, 1)), _product_sessions(300, 2, date(2024, 3, 1)),
                              _product_sessions(300, 3, date(2024, 5, 1)).with_columns(product_viewed=pl.lit("SKU399"))]):
        parts.append(tmp_path / f"part-{n}.parquet")
        rows.write_parquet(parts[-1])
    history, summary, covers = update_history(None, None, parts[:1], max_categories=5)
    modes = [summary["mode"]]
    for n in (2, 3):
        history, summary, covers = update_history(history, covers, parts[:n], max_categories=5)
        modes.append(summary["mode"])
    assert modes == ["full", "incremental", "full (top categories changed)"]
    scratch = lifetime_aggregates(pl.scan_parquet(parts), max_categories=5).collect().sort("customer_id")
    assert "visits::SKU399" in history.columns
    assert_frame_equal(history, scratch, check_exact=False, rel_tol=1e-12)


def _unit_sessions() -> pl.DataFrame:
    """C1 buys from orders (items known), C2 from a sessions export (no item count) and orders, C3 only browses."""
    rows = [("C1", 1, True, 40.0, 4.0), ("C1", 9, True, 10.0, 6.0), ("C1", 12, False, 0.0, None),
            ("C2", 2, True, 30.0, 3.0), ("C2", 5, True, 20.0, None), ("C3", 3, False, 0.0, None)]
    return pl.DataFrame(
        [(c, date(2024, 1, d), "Books", 60.0, b, a, u) for c, d, b, a, u in rows], orient="row",
        schema={"customer_id": pl.String, "session_date": pl.Date, "product_viewed": pl.String,
                "browsing_time_sec": pl.Float64, "purchase_made": pl.Boolean, "purchase_amount": pl.Float64,
                "units_purchased": pl.Float64})


def test_items_bought_and_spend_per_item_only_where_every_purchase_counts_its_items() -> None:
    history = lifetime_aggregates(_unit_sessions()).collect().sort("customer_id")
    got = dict(zip(history["customer_id"], zip(history["n_units"], history["spend_per_unit"])))
    assert got == {"C1": (10.0, 5.0), "C2": (None, None), "C3": (None, None)}
    # merged drop by drop (the second drop adds C1's later order) it is the same
    rows = _unit_sessions()
    early = pl.col("session_date") < date(2024, 1, 9)
    first, later = rows.filter(early), rows.filter(~early)
    merged, _, _ = update_with_drop(lifetime_aggregates(first).collect().sort("customer_id"), later, rows.lazy())
    assert_frame_equal(merged, history, check_exact=False, rel_tol=1e-12)
    # sessions without the column at all (stored by an older version): no item counts, nothing fails
    old = lifetime_aggregates(rows.drop("units_purchased")).collect()
    assert old["n_units"].null_count() == old.height


def test_history_stored_without_item_counts_is_recomputed(tmp_path: Path) -> None:
    from ecom_assets.features.history import update_history

    part = tmp_path / "part-0.parquet"
    _unit_sessions().write_parquet(part)
    history, _, covers = update_history(None, None, [part])
    older = history.drop("units", "unit_orders", "n_units", "spend_per_unit")  # a state kept before the columns
    again, summary, _ = update_history(older, covers, [part])
    assert summary["mode"] == "full" and again["n_units"].drop_nulls().to_list() == [10.0]
