"""pandera.polars schemas for every table that crosses an asset boundary.

The clean-table schemas below are the contract the features, churn and insights domains build
on; the ingest domain adds the raw/quarantine schemas next to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.backends.polars import builtin_checks  # noqa: F401  (registers the polars check functions)
from pandera.backends.polars.checks import PolarsCheckBackend
from pandera.constants import CHECK_OUTPUT_KEY
from pandera.engines.polars_engine import DateTime

UNKNOWN_PRODUCT = "unknown"
# an events session's purchases per order: the order / transaction id (null: purchase events without one) and the
# value of its purchase events in the session
PURCHASE_ORDERS = pl.List(pl.Struct({"order_id": pl.String, "amount": pl.Float64}))


# a visit's detail: null on every session made from orders (a sessions export's cart flag is a visit's too)
BROWSING_COLUMNS = ["browsing_time_sec", "page_views", "added_to_cart"]
# the optional session columns conversion reads (`browsing_session`, `converted`), beside purchase_made
CONVERSION_COLUMNS = [*BROWSING_COLUMNS, "purchase_in_orders"]


def browsing_session(columns) -> pl.Expr:
    """True for a session someone browsed in: one without a purchase, or with browsing time, page views or a cart
    flag recorded. An order becomes a purchased session with neither: a conversion base counting it would hold a
    purchase without a visit (orders and events of one shop: 38.8 % where the browsing sessions convert 17.4 %),
    and a shop that exported only orders has no browsing session and no conversion rate at all. `columns`: the
    frame's column names."""
    return pl.any_horizontal(~pl.col("purchase_made"), *(pl.col(c).is_not_null() for c in BROWSING_COLUMNS
                                                          if c in columns))


def converted(columns) -> pl.Expr:
    """True for a session that ended in a purchase: `purchase_made`, or `purchase_in_orders` (an events session
    whose purchase is counted on the order's own session). What conversion rates count; purchase counts and
    revenue read `purchase_made` / `purchase_amount`, which count each order once. `columns`: the frame's column
    names (a sessions-only frame without `purchase_in_orders` converts where it purchased)."""
    buy = pl.col("purchase_made")
    return buy | pl.col("purchase_in_orders") if "purchase_in_orders" in columns else buy


def repeated(values: pl.Series) -> pl.Series:
    """True where a value occurs more than once. The values are sorted once to find the repeated
    ones (usually none, or few), which are then looked up: at 10M rows 0.25 s, where a hash table
    (`is_duplicated`) takes 1.1 s and scattering a sort order back 0.67 s. Integers without nulls (the
    row hashes ingest looks for repeats in) are sorted by numpy, whose vectorised sort of 64-bit integers
    takes 10.7M hashes 0.5 -> 0.2 s CPU."""
    if values.dtype.is_integer() and not values.has_nulls():
        ordered = np.sort(values.to_numpy())
        repeats = pl.Series(values.name, np.unique(ordered[1:][ordered[1:] == ordered[:-1]]), dtype=values.dtype)
        if repeats.is_empty():
            return pl.Series(values.name, np.zeros(values.len(), dtype=bool))
        return values.is_in(repeats.implode())
    ordered = values.sort()
    repeats = ordered.filter((ordered == ordered.shift(1)).fill_null(False))
    if repeats.is_empty():
        return pl.Series(values.name, np.zeros(values.len(), dtype=bool))
    return values.is_in(repeats.unique().implode()).fill_null(False)


def sorted_on(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """`frame` stably sorted by `column`; a frame that already is (stored tables, chronological
    exports) is only checked and flagged, ~40x cheaper than sorting 500k ids again, and not copied."""
    if frame[column].is_sorted():
        return frame.with_columns(pl.col(column).set_sorted())
    return frame.sort(column, maintain_order=True)


def sorted_by_id(frame: pl.DataFrame) -> pl.DataFrame:
    return sorted_on(frame, "customer_id")


def _unique_by_sort(data) -> pl.LazyFrame:
    """Every value distinct. Same rule as `unique=True`, by sorting 64-bit hashes of the values
    (pandera's hash-table version spends ~5 s on 10M string ids, a string sort ~1.5 s). Equal
    hashes are confirmed on the values themselves, so a collision can never fail a good table."""
    hashes = pl.col(data.key).hash(seed=0).sort()
    if data.lazyframe.select((hashes != hashes.shift(1)).fill_null(True).all()).collect().item():
        return pl.LazyFrame({data.key: [True]})
    # a repeat (or a hash collision): judge row by row, so the error names the repeated values
    return data.lazyframe.select(~pl.col(data.key).is_duplicated())


class _StrictModel(pa.DataFrameModel):
    """Exactly these columns with exactly these dtypes: nothing is coerced on the way in."""

    class Config:
        strict = True
        coerce = False


class CleanSessions(_StrictModel):
    """One row per kept session (deduplicated across every sessions drop)."""

    session_id: str
    customer_id: str
    session_date: pl.Date
    # the instant (UTC) when the export gave a time; null for date-only values
    session_start: DateTime = pa.Field(nullable=True, dtype_kwargs={"time_unit": "us", "time_zone": "UTC"})
    product_viewed: str  # category; empty / "Unknown" in the input -> "unknown"
    browsing_time_sec: pl.Float64 = pa.Field(nullable=True, ge=0)  # purchase logs have none
    purchase_made: bool
    purchase_amount: pl.Float64 = pa.Field(ge=0)  # 0.0 when nothing was bought
    added_to_cart: bool = pa.Field(nullable=True)  # optional input column; null when absent
    # from timestamps (orders, events); null for session exports that have none
    session_start: pl.Datetime(time_unit="us", time_zone="UTC") = pa.Field(nullable=True)
    page_views: pl.Int64 = pa.Field(nullable=True, ge=0)  # from events only
    product_views: pl.Int64 = pa.Field(nullable=True, ge=0)  # from events only
    categories_viewed: pl.Int64 = pa.Field(nullable=True, ge=0)  # from events only
    units_purchased: pl.Float64 = pa.Field(nullable=True, ge=0)  # from orders only: items bought
    # from events only: the session's purchase events per order id (null without a purchase event)
    purchase_orders: PURCHASE_ORDERS = pa.Field(nullable=True)
    # an events session whose purchase is an order of the orders data: counted on the order's session, not here
    purchase_in_orders: bool
    before_signup: bool  # session dated before the customer's signup_date
    unknown_customer: bool  # customer_id not in clean_customers
    source_file: str  # partition key of the drop the row came from
    line: pl.Int64  # 1-based line number in that file (header = line 1)

    @pa.check("session_id", name="unique")
    @classmethod
    def session_id_unique(cls, data) -> pl.LazyFrame:
        return _unique_by_sort(data)

    @pa.check("browsing_time_sec", "purchase_amount", name="finite")
    @classmethod
    def finite(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_finite())  # inf and nan are no amount or duration


class CleanCustomers(_StrictModel):
    """One row per customer id (the later drop wins on conflicting content)."""

    customer_id: str
    age: pl.Int64 = pa.Field(nullable=True, ge=10, le=120)  # out of range -> null + flag
    age_out_of_range: bool
    gender: str = pa.Field(nullable=True)
    location: str = pa.Field(nullable=True)
    signup_date: pl.Date = pa.Field(nullable=True)
    source_file: str
    line: pl.Int64

    @pa.check("customer_id", name="unique")
    @classmethod
    def customer_id_unique(cls, data) -> pl.LazyFrame:
        return _unique_by_sort(data)


_UTC = pl.Datetime(time_unit="us", time_zone="UTC")


class CleanOrderLines(_StrictModel):
    """One row per order line (clean_order_lines: purchased lines; clean_returns: return lines)."""

    order_id: str
    customer_id: str
    order_time: _UTC
    order_date: pl.Date  # the calendar date written in order_time
    product_id: str
    product_name: str = pa.Field(nullable=True)
    category: str = pa.Field(nullable=True)
    quantity: pl.Float64 = pa.Field(nullable=True)  # null: a purchase log giving only line_amount
    unit_price: pl.Float64 = pa.Field(nullable=True, ge=0)
    line_amount: pl.Float64
    status: str = pa.Field(nullable=True)
    currency: str = pa.Field(nullable=True)
    refunded_amount: pl.Float64 = pa.Field(nullable=True, ge=0)  # order-level: once per order (ingest.orders.order_refunds)
    discount_amount: pl.Float64 = pa.Field(nullable=True, ge=0)  # order-level: once per order (ingest.orders.order_revenue)
    is_return: bool
    return_reason: str = pa.Field(nullable=True)
    is_refund: bool  # a return line net revenue subtracts (ingest.orders.is_refund)
    source_file: str
    line: pl.Int64
    ingested_at: _UTC


class CleanEvents(_StrictModel):
    """One row per tracked event, each in a session (the export's, else the 30-minute gap rule)."""

    event_time: _UTC
    event_date: pl.Date  # the calendar date written in event_time
    event_type: str = pa.Field(isin=["view", "cart", "remove_from_cart", "purchase", "other"])
    event_name: str
    customer_id: str
    product_id: str = pa.Field(nullable=True)
    session_id: str
    category: str = pa.Field(nullable=True)
    brand: str = pa.Field(nullable=True)
    price: pl.Float64 = pa.Field(nullable=True, ge=0)
    quantity: pl.Float64 = pa.Field(nullable=True, gt=0)
    order_id: str = pa.Field(nullable=True)  # the order / transaction of a purchase event
    order_amount: pl.Float64 = pa.Field(nullable=True, ge=0)  # an order-level purchase's value (no product)
    currency: str = pa.Field(nullable=True)  # a purchase's: the file's reporting currency (ingest.events.typed_events)
    source_file: str
    line: pl.Int64
    ingested_at: _UTC


class ParsedEvents(CleanEvents):
    """An events drop's rows as parsed, before sessionisation fills the session ids the export lacks."""

    session_id: str = pa.Field(nullable=True)


def empty_frame(model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A zero-row frame with the model's columns and dtypes (for 'nothing ingested yet')."""
    schema = model.to_schema()
    return pl.DataFrame(
        schema={name: col.dtype.type for name, col in schema.columns.items()}
    )


@dataclass(frozen=True)
class RowCheck:
    """One rule of a clean schema that judges each row on its own: the column's nullability
    (`check` None; NaN counts as null, as pandera's own nullable check has it) or one of its
    pandera checks. Column dtypes and table-wide checks (uniqueness) are not row rules."""

    column: str
    name: str  # readable rule: "not null", "greater_than_or_equal_to(min_value=0)"
    check: pa.Check | None = None

    def broken(self, frame: pl.LazyFrame, alias: str) -> pl.LazyFrame:
        """One bool column `alias`, True where the row breaks the rule; evaluated by pandera's own check
        function, so ingest and the table-level validation cannot disagree."""
        value = pl.col(self.column)
        if self.check is None:
            return frame.select((value.is_null() | (value.is_nan() if _is_float(frame, self.column) else False))
                                .alias(alias))
        passed = pl.col(CHECK_OUTPUT_KEY)
        passed = passed | passed.is_null() if self.check.ignore_na else passed.fill_null(False)
        return PolarsCheckBackend(self.check).apply(PolarsData(frame, self.column)).select((~passed).alias(alias))


def _is_float(frame: pl.LazyFrame, column: str) -> bool:
    return frame.collect_schema()[column].is_float()


@cache
def row_checks(model: type[pa.DataFrameModel]) -> tuple[RowCheck, ...]:
    """Every row rule of `model` (see RowCheck). A check is row-wise when it answers a zero-row table
    with zero rows; `unique` answers with one, so it stays with the table-level validation."""
    schema = model.to_schema()
    empty = empty_frame(model).lazy()
    rules = []
    for name, column in schema.columns.items():
        if not column.nullable:
            rules.append(RowCheck(name, "not null"))
        for check in column.checks:
            if PolarsCheckBackend(check).apply(PolarsData(empty, name)).collect().height == 0:
                arguments = ", ".join(f"{k}={v}" for k, v in (check.statistics or {}).items())
                rules.append(RowCheck(name, f"{check.name}({arguments})", check))
    return tuple(rules)
