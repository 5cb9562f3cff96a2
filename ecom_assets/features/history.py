"""`customer_history` kept up to date: a new drop is merged into the stored state, nothing re-read.

Between full rebuilds a new drop only adds sessions (a drop that supersedes stored rows rewrites
their part, which is a change), so each customer in the new parts gets its stored state combined
with the state of its new sessions (`lifetime.merge_drop`); customers with a purchase dated before
their stored last purchase are recomputed from their sessions. A changed or removed part (a drop
re-ingested, a row superseded, the customer flags recomputed) falls back to a full recompute.
"""

from __future__ import annotations

import polars as pl

from ecom_assets.features.lifetime import MAX_CATEGORIES, POOLED, lifetime_aggregates, lifetime_inputs, update_with_drop
from ecom_assets.io import Location, file_identity, scan_parquet


def update_history(previous: pl.DataFrame | None, covered: dict[str, list[int]] | None, parts: list[Location],
                   max_categories: int = MAX_CATEGORIES) -> tuple[pl.DataFrame, dict, dict[str, list[int]]]:
    """(lifetime aggregates over `parts` with visit columns for the `max_categories` most visited
    categories, what happened {mode, customers_merged, customers_recomputed}, what the result covers:
    file name -> [size, mtime_ns], for the materialization's metadata)."""
    current = {p.name: file_identity(p) for p in parts}
    table, summary = _update(previous, covered, parts, current, max_categories)
    return table, summary, current


def _update(previous: pl.DataFrame | None, covered: dict[str, list[int]] | None, parts: list[Location],
            current: dict[str, list[int]], max_categories: int) -> tuple[pl.DataFrame, dict]:
    if not parts:
        return lifetime_aggregates(_empty_sessions()).collect(), {"mode": "full", "customers_recomputed": 0}
    # a state without the pooled or the units columns (older versions) or kept with another K is recomputed
    reusable = previous is not None and covered is not None and all(
        current.get(name) == identity for name, identity in covered.items()) and POOLED in previous.columns and (
        "units" in previous.columns) and (
        previous[POOLED].sum() == 0 or len([c for c in previous.columns if c.startswith("visits::")]) == max_categories)
    new_parts = [p for p in parts if reusable and p.name not in covered]
    if reusable and not new_parts:
        return previous, {"mode": "unchanged"}
    if reusable:
        drop = lifetime_inputs(scan_parquet(new_parts)).collect()
        merged = update_with_drop(previous, drop, scan_parquet(parts), max_categories)
        if merged is not None:
            table, n_merged, recomputed = merged
            return table, {"mode": "incremental", "customers_merged": n_merged, "customers_recomputed": recomputed}
    table = lifetime_aggregates(scan_parquet(parts), max_categories=max_categories).collect().sort("customer_id")
    # "full (top categories changed)": the drop changed which categories have their own visit column
    reason = {"mode": "full (top categories changed)"} if reusable else {"mode": "full"}
    return table, {**reason, "customers_recomputed": table.height}


def _empty_sessions() -> pl.LazyFrame:
    from ecom_assets.schemas import CleanSessions, empty_frame

    return empty_frame(CleanSessions).lazy()
