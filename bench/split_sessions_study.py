"""Sessions cut at midnight between two daily events drops: incremental merge time and exactness.

    PYTHONPATH=. python bench/split_sessions_study.py

2M events (100k customers, visits of four events over two days, no export session id) split into a
day-1 and a day-2 drop, each sessionised on its own as ingest does, then merged into clean_sessions
one drop after the other (clean/store.py). Prints the merge times, the row accounting, and whether
the result equals one sessionisation of all events at once (purchase amounts within 1e-9).
"""

import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from ecom_assets.clean.store import merge_sessions
from ecom_assets.clean.tables import EVENT_CONTENT, distinct_events
from ecom_assets.ingest.events import event_sessions, sessionise, sessionise_across_drops
from ecom_assets.io import StoredParts


def main() -> None:
    rng = np.random.default_rng(0)
    n, customers = 2_000_000, 100_000
    offsets = rng.integers(0, 2 * 86400, n // 4).repeat(4) + np.tile([0, 120, 300, 480], n // 4)
    times = pl.Series("event_time", np.datetime64("2024-05-01T00:00:00", "us") + offsets.astype("timedelta64[s]"))
    kinds = rng.choice(["view", "cart", "purchase"], n, p=[0.8, 0.15, 0.05])
    events = pl.DataFrame({
        "event_time": times.dt.replace_time_zone("UTC"), "event_type": kinds, "event_name": kinds,
        "customer_id": pl.Series(rng.integers(0, customers, n // 4).repeat(4)).cast(pl.String),
        "product_id": pl.Series(rng.integers(0, 500, n)).cast(pl.String),
        "session_id": pl.Series([None] * n, dtype=pl.String),
        "category": pl.Series(rng.integers(0, 20, n)).cast(pl.String), "brand": pl.Series([None] * n, dtype=pl.String),
        "price": rng.random(n) * 50, "quantity": pl.Series([None] * n, dtype=pl.Float64),
    }).with_columns(event_date=pl.col("event_time").dt.date())
    first_day = events["event_date"] == date(2024, 5, 1)
    folder = Path(tempfile.mkdtemp())
    sessions, raw_events = {}, {}
    drops = [("events_d1__a", events.filter(first_day)), ("events_d2__b", events.filter(~first_day))]
    for i, (key, part) in enumerate(drops):
        part = sessionise(part.with_row_index("line", offset=2).with_columns(
            pl.col("line").cast(pl.Int64), source_file=pl.lit(key),
            ingested_at=pl.lit(datetime(2024, 6, 1 + i, tzinfo=timezone.utc)).dt.cast_time_unit("us")))
        raw_events[key] = folder / f"{key}.events.parquet"
        part.write_parquet(raw_events[key])
        sessions[key] = folder / f"{key}.sessions.parquet"
        event_sessions(part).with_columns(ingested_at=pl.lit(part["ingested_at"][0])).write_parquet(sessions[key])
    signups = pl.DataFrame({"customer_id": pl.Series(range(customers)).cast(pl.String)}).with_columns(
        signup_date=pl.lit(None, pl.Date))
    parts = StoredParts(folder / "clean_sessions")
    started = time.perf_counter()
    merge_sessions(parts, {"events_d1__a": sessions["events_d1__a"]}, signups, raw_events)
    middle = time.perf_counter()
    report = merge_sessions(parts, sessions, signups, raw_events)
    print(f"day-1 merge {middle - started:.1f} s, day-2 merge {time.perf_counter() - middle:.1f} s")
    print({k: getattr(report, k) for k in ("rows_from_drops", "rows", "duplicates_across_files", "superseded",
                                            "merged_across_files", "accounted")})
    table = parts.scan().collect()
    everything = pl.concat([pl.read_parquet(p) for p in raw_events.values()])
    reference = event_sessions(distinct_events(sessionise_across_drops(everything), EVENT_CONTENT).kept)
    columns = ["session_id", "session_start", "browsing_time_sec", "page_views", "categories_viewed", "added_to_cart",
               "purchase_made"]
    same = table.select(columns).sort("session_id").equals(reference.select(columns).sort("session_id"))
    amounts = table.select("session_id", "purchase_amount").join(reference.select("session_id", "purchase_amount"),
                                                                 on="session_id", suffix="_ref")
    close = amounts.height == reference.height and bool(
        ((amounts["purchase_amount"] - amounts["purchase_amount_ref"]).abs() <= 1e-9).all())
    print(f"sessions {table.height:,} (one pass over all events: {reference.height:,}); page views "
          f"{table['page_views'].sum():,} = view events {int((events['event_type'] == 'view').sum()):,}; "
          f"equal to one pass: {same and close}")


if __name__ == "__main__":
    main()
