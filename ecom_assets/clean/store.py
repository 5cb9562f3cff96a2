"""`clean_sessions` on disk: one parquet part per sessions drop, merged incrementally.

A new drop is merged against the parts already stored instead of re-deduplicating the whole
history: only the ids it shares with stored rows are read back (one column scan plus a semi-join),
the drop becomes a new part, and a part is rewritten only when the drop supersedes one of its
rows or completes one of its sessions. An orders drop restating an order as refunded or cancelled
as a whole supersedes the order's session stored from an earlier orders drop (it has none of its
own). An events drop's session that continues a session of an earlier events drop (same export session_id, or the same customer's gap-rule session within 30
minutes: a file cut in the middle of a session) never supersedes it: the whole session is made
again from its events in every events drop and replaces both parts (`merged_across_files`).
The result is the same as merging every drop from scratch in ingestion order — which is
exactly what a rebuild does (same function, starting from nothing), so the two paths cannot drift.

A rebuild happens when a stored part no longer matches its raw partition (re-ingested, removed)
or a drop arrives out of ingestion order. When `clean_customers` changes, only the two customer
flags are recomputed, part by part.

`_manifest.json` records, per part, the raw partition it came from (and that partition's file
size and mtime), plus the running counts of cross-file duplicates, superseded rows and session
parts merged across files, so the
row accounting can be re-checked from the files at any time.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ecom_assets.clean.tables import (EVENT_CONTENT, SESSION_CONTENT, RowAccounting, count_orders_once, distinct_events,
                                      latest_per_id, order_key)
from ecom_assets.ingest.events import (SESSION_GAP, derived_id, event_sessions, session_purchase_orders,
                                       sessionise_across_drops)
from ecom_assets.ingest.orders import withdrawn_orders
from ecom_assets.io import (Location, StoredParts, file_identity, parquet_rows, read_parquet, scan_parquet,
                            write_json_atomic, write_parquet_atomic)
from ecom_assets.schemas import UNKNOWN_PRODUCT, CleanSessions, empty_frame, sorted_on

COLUMNS = list(CleanSessions.to_schema().columns)
SESSION_SCHEMA = empty_frame(CleanSessions).schema


def session_shaped(drop: pl.DataFrame) -> pl.DataFrame:
    """A drop's session rows with the columns its kind does not measure added as nulls (a sessions
    export has no page views; an orders drop no cart flag), so every kind merges alike."""
    return drop.with_columns(pl.lit(None, SESSION_SCHEMA[c]).alias(c) for c in SESSION_CONTENT if c not in drop.columns)


def customers_fingerprint(clean_customers: pl.DataFrame) -> str:
    """Changes whenever a customer id or signup date does (the only inputs of the session flags)."""
    rows = clean_customers.select("customer_id", "signup_date").sort("customer_id").hash_rows(seed=0)
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]


def _with_flags(rows: pl.DataFrame, signups: pl.LazyFrame) -> pl.DataFrame:
    """The rows with `before_signup` / `unknown_customer` recomputed, in the stored column order.

    The join runs on the two columns it needs, unordered, and the flags are put back in row order
    by position (at 10M rows 0.55 s; an order-keeping join took 0.8 s), then attached as new
    columns, so the wide table is never copied (at 10M rows a copy is 1.3 GB)."""
    joined = (
        rows.lazy().select("customer_id", "session_date").with_row_index("_row")
        .join(signups, on="customer_id", how="left")
        .select("_row", before_signup=(pl.col("session_date") < pl.col("_signup")).fill_null(False),
                unknown_customer=pl.col("_known").is_null())
        .collect()
    )
    position = joined["_row"].to_numpy()
    flags = []
    for name in ("before_signup", "unknown_customer"):
        in_order = np.empty(rows.height, dtype=bool)
        in_order[position] = joined[name].to_numpy()
        flags.append(pl.Series(name, in_order))
    return rows.with_columns(flags).select(COLUMNS)


def _signups(clean_customers: pl.DataFrame) -> pl.LazyFrame:
    return clean_customers.lazy().select("customer_id", pl.col("signup_date").alias("_signup"), _known=pl.lit(True))


EMPTY_MANIFEST = {"parts": [], "customers": None, "duplicates_across_files": 0, "superseded": 0,
                  "merged_across_files": 0}


@dataclass
class MergeReport(RowAccounting):
    mode: str  # "incremental", "rebuild" or "unchanged"
    reason: str
    merged: list[str] = field(default_factory=list)
    rewritten_parts: int = 0
    reflagged_parts: int = 0
    rows_from_drops: int = 0
    rows: int = 0
    duplicates_across_files: int = 0
    superseded: int = 0
    merged_across_files: int = 0


def _write_part(table: pl.DataFrame, path: Location, entry: dict) -> None:
    """Validate and store one part; its key figures go into its manifest entry (no re-scan for metadata)."""
    write_parquet_atomic(CleanSessions.validate(table), path)
    entry["stats"] = table.select(
        rows=pl.len(), unknown_customer=pl.col("unknown_customer").sum(), before_signup=pl.col("before_signup").sum(),
        unknown_product=(pl.col("product_viewed") == UNKNOWN_PRODUCT).sum(), purchases=pl.col("purchase_made").sum(),
        **ORDER_MATCH_STATS,
        first_date=pl.col("session_date").min().cast(pl.String), last_date=pl.col("session_date").max().cast(pl.String),
    ).row(0, named=True)


# what count_orders_once left to the orders' own sessions: events sessions whose purchase is an order of the orders
# data, and the money of those purchases (counted once, on the order)
ORDER_MATCH_STATS = {
    "event_sessions_purchase_in_orders": pl.col("purchase_in_orders").sum(),
    "event_amount_in_orders": (pl.col("purchase_orders").list.eval(pl.element().struct.field("amount")).list.sum()
                               - pl.col("purchase_amount")).filter(pl.col("purchase_in_orders")).sum().round(2),
}


def table_stats(manifest: dict) -> dict:
    """Key figures of the whole table, summed from the parts' manifest entries."""
    stats = [p["stats"] for p in manifest["parts"]]
    total = {k: sum(s.get(k, 0) for s in stats)
             for k in ("rows", "unknown_customer", "before_signup", "unknown_product", "purchases", *ORDER_MATCH_STATS)}
    total["event_amount_in_orders"] = round(total["event_amount_in_orders"], 2)
    dates = [s for s in stats if s["rows"]]
    total["first_date"] = min((s["first_date"] for s in dates), default="none")
    total["last_date"] = max((s["last_date"] for s in dates), default="none")
    return total


def _ingested_at(path: Location) -> int | None:
    """When the raw partition was ingested, in epoch microseconds (its rows all carry the same stamp)."""
    return scan_parquet(path).select(pl.col("ingested_at").first().dt.epoch("us")).collect().item()


def _in_ingestion_order(raw: dict[str, Location]) -> list[tuple[int | None, str]]:
    """(ingested_at, key) for the given raw partitions, oldest first (the order drops are replayed in)."""
    return sorted(((_ingested_at(path), key) for key, path in raw.items()),
                  key=lambda item: (item[0] is None, item[0], item[1]))


def _session_end() -> pl.Expr:
    seconds = pl.col("browsing_time_sec")
    return pl.col("session_start") + pl.duration(microseconds=(seconds * 1e6).round(0).cast(pl.Int64))


def _continued(parts: StoredParts, manifest: dict, drop: pl.DataFrame, events: dict[str, Location]
               ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(stored session rows of earlier events drops that belong to a session of this events drop, the
    drop's rows they belong to): the same export session_id, or the same customer's gap-rule sessions
    within SESSION_GAP of each other (a session cut by the end of one file and continued in the next,
    in either arrival order)."""
    stored = [parts.folder / p["file"] for p in manifest["parts"] if p["key"] in events]
    if not stored or drop.is_empty():
        return pl.DataFrame(), drop.clear()
    derived = drop.filter(derived_id())
    ids = drop["session_id"].implode()
    near_in_time = pl.lit(False)
    if derived.height:  # only the stored sessions around the drop's time span can continue one of its sessions
        span = derived.select(_from=pl.col("session_start").min() - SESSION_GAP, _to=_session_end().max() + SESSION_GAP)
        # derived_id is left for the few rows this finds: on every stored row it would cost seconds
        near_in_time = (pl.col("session_start") <= span["_to"][0]) & (_session_end() >= span["_from"][0]) \
            & pl.col("customer_id").is_in(derived["customer_id"].unique().implode())
    candidates = scan_parquet(stored).select(*SESSION_CONTENT, "source_file", "line").filter(
        pl.col("session_id").is_in(ids) | near_in_time).collect()
    if candidates.is_empty():
        return candidates, drop.clear()
    near = (
        candidates.filter(derived_id()).with_columns(_end=_session_end())
        .join(derived.select("customer_id", _id="session_id", _start="session_start", _stop=_session_end()),
              on="customer_id")
        .filter((pl.col("session_start") <= pl.col("_stop") + SESSION_GAP)
                & (pl.col("_start") <= pl.col("_end") + SESSION_GAP))
    )
    same_id = candidates.filter(pl.col("session_id").is_in(ids))
    pairs = pl.concat([near.select("source_file", "line", _id="_id"),
                       same_id.select("source_file", "line", _id="session_id")])
    continued = candidates.join(pairs.select("source_file", "line").unique(), on=["source_file", "line"], how="semi")
    return continued, drop.filter(pl.col("session_id").is_in(pairs["_id"].implode()))


def _whole_sessions(key: str, involved: pl.DataFrame, continued: pl.DataFrame, events: dict[str, Location]
                    ) -> pl.DataFrame:
    """The sessions the drop's `involved` rows and the `continued` stored rows belong to, made again from
    their events in every events drop: an export session id's events wherever they are, and a gap-rule
    session's customer's events from SESSION_GAP before the earliest to SESSION_GAP after the latest of
    these rows (identical events delivered twice counted once; gap-rule sessions drawn again over all of
    them: ingest.events.sessionise_across_drops). Provenance: this drop, the first of its lines."""
    rows = pl.concat([continued.select(SESSION_CONTENT), involved.select(SESSION_CONTENT)])
    derived = rows.filter(derived_id())
    windows = derived.group_by("customer_id").agg(_from=pl.col("session_start").min() - SESSION_GAP,
                                                   _to=_session_end().max() + SESSION_GAP)
    ids = rows.filter(~derived_id())["session_id"].unique().implode()
    # diagonal: a drop stored before events had order_id / order_amount reads them as null
    scanned = pl.concat([scan_parquet(path) for path in events.values()], how="diagonal_relaxed")
    by_id = scanned.filter(pl.col("session_id").is_in(ids)).collect()
    # the customers' events in their windows first: derived_id is costly on every stored event
    by_time = scanned.join(windows.lazy(), on="customer_id").filter(
        pl.col("event_time").is_between(pl.col("_from"), pl.col("_to"))).drop("_from", "_to").collect()
    lines = pl.concat([by_id, by_time.filter(derived_id())])
    lines = distinct_events(sessionise_across_drops(lines), EVENT_CONTENT).kept
    first_line = lines.filter(pl.col("source_file") == key).group_by("session_id").agg(_line=pl.col("line").min())
    return (
        session_shaped(event_sessions(lines)).join(first_line, on="session_id", how="left")
        .with_columns(source_file=pl.lit(key), line=pl.coalesce("_line", "line"))
        .drop("_line")
    )


def _merge_continued(key: str, drop: pl.DataFrame, manifest: dict, events: dict[str, Location],
                     parts: StoredParts, order_ids: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(drop rows left to merge by the replay rule, whole sessions this drop completes, stored rows they
    replace). A part of a session never supersedes another part: the session is made again from all of
    its events. When that changes nothing, the drop's parts were all delivered before (duplicates across
    files); otherwise the rows folded into fewer whole sessions are counted as merged across files."""
    continued, involved = _continued(parts, manifest, drop, events)
    if continued.is_empty():
        return drop, drop.clear(), continued
    rest = drop.join(involved.select("line"), on="line", how="anti")
    whole = count_orders_once(_whole_sessions(key, involved, continued, events), order_ids).with_columns(
        ingested_at=pl.lit(involved["ingested_at"][0], drop.schema["ingested_at"])).select(drop.columns)
    if whole.select(SESSION_CONTENT).sort("session_id").equals(continued.select(SESSION_CONTENT).sort("session_id")):
        manifest["duplicates_across_files"] += involved.height
        return rest, drop.clear(), continued.clear()
    folded = continued.height + involved.height - whole.height
    manifest["merged_across_files"] = manifest.get("merged_across_files", 0) + folded
    return rest, whole, continued


def _remove_rows(parts: StoredParts, manifest: dict, rows: pl.DataFrame) -> int:
    """Take `rows` (source_file, line) out of their stored parts; returns the number of parts rewritten."""
    if rows.is_empty():
        return 0
    for (source_file,), lost in rows.partition_by("source_file", as_dict=True).items():
        entry = next(p for p in manifest["parts"] if p["key"] == source_file)
        path = parts.folder / entry["file"]
        _write_part(read_parquet(path).join(lost.select("line"), on="line", how="anti"), path, entry)
    return rows["source_file"].n_unique()


def _withdraw_orders(parts: StoredParts, manifest: dict, lines: Location, orders: dict[str, Location]) -> int:
    """An orders drop restating an order without a purchased line (refunded or cancelled as a whole since an
    earlier export) leaves no session of its own: the order's session stored from an earlier orders drop is
    superseded by it all the same. Returns the number of stored parts rewritten."""
    withdrawn = withdrawn_orders(scan_parquet(lines).select("order_id", "status", "is_return", "return_reason"))
    stored = [parts.folder / p["file"] for p in manifest["parts"] if p["key"] in orders]
    if withdrawn.is_empty() or not stored:
        return 0
    superseded = scan_parquet(stored).select("session_id", "source_file", "line").filter(
        pl.col("session_id").is_in(withdrawn.implode())).collect()
    manifest["superseded"] += superseded.height
    return _remove_rows(parts, manifest, superseded)


def _order_ids(paths: list[Location]) -> pl.Series:
    """Every order id of the given raw_orders partitions (purchased, returned or cancelled alike), as compared
    (`order_key`)."""
    if not paths:
        return pl.Series("order_id", [], pl.String)
    return scan_parquet(paths).select(order_key(pl.col("order_id")).unique()).collect().to_series()


def _with_purchase_orders(drop: pl.DataFrame, lines: Location) -> pl.DataFrame:
    """An events drop's sessions stored before raw_event_sessions kept `purchase_orders`: the column made from
    the drop's stored events, so its purchases are matched to the orders data like a new drop's."""
    return drop.drop("purchase_orders").join(session_purchase_orders(scan_parquet(lines)).collect(), on="session_id",
                                             how="left").select(drop.columns)


def _recount_stored(parts: StoredParts, manifest: dict, events: dict[str, Location], new_ids: pl.Series,
                    order_ids: pl.Series) -> int:
    """After an orders drop: the stored events parts holding a purchase of one of its orders (`new_ids`) counted
    again against every stored order id (`count_orders_once`). Returns the number of parts rewritten."""
    entries = [p for p in manifest["parts"] if p["key"] in events]
    if not entries or new_ids.is_empty():
        return 0
    hits = pl.collect_all([scan_parquet(parts.folder / p["file"]).select(
        order_key(pl.col("purchase_orders").explode().struct.field("order_id")).is_in(new_ids.implode()).any())
        for p in entries])
    rewritten = 0
    for entry, hit in zip(entries, hits, strict=True):
        if hit.item():
            path = parts.folder / entry["file"]
            _write_part(count_orders_once(read_parquet(path), order_ids), path, entry)
            rewritten += 1
    return rewritten


def _merge_drop(parts: StoredParts, manifest: dict, key: str, raw_path: Location, ingested_at: int | None,
                signups: pl.LazyFrame, events: dict[str, Location], orders: dict[str, Location],
                order_ids: pl.Series) -> int:
    """Merge one raw partition into the stored parts; returns the number of stored parts rewritten.
    `order_ids`: every order id of the orders drops stored so far, this one included."""
    raw = read_parquet(raw_path)
    drop = session_shaped(raw)
    if key in events and "purchase_orders" not in raw.columns:
        drop = _with_purchase_orders(drop, events[key])
    drop = count_orders_once(drop, order_ids)
    rows_in = drop.height
    whole, replaced = drop.clear(), pl.DataFrame()
    if key in events:  # an events drop: sessions it shares with earlier events drops are made whole
        drop, whole, replaced = _merge_continued(key, drop, manifest, events, parts, order_ids)
    rewritten = _remove_rows(parts, manifest, replaced)
    if key in orders:
        rewritten += _withdraw_orders(parts, manifest, orders[key], orders)
    stored = parts.paths(manifest)
    ingested = {p["key"]: p["ingested_at"] for p in manifest["parts"]}
    # stored rows that share an id with the drop (usually none): their current version competes
    # is_in inside the scan reads the ids and decodes the other columns only where one matches
    # (0.13 s for 10.7M stored rows; a semi join decoded every column first: 0.45 s)
    clashing = (
        scan_parquet(stored).select(*SESSION_CONTENT, "source_file", "line")
        .filter(pl.col("session_id").is_in(drop["session_id"].unique().implode())).collect()
        if stored else pl.DataFrame()
    )
    if clashing.height:
        clashing = clashing.with_columns(
            ingested_at=pl.col("source_file").replace_strict(ingested, return_dtype=pl.Int64)
            .cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        competing = pl.concat([clashing, drop.select(clashing.columns)], how="vertical_relaxed")
    else:
        competing = drop
    dedup = latest_per_id(competing, "session_id", SESSION_CONTENT)
    kept = dedup.kept
    # stored rows that lost to the drop leave their part (rewritten in place; rare)
    lost = clashing.join(kept.select("source_file", "line"), on=["source_file", "line"], how="anti") \
        if clashing.height else clashing
    rewritten += _remove_rows(parts, manifest, lost)
    new_rows = kept.filter(pl.col("source_file") == key) if clashing.height else kept
    if whole.height:
        new_rows = pl.concat([new_rows, whole.select(new_rows.columns)])
    manifest["duplicates_across_files"] += dedup.duplicates_across_files
    manifest["superseded"] += dedup.superseded
    del raw, drop, competing, dedup, kept, whole  # only the new rows are needed from here on (10M-row drops)
    # parts are stored in date order so the windowed features' date filter skips old row groups
    table = _with_flags(sorted_on(new_rows, "session_date"), signups)
    del new_rows
    entry = {"key": key, "file": f"part-{raw_path.stem}.parquet", "raw": str(raw_path),
             "raw_identity": file_identity(raw_path), "ingested_at": ingested_at, "rows_in": rows_in}
    _write_part(table, parts.folder / entry["file"], entry)
    manifest["parts"].append(entry)
    return rewritten


def merge_sessions(parts: StoredParts, raw: dict[str, Location], clean_customers: pl.DataFrame,
                   events: dict[str, Location] | None = None, orders: dict[str, Location] | None = None
                   ) -> MergeReport:
    """Bring the stored parts up to date with the raw partitions `raw` (partition key -> parquet of session
    rows). `events`: partition key -> raw events of the events drops among them, read back only where a
    drop's session continues one of an earlier events drop. `orders`: partition key -> raw order lines of the
    orders drops among them, read for the orders a drop withdraws (refunded or cancelled as a whole)."""
    events = {k: v for k, v in (events or {}).items() if k in raw}
    orders = {k: v for k, v in (orders or {}).items() if k in raw}
    manifest = parts.manifest(EMPTY_MANIFEST)
    stored = {p["key"]: p for p in manifest["parts"]}
    arrivals = _in_ingestion_order({key: path for key, path in raw.items() if key not in stored})
    reason = None
    for key, entry in stored.items():
        if key not in raw or file_identity(raw[key]) != entry["raw_identity"]:
            reason = f"drop {key} was re-ingested or removed since the last build"
            break
    if reason is None and parts.schema_path.exists() and read_parquet(parts.schema_path).columns != COLUMNS:
        reason = "the clean_sessions columns changed since the last build"
    latest = max((p["ingested_at"] for p in manifest["parts"] if p["ingested_at"]), default=None)
    if reason is None and arrivals and latest and arrivals[0][0] and arrivals[0][0] < latest:
        reason = f"drop {arrivals[0][1]} arrived out of ingestion order"
    if reason is not None:
        for path in parts.folder.glob("part-*.parquet"):
            path.unlink()
        manifest = copy.deepcopy(EMPTY_MANIFEST)
        arrivals = _in_ingestion_order(raw)
    parts.folder.mkdir(parents=True, exist_ok=True)
    if reason is not None or not parts.schema_path.exists():
        write_parquet_atomic(empty_frame(CleanSessions), parts.schema_path)
    signups = _signups(clean_customers)
    fingerprint = customers_fingerprint(clean_customers)
    report = MergeReport(mode="rebuild" if reason else "incremental" if arrivals else "unchanged",
                         reason=reason or (f"{len(arrivals)} new drop(s)" if arrivals else "no new drops"))
    reflag = manifest["customers"] not in (None, fingerprint)
    if reflag:  # customer signups changed: recompute the two flags on the parts already stored
        for entry in manifest["parts"]:
            path = parts.folder / entry["file"]
            _write_part(_with_flags(read_parquet(path), signups), path, entry)
            report.reflagged_parts += 1
    # an order in the orders export and in the tracker's purchase events counts once (count_orders_once)
    order_ids = _order_ids([orders[p["key"]] for p in manifest["parts"] if p["key"] in orders and arrivals])
    for ingested_at, key in arrivals:
        new_ids = _order_ids([orders[key]]) if key in orders else order_ids.clear()
        order_ids = pl.concat([order_ids, new_ids]).unique()
        report.rewritten_parts += _merge_drop(parts, manifest, key, raw[key], ingested_at, signups, events,
                                              orders, order_ids)
        report.rewritten_parts += _recount_stored(parts, manifest, events, new_ids, order_ids)
        report.merged.append(key)
    manifest["customers"] = fingerprint
    write_json_atomic(manifest, parts.manifest_path)
    report.rows_from_drops = sum(parquet_rows(path) for path in raw.values())
    report.rows = sum(parquet_rows(path) for path in parts.paths(manifest))  # from the files, not the manifest
    report.duplicates_across_files = manifest["duplicates_across_files"]
    report.superseded = manifest["superseded"]
    report.merged_across_files = manifest.get("merged_across_files", 0)
    return report
