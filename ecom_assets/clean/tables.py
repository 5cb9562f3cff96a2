"""Pure functions behind the clean tables: the replay rule that de-duplicates drops, and clean_customers."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from ecom_assets.ingest.orders import restates_order
from ecom_assets.schemas import CleanCustomers, CleanEvents, empty_frame, repeated

SESSION_CONTENT = ["session_id", "customer_id", "session_date", "session_start", "product_viewed", "browsing_time_sec",
                   "purchase_made", "purchase_amount", "added_to_cart", "page_views", "product_views", "categories_viewed",
                   "units_purchased", "purchase_orders", "purchase_in_orders"]
# what makes two deliveries the same event; `currency` is the file's, not the event's, and a drop stored before the
# column existed has none: compared, an event delivered again after the upgrade would count its purchase twice
EVENT_CONTENT = [c for c in CleanEvents.to_schema().columns
                 if c not in ("source_file", "line", "ingested_at", "currency")]
CUSTOMER_CONTENT = ["customer_id", "age", "age_out_of_range", "gender", "location", "signup_date"]


class RowAccounting:
    """Rows from the drops = rows kept + duplicates across files + rows superseded by a later drop
    + rows merged across files (parts of one session in several events drops, made one session)."""

    rows_from_drops: int
    rows: int
    duplicates_across_files: int  # same content as the id's current version
    superseded: int  # same id, different content: an earlier version lost to a later one
    merged_across_files: int = 0  # session parts of several drops folded into one whole session

    @property
    def accounted(self) -> bool:
        return self.rows_from_drops == (self.rows + self.duplicates_across_files + self.superseded
                                        + self.merged_across_files)


@dataclass
class Dedup(RowAccounting):
    kept: pl.DataFrame
    rows_from_drops: int
    duplicates_across_files: int
    superseded: int

    @property
    def rows(self) -> int:
        return self.kept.height


def latest_per_id(rows: pl.DataFrame, key: str, content: list[str]) -> Dedup:
    """Union of drops -> one row per id, replayed in ingestion order (ingested_at, file, line).

    A row whose content equals the id's current version is a counted duplicate; any other row
    becomes the current version, and the one it replaces is superseded. This is the rule a stream
    of drops applied one by one gives, so merging drops incrementally (clean/store.py) and all at
    once agree. Only ids that occur more than once need ordering and comparing; at 10M rows they
    are a small minority, so they are split off first (one sort) instead of sorting every row.
    """
    if rows.is_empty():
        return Dedup(rows, 0, 0, 0)
    contested_mask = repeated(rows[key])
    if not contested_mask.any():  # the common case at scale: nothing to order or compare, nothing copied
        return Dedup(rows, rows.height, 0, 0)
    positions = pl.Series("_row", np.arange(rows.height, dtype=np.int64)).filter(contested_mask)
    contested = rows.filter(contested_mask).with_columns(positions).sort(key, "ingested_at", "source_file", "line")
    same = contested.select(
        pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in content)
        & (pl.col(key) == pl.col(key).shift(1)).fill_null(False)
    ).to_series()
    versions = contested.filter(~same)
    latest = versions.filter(pl.col(key).is_last_distinct())
    # one filter of the whole table keeps the uncontested rows and each id's latest version in place
    keep = (~contested_mask).scatter(latest["_row"], True)
    return Dedup(rows.filter(keep), rows.height, int(same.sum()), versions.height - latest.height)


def order_key(order_id: pl.Expr) -> pl.Expr:
    """An order id as both exports' ids are compared: trimmed, without a leading `#`. Shopify names an order
    `#1001` and a tracker logs its number, `1001`, as the transaction id (a tryout's shop: every purchase counted
    twice, revenue 272,404 -> 469,983 with nothing said); `#` is the order name's prefix, never part of a number."""
    return order_id.str.strip_chars().str.strip_chars_start("#")


def count_orders_once(sessions: pl.DataFrame, order_ids: pl.Series) -> pl.DataFrame:
    """Session rows -> the same rows with `purchase_in_orders` set and an events session's purchases of orders in
    `order_ids` (every order id of the stored orders drops) taken out of its `purchase_made` / `purchase_amount`.

    The orders export is the record of money (discounts, refunds and returns live there) and its order is a
    purchased session of its own (session_id = order_id): the tracker's purchase event of the same order is the
    browsing session's conversion, not a second purchase. So for a session whose `purchase_orders` name an order
    in `order_ids`: `purchase_in_orders` = true (conversion counts it), `purchase_amount` = the value of its other
    purchases (events without an order id, or of orders the orders data does not hold), `purchase_made` = whether
    it has such another purchase. Every other row keeps its figures, with `purchase_in_orders` false. Worked out
    from `purchase_orders` alone, so applying it again, or with more order ids later, gives the figures a single
    pass with all of them gives."""
    unmatched = sessions.with_columns(purchase_in_orders=pl.lit(False))
    if order_ids.is_empty() or sessions["purchase_orders"].null_count() == sessions.height:
        return unmatched
    order_ids = order_ids.to_frame("order_id").select(order_key(pl.col("order_id")).unique()).to_series()
    per_order = (
        sessions.lazy().select("purchase_orders").with_row_index("_row").filter(pl.col("purchase_orders").is_not_null())
        .explode("purchase_orders").unnest("purchase_orders")
        .with_columns(_in=order_key(pl.col("order_id")).is_in(order_ids.implode()).fill_null(False))
        .group_by("_row").agg(_in=pl.col("_in").any(), _made=(~pl.col("_in")).any(),
                              _amount=pl.col("amount").filter(~pl.col("_in")).sum())
        .filter("_in").collect()
    )
    if per_order.is_empty():
        return unmatched
    matched = pl.Series(np.zeros(sessions.height, dtype=bool)).scatter(per_order["_row"], True)
    made = pl.Series(np.zeros(sessions.height, dtype=bool)).scatter(per_order["_row"], per_order["_made"])
    amount = pl.Series(np.zeros(sessions.height)).scatter(per_order["_row"], per_order["_amount"])
    return sessions.with_columns(
        purchase_made=pl.when(matched).then(made).otherwise(pl.col("purchase_made")),
        purchase_amount=pl.when(matched).then(amount).otherwise(pl.col("purchase_amount")),
        purchase_in_orders=matched)


def _typed_or_empty(rows: pl.DataFrame, model) -> pl.DataFrame:
    """Partition union as read by the IO manager; with no drops yet, an empty typed frame."""
    if rows.width == 0:
        return empty_frame(model).with_columns(ingested_at=pl.lit(None, pl.Datetime("us", "UTC")))
    return rows


def build_clean_customers(raw_customers: pl.DataFrame) -> tuple[pl.DataFrame, Dedup]:
    rows = _typed_or_empty(raw_customers, CleanCustomers)
    dedup = latest_per_id(rows, "customer_id", CUSTOMER_CONTENT)
    table = dedup.kept.select(list(CleanCustomers.to_schema().columns)).sort("customer_id")
    return CleanCustomers.validate(table), dedup


def _drop_order(rows: pl.DataFrame) -> pl.Expr:
    """Each row's drop as a number in ingestion order (ingested_at, then partition key)."""
    drops = rows.select("ingested_at", "source_file").unique().sort("ingested_at", "source_file", nulls_last=False)
    order = dict(zip(drops["source_file"], range(drops.height)))
    return pl.col("source_file").replace_strict(order, return_dtype=pl.Int64)


def latest_per_order(rows: pl.DataFrame, content: list[str], table: pl.Expr = pl.lit(True)) -> Dedup:
    """Order lines of every drop (typed, marked, with `is_refund`) -> the lines `table` selects (purchases or
    returns) of each order's current version; accounting over the selected lines only.

    The current version of an order is its export in the latest drop that restates it: holds a line that is
    not a refund (ingest.orders.restates_order). It replaces the earlier exports' lines as a whole, in both
    tables at once (an order refunded in full later has its paid lines superseded by its refunded ones; an
    edited order can lose a line, of either kind). Refund lines exported alone in a drop after the current
    version (an incremental export of the day's refunds) add to it; an order never restated (only refund
    lines, e.g. a UCI `C` cancellation invoice) is the export of its latest drop. "Later" is ingestion order
    (ingested_at, then partition key), the order clean_sessions replays drops in. A line not kept that is
    identical to a kept line (a refund line delivered again included) is a counted duplicate across files,
    any other is superseded."""
    if rows.is_empty():
        return Dedup(rows, 0, 0, 0)
    ranked = rows.with_columns(_drop=_drop_order(rows))
    # one row per order and drop; only orders in several drops need a version (at scale a minority)
    exports = ranked.group_by("order_id", "_drop").agg(_restates=restates_order())
    exports = exports.filter(pl.col("order_id").is_duplicated())
    version = pl.col("_drop").filter("_restates").max()
    # drops after the version hold refunds alone; an order never restated (only ever refund lines, such as a
    # UCI `C` cancellation invoice) is its latest drop's export
    states = exports.join(exports.group_by("order_id").agg(_version=version, _last=pl.col("_drop").max()),
                          on="order_id").select(
        "order_id", "_drop",
        _current=pl.when(pl.col("_version").is_null()).then(pl.col("_drop") == pl.col("_last"))
        .otherwise(pl.col("_drop") >= pl.col("_version")),
        _added=(pl.col("_drop") > pl.col("_version")).fill_null(False))
    # versions are decided over both tables' lines, then the table's own are selected
    selected = ranked.join(states, on=["order_id", "_drop"], how="left", maintain_order="left").with_columns(
        pl.col("_current").fill_null(True), pl.col("_added").fill_null(False)).filter(table)
    kept = selected.filter("_current")
    added = kept.filter("_added")["order_id"].unique()
    if added.len():  # a refund line delivered again (in the version, or alone in several drops) is one refund
        contested = pl.col("order_id").is_in(added.implode())
        kept = pl.concat([kept.filter(~contested), kept.filter(contested).sort("_drop", "line")
                          .unique(content, keep="first", maintain_order=True)])
    earlier = selected.join(kept.select("source_file", "line"), on=["source_file", "line"], how="anti")
    duplicates = earlier.join(kept.select(content).unique(), on=content, how="semi", nulls_equal=True).height
    return Dedup(kept.drop("_drop", "_current", "_added"), selected.height, duplicates,
                 earlier.height - duplicates)


def distinct_events(rows: pl.DataFrame, content: list[str]) -> Dedup:
    """Events of every drop -> each event once (the first delivery); a re-delivered identical event
    (overlapping exports) is a counted duplicate across files. Events have no id, so nothing supersedes."""
    if rows.is_empty():
        return Dedup(rows, 0, 0, 0)
    ordered = rows.with_columns(_drop=_drop_order(rows)).sort("_drop", "line")
    kept = ordered.unique(subset=content, keep="first", maintain_order=True).drop("_drop")
    return Dedup(kept, rows.height, rows.height - kept.height, 0)
