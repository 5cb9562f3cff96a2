"""clean_sessions stored as parts: merging drops one at a time gives exactly the from-scratch result."""

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from ecom_assets.clean.store import merge_sessions, session_shaped
from ecom_assets.clean.tables import SESSION_CONTENT, latest_per_id
from ecom_assets.io import StoredParts
from ecom_assets_tests.ingest_helpers import CUSTOMERS_HEADER, SESSIONS_HEADER, drop, ingest_and_clean

CUSTOMERS = pl.DataFrame({
    "customer_id": ["C1", "C2", "C3"],
    "signup_date": [date(2024, 1, 1), date(2024, 3, 1), None],
})
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def raw_drop(folder: Path, n: int, index: int, rng: np.random.Generator, id_pool: int) -> tuple[str, Path]:
    """A typed raw partition as `raw_sessions` stores it; ids drawn from a small pool so drops clash."""
    key = f"sessions_{index:02d}.csv__{index:012d}"
    ids = rng.integers(0, id_pool, n)
    # content is a function of the id except browsing time (usually 60 s): re-deliveries are often exact
    frame = pl.DataFrame({
        "session_id": [f"S{i}" for i in ids],
        "customer_id": [f"C{i % 4 + 1}" for i in ids],  # C4 is not a known customer
        "session_date": [date(2024, 1, 1) + timedelta(days=int(i)) for i in ids],
        "product_viewed": ["Books" if i % 2 else "Home" for i in ids],
        "browsing_time_sec": np.where(rng.random(n) < 0.7, 60.0, 120.0).tolist(),
        "purchase_made": [False] * n,
        "purchase_amount": [0.0] * n,
        "added_to_cart": [None] * n,
        "session_start": [None] * n,
    }, schema_overrides={"added_to_cart": pl.Boolean, "session_start": pl.Datetime("us", "UTC")}).with_columns(
        source_file=pl.lit(key), line=pl.int_range(2, n + 2, dtype=pl.Int64),
        ingested_at=pl.lit(START + timedelta(minutes=index)).cast(pl.Datetime("us", "UTC")),
    )
    path = folder / "raw" / f"{key}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return key, path


def test_merging_drop_by_drop_equals_merging_all_at_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    drops = dict(raw_drop(tmp_path, 40, i, rng, id_pool=60) for i in range(6))
    incremental = StoredParts(tmp_path / "incremental")
    reports = []
    for upto in range(1, len(drops) + 1):
        reports.append(merge_sessions(incremental, dict(list(drops.items())[:upto]), CUSTOMERS))
    at_once = StoredParts(tmp_path / "at_once")
    full = merge_sessions(at_once, drops, CUSTOMERS)
    order = ["session_id"]
    assert incremental.scan().collect().sort(order).equals(at_once.scan().collect().sort(order))
    last = reports[-1]
    assert last.mode == "incremental" and full.mode == "incremental"
    assert (last.rows, last.duplicates_across_files, last.superseded) == (full.rows, full.duplicates_across_files,
                                                                          full.superseded)
    assert last.accounted and last.rows_from_drops == 240
    assert last.duplicates_across_files > 0 and last.superseded > 0 and last.rewritten_parts > 0
    # the batch rule on the union agrees too
    union = session_shaped(pl.concat([pl.read_parquet(p) for p in drops.values()]))  # as merge_sessions sees them
    batch = latest_per_id(union, "session_id", SESSION_CONTENT)
    assert (batch.rows, batch.duplicates_across_files, batch.superseded) == (last.rows, last.duplicates_across_files,
                                                                             last.superseded)
    assert incremental.scan().select(pl.col("session_id").is_unique().all()).collect().item()


def test_latest_version_wins_even_when_it_reverts_to_an_older_content(tmp_path: Path) -> None:
    rows = pl.DataFrame({
        "session_id": ["S1"] * 3, "content": ["a", "b", "a"], "source_file": ["f1", "f2", "f3"],
        "line": [2, 2, 2], "ingested_at": [START, START + timedelta(1), START + timedelta(2)],
    })
    dedup = latest_per_id(rows, "session_id", ["session_id", "content"])
    assert dedup.kept["content"].to_list() == ["a"] and dedup.kept["source_file"].to_list() == ["f3"]
    assert (dedup.duplicates_across_files, dedup.superseded) == (0, 2)


def test_reingested_drop_rebuilds_and_changed_customers_only_reflag(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    drops = dict(raw_drop(tmp_path, 30, i, rng, id_pool=1000) for i in range(3))
    parts = StoredParts(tmp_path / "clean")
    assert merge_sessions(parts, drops, CUSTOMERS).mode == "incremental"
    assert merge_sessions(parts, drops, CUSTOMERS).mode == "unchanged"
    before = parts.scan().collect()
    assert before["unknown_customer"].sum() == (before["customer_id"] == "C4").sum() > 0
    known = pl.concat([CUSTOMERS, pl.DataFrame({"customer_id": ["C4"], "signup_date": [date(2030, 1, 1)]})])
    reflagged = merge_sessions(parts, drops, known)
    after = parts.scan().collect()
    assert reflagged.reflagged_parts == 3 and after["unknown_customer"].sum() == 0
    assert after.filter(pl.col("customer_id") == "C4")["before_signup"].all()
    # a drop re-ingested (its raw partition rewritten) invalidates the parts: rebuilt from scratch
    key, path = next(iter(drops.items()))
    pl.read_parquet(path).head(10).write_parquet(path)
    rebuilt = merge_sessions(parts, drops, known)
    assert rebuilt.mode == "rebuild" and key in rebuilt.reason and rebuilt.accounted
    assert rebuilt.rows_from_drops == 70


def test_uniqueness_check_catches_a_repeated_id_and_passes_distinct_ones() -> None:
    import pandera.errors

    from ecom_assets.schemas import CleanCustomers

    row = {"age": 30, "age_out_of_range": False, "gender": "F", "location": "x", "signup_date": date(2024, 1, 1),
           "source_file": "f", "line": 2}
    distinct = pl.DataFrame([{"customer_id": f"C{i}", **row} for i in range(1000)])
    assert CleanCustomers.validate(distinct).height == 1000
    repeated_id = pl.concat([distinct, distinct.tail(1)])
    try:
        CleanCustomers.validate(repeated_id)
    except pandera.errors.SchemaError as err:
        assert "unique" in str(err) and "C999" in str(err)
    else:
        raise AssertionError("a repeated customer_id passed validation")


def _unknown_customers_check(tables: dict):
    return next(c for c in tables["result"].get_asset_check_evaluations()
                if c.check_name == "sessions_of_unknown_customers")


def test_unknown_customers_check_is_no_noise_without_a_customers_file(data_dir, instance, resources) -> None:
    """An orders- or sessions-only shop (no customers*.csv ever dropped): every session names a customer the
    shop knows only from their sessions. The WARN check used to fail on 100 % of them; it passes and says why,
    and still fails once a customers file exists that lacks a customer the sessions name (C9)."""
    drop(data_dir, "sessions_2024-01.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.90\n"
         "S2,C2,2024-01-03,Home,60,0,0\nS3,C9,2024-01-05,Books,45,0,0\n")
    alone = _unknown_customers_check(ingest_and_clean(data_dir, instance, resources))
    assert alone.passed
    assert alone.description.startswith("no customers file dropped: customers are known only from their "
                                        "orders/sessions")
    assert alone.metadata["sessions"].value == 3  # the rows keep their flag: the check only stops crying wolf
    drop(data_dir, "customers.csv", CUSTOMERS_HEADER + "\nC1,34,F,Leeds,2023-05-01\nC2,51,M,York,2023-07-12\n")
    known = _unknown_customers_check(ingest_and_clean(data_dir, instance, resources))
    assert not known.passed
    assert known.description.startswith("1 sessions reference a customer_id not in clean_customers")
