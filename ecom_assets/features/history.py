"""`customer_history` kept up to date: recompute the customers a new drop touched, keep the rest.

Lifetime aggregates are per-customer functions of that customer's sessions, so when new parts
arrive and no stored part changed, only the customers that appear in the new parts can have a
different row. A changed or removed part (a drop re-ingested, a row superseded, the customer
flags recomputed) falls back to a full recompute.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ecom_assets.features.build import LIFETIME_INPUTS, lifetime_aggregates
from ecom_assets.io import file_identity


def update_history(previous: pl.DataFrame | None, covered: dict[str, list[int]] | None,
                   parts: list[Path]) -> tuple[pl.DataFrame, str, int, dict[str, list[int]]]:
    """(lifetime aggregates over `parts`, mode, customers recomputed, what the result covers:
    file name -> [size, mtime_ns], to be recorded in the materialization's metadata)."""
    current = {p.name: file_identity(p) for p in parts}
    table, mode, recomputed = _update(previous, covered, parts, current)
    return table, mode, recomputed, current


def _update(previous: pl.DataFrame | None, covered: dict[str, list[int]] | None, parts: list[Path],
            current: dict[str, list[int]]) -> tuple[pl.DataFrame, str, int]:
    if not parts:
        return lifetime_aggregates(_empty_sessions()).collect(), "full", 0
    reusable = previous is not None and covered is not None and all(
        current.get(name) == identity for name, identity in covered.items())
    if not reusable:
        table = lifetime_aggregates(pl.scan_parquet(parts)).collect().sort("customer_id")
        return table, "full", table.height
    new_parts = [p for p in parts if p.name not in covered]
    if not new_parts:
        return previous, "unchanged", 0
    touched = pl.scan_parquet(new_parts).select("customer_id").unique().collect()
    # is_in on the scan, not a semi join: the filter runs inside the parquet reader (0.36 vs 0.50 s at 10M
    # rows); collected once, as the aggregation reads these sessions more than once
    sessions = (pl.scan_parquet(parts).select(LIFETIME_INPUTS)
                .filter(pl.col("customer_id").is_in(touched["customer_id"].implode())).collect())
    recomputed = lifetime_aggregates(sessions).collect()
    table = pl.concat([previous.join(touched, on="customer_id", how="anti"), recomputed.select(previous.columns)])
    return table.sort("customer_id"), "incremental", recomputed.height


def _empty_sessions() -> pl.LazyFrame:
    from ecom_assets.schemas import CleanSessions, empty_frame

    return empty_frame(CleanSessions).lazy()
