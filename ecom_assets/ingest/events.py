"""`events*.csv`: one row per tracked event (GA4/BigQuery, Segment, Snowplow, REES46 exports).

Contract (DESIGN.md "Real exports"): `event_time, event_type`, and `customer_id` or `anonymous_id`;
optional `product_id, session_id, category, price, quantity, brand, order_id, order_amount, currency` (purchases
are kept in the file's reporting currency, `orders.currency_rules`, which typed purchase events carry).

Pure polars functions, used by the `raw_events` partition (ingest/assets.py):
- `event_rules` / `typed_events`: the row rules and typed values `parse.split_rows` applies (an
  identical double-logged row is a counted duplicate; a truncated last line is quarantined).
  `event_type` is normalised to `view, cart, remove_from_cart, purchase` (the common platform
  names map onto these: `view_item`, `add_to_cart`, `Product Added`, `Order Completed`, …);
  anything else is kept as `other` with its original name in `event_name`, and counted.
  A purchase event without a product (Segment's `Order Completed`: its products are a nested array a flat
  export leaves out) is an order-level purchase worth its `order_amount`; without one it is quarantined.
- `customer_keys`: the customer an event belongs to — `customer_id`, else the user its `anonymous_id` logged
  in as in the file (one user only), else `anonymous:<anonymous_id>`.
- `relogged_purchases`: purchase events of an order already counted (GA4 re-logs `purchase` when the
  thank-you page is reloaded; an order-level event beside the order's item events): counted duplicates.
- `sessionise`: the export's `session_id` where given, named with its customer
  (`<customer_id>#<export id>`: GA4's `ga_session_id` is unique per user only), else a session per
  customer that ends after 30 minutes without an event (the GA / Snowplow default).
- `event_sessions`: one session row per session, in the sessions table's shape.
- `derived_id` / `sessionise_across_drops`: the gap-rule sessions drawn again over several drops, for
  a session cut by the end of one file and continued in the next (clean_events, clean_sessions).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from ecom_assets.ingest.orders import currency_rules, instant, unreadable_number
from ecom_assets.ingest.parse import (CURRENCY_COUNTED, KINDS, PREPARED, REPEATS, RULES, DropKind, Reading, _bad,
                                      _date_rules, _empty, _text_rules, text_or_null,
                                      value_last)
from ecom_assets.schemas import PURCHASE_ORDERS, UNKNOWN_PRODUCT, ParsedEvents, repeated

KIND = DropKind(
    "events",
    ("event_time", "event_type"),
    ("customer_id", "anonymous_id", "product_id", "session_id", "category", "price", "quantity", "brand", "order_id",
     "order_amount", "currency"),
    dates=("event_time",), numbers=("price", "quantity", "order_amount"),
    texts=("customer_id", "anonymous_id", "event_type", "session_id", "category", "brand", "order_id"), keyed=False,
    any_of=("customer_id", "anonymous_id"),
    # a customer's event of one type at one instant: nearly only the double-logged rows (10M events: 64,930
    # candidates where all columns give 64,688), for a fifth of the cost of hashing every column
    candidate_key=("customer_id", "event_time", "event_type"),
    categories=("category",),
)
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase", "other")
# platform event names (lower-case, spaces and dashes as underscores) -> contract event type
EVENT_SYNONYMS = {
    "view": "view", "view_item": "view", "product_viewed": "view", "page_view": "view", "pageview": "view",
    "screen_view": "view", "detail": "view", "product_view": "view",
    "cart": "cart", "add_to_cart": "cart", "addtocart": "cart", "product_added": "cart", "add": "cart",
    "remove_from_cart": "remove_from_cart", "removefromcart": "remove_from_cart", "product_removed": "remove_from_cart",
    "remove": "remove_from_cart",
    "purchase": "purchase", "transaction": "purchase", "order_completed": "purchase", "checkout_completed": "purchase",
    "transaction_item": "purchase",  # Snowplow's ecommerce tracker: one per bought item
}
SESSION_GAP = timedelta(minutes=30)


def _normalised(names: pl.Series) -> pl.Series:
    """Event names -> contract event types, worked out once per distinct name (an export has a handful:
    1M rows 0.3 -> ~0.05 s) and mapped back; a missing name stays missing (its rule quarantines it).
    Run once per file (`prepared_columns`): as an expression it ran for every rule and batch reading it
    (10M events: 14 times, ~1.3 s)."""
    distinct = names.drop_nulls().unique()
    types = (distinct.str.strip_chars().str.to_lowercase().str.replace_all(r"[\s\-]+", "_")
             .replace_strict(EVENT_SYNONYMS, default="other", return_dtype=pl.String))
    if (types == distinct).all():  # written in the contract's names already (view, cart, ...): nothing to map
        return names
    return names.replace_strict(distinct, types, default=None, return_dtype=pl.String)


EVENT_TYPE = "_event_type"  # the contract event type, a column `prepared_columns` adds to the text table
CUSTOMER = "_customer"  # the customer an event belongs to (`customer_keys`)
PURCHASE_ORDER = "_purchase_order"  # a purchase event's order id, added where the file has order ids
ANONYMOUS = "anonymous:"  # prefix of a customer known only by the anonymous id of a visitor who never logged in


def customer_keys(table: pl.DataFrame) -> pl.Series:
    """Text events (`customer_id`, `anonymous_id`, `_ragged`, `_truncated`) -> the customer of each row:
    its `customer_id`; else the one user its `anonymous_id` logged in as somewhere in the file (Segment
    writes `user_id` only after identify, `anonymous_id` on every event: a row carrying both ties the two);
    else `anonymous:<anonymous_id>` — a visitor who never logged in, or whose anonymous id was seen with
    several users (a shared device: no user can be chosen for sure); null when neither id is given.
    Ragged and cut rows tie nothing (their cells may be shifted)."""
    user, anonymous = pl.col("customer_id"), pl.col("anonymous_id")
    ties = (table.lazy().filter(user.is_not_null() & anonymous.is_not_null() & pl.col("_ragged").is_null()
                                & ~pl.col("_truncated"))
            .group_by("anonymous_id").agg(_users=user.unique())
            .filter(pl.col("_users").list.len() == 1).select("anonymous_id", _user=pl.col("_users").list.first()))
    return (table.lazy().select("customer_id", "anonymous_id")
            .join(ties, on="anonymous_id", how="left", maintain_order="left")
            .select(pl.coalesce(user, "_user", pl.lit(ANONYMOUS) + anonymous).alias(CUSTOMER))
            .collect().to_series())


def prepared_columns(table: pl.DataFrame) -> dict[str, pl.Series]:
    types = _normalised(table["event_type"])
    # without anonymous ids the customer is the customer_id column as it stands (no copy)
    prepared = {EVENT_TYPE: types, CUSTOMER: customer_keys(table) if table["anonymous_id"].is_not_null().any()
                else table["customer_id"].alias(CUSTOMER)}
    if table["order_id"].is_not_null().any():  # what `relogged_purchases` compares: only purchases of an order
        prepared[PURCHASE_ORDER] = table.select(pl.when(types == "purchase").then(pl.col("order_id"))).to_series()
    if table["currency"].is_not_null().any():  # the reporting currency is the purchases' (views carry no revenue)
        prepared[CURRENCY_COUNTED] = table.select(pl.when(types == "purchase").then(pl.col("currency"))).to_series()
    return prepared


def event_rules(reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    price, quantity, amount = reading.number("price"), reading.number("quantity"), reading.number("order_amount")
    purchase, product = pl.col(EVENT_TYPE) == "purchase", _empty("product_id")
    return [
        *_text_rules(KIND, reading),  # empty event_type; ids rounded by a spreadsheet; C1 control characters
        # named by what the export gives: a file (batch) without anonymous ids has only customer_id to miss
        _bad(_empty(CUSTOMER) & pl.col("anonymous_id").is_null().all(), "empty customer_id"),
        _bad(_empty(CUSTOMER) & pl.col("anonymous_id").is_not_null().any(),
             "empty customer_id and anonymous_id"),
        *_date_rules("event_time", reading, required=True),
        _bad(pl.col(EVENT_TYPE).is_in(["cart", "remove_from_cart"]) & product,
             value_last("event without product_id", "event_type")),
        # an order-level purchase (Segment's Order Completed) is worth its order_amount; without one, nothing
        _bad(purchase & product & (_empty("order_amount") | amount.is_null()),
             value_last("purchase event without product_id or order_amount (its value is unknown: map the order's "
                        "revenue or total to order_amount in sources.yaml)", "event_type")),
        unreadable_number("price", reading),
        _bad(price < 0, value_last("negative price", "price")),
        unreadable_number("quantity", reading),
        _bad(quantity <= 0, value_last("quantity <= 0", "quantity")),
        unreadable_number("order_amount", reading),
        _bad(amount < 0, value_last("negative order_amount", "order_amount")),
        # purchases are added up: one in another currency than the file's is never added (a view is no revenue)
        *[(purchase & condition, reason) for condition, reason in currency_rules(reading)],
    ]


def typed_events(reading: Reading) -> list[pl.Expr]:
    return [
        instant("event_time").alias("event_time"),
        pl.col("_date_event_time").alias("event_date"),
        pl.col(EVENT_TYPE).alias("event_type"),
        pl.col("event_type").alias("event_name"),
        reading.customer(CUSTOMER).alias("customer_id"),
        text_or_null("product_id"),
        text_or_null("session_id"),
        pl.when(reading.no_category("category")).then(None).otherwise(pl.col("category")).alias("category"),
        text_or_null("brand"),
        reading.number("price").alias("price"),
        reading.number("quantity").alias("quantity"),
        text_or_null("order_id"),
        reading.number("order_amount").alias("order_amount"),
        # purchases in another currency are quarantined: every kept one is in the file's reporting currency (no
        # currency known: a null constant, without comparing 10M event types, ~0.13 s)
        (pl.when(pl.col(EVENT_TYPE) == "purchase").then(pl.lit(reading.currency)) if reading.currency
         else pl.lit(None, pl.String)).alias("currency"),
    ]


def relogged_purchases(candidates: pl.DataFrame) -> pl.Series:
    """Good text rows of purchase events whose order id (`_purchase_order`) repeats in the file, in line order
    -> `line` of those that count an order's purchase again (counted duplicates, never a second purchase):
    - a row at another `event_time` than the first row of the same order and product (GA4 logs `purchase`
      again, same transaction_id, when the thank-you page is reloaded; the rows of one purchase event, its
      items, share its time);
    - an order-level row (no product) of an order whose items are given by item rows (Snowplow's
      `transaction` beside its `transaction_item`s): the items carry the order, its total would add it again."""
    if PURCHASE_ORDER not in candidates.columns:
        return pl.Series("line", [], pl.Int64)
    order, item = pl.col(PURCHASE_ORDER), ~_empty("product_id")
    return candidates.filter(order.is_not_null()).filter(
        (pl.col("event_time") != pl.col("event_time").first().over(PURCHASE_ORDER, pl.col("product_id")))
        | (~item & item.any().over(PURCHASE_ORDER)))["line"]


def purchase_value() -> pl.Expr:
    """What a purchase event adds to its session's purchase_amount: price x quantity (1 when absent) of an
    item event, the order_amount of an order-level one (no product; stored drops from before order_amount
    existed have none: such events were quarantined then)."""
    return (pl.when(pl.col("product_id").is_null()).then(pl.col("order_amount"))
            .otherwise(pl.col("price") * pl.col("quantity").fill_null(1.0)))


KINDS[KIND.name] = KIND
RULES[KIND.name] = (event_rules, typed_events, ParsedEvents)
PREPARED[KIND.name] = prepared_columns
REPEATS[KIND.name] = (PURCHASE_ORDER, relogged_purchases)

EVENT_COLUMNS = {
    "event_time": "datetime[us, UTC] - a date alone counts from its midnight UTC",
    "event_date": "date - the calendar date written in event_time",
    "event_type": "string - view | cart | remove_from_cart | purchase | other",
    "event_name": "string - the event name as exported",
    "customer_id": "string - required: the export's customer_id, else the user the event's anonymous_id logged in "
                   "as in the file (one user only), else `anonymous:<anonymous_id>`",
    "product_id": "string - nullable for views of pages without a product and order-level purchases",
    "session_id": "string - `<customer_id>#<the export's session id>` (an export's id names a session only together "
                  "with its user: GA4's ga_session_id is the start second; `#`, `@`, `%` in it %-encoded), else "
                  "`<customer_id>@<first event time>` (30-minute gap rule; in clean_events drawn over every drop); "
                  "either way the same in every drop holding the session's events",
    "category": "string - nullable",
    "brand": "string - nullable",
    "price": "float64 - unit price, nullable",
    "quantity": "float64 - nullable (1 when absent)",
    "order_id": "string - nullable: the order / transaction a purchase event belongs to (GA4 transaction_id, "
                "Segment order_id)",
    "order_amount": "float64 - nullable: the whole order's value on an order-level purchase event (no product: "
                    "Segment's Order Completed revenue or total); what it adds to purchase_amount",
    "currency": "string - upper-case ISO 4217, on purchase events only: the file's reporting currency (declared in "
                "sources.yaml, else its purchases' only or most common one: purchases in another are quarantined); "
                "null on other events, when the file names none, and in drops stored before the column existed",
}


# An export's session id names a session only together with its customer: GA4's ga_session_id is the
# second the session started, so two users starting in the same second share it. The id written is the
# pair, always (`<customer_id>#<export id>`), never the bare export id where it happens to be unambiguous:
# that would depend on which users a file holds, and the two parts of a session cut between files could
# get different ids. `#`, `@` and `%` in the export id are %-encoded, so the text after the last `#` is
# the whole export id: no two pairs, and no pair and gap-rule id `<customer_id>@<time>`, write the same id.
EXPORT_ID_ESCAPES = {"%": "%25", "#": "%23", "@": "%40"}  # "%" first: the others' codes contain it


def export_session_ids(events: pl.DataFrame) -> pl.Series:
    """`<customer_id>#<export session_id>` per row (null where the export gave no session id).

    The ids are joined as written while, in parallel, the export ids are searched for the characters to
    escape (rare); only when one is found are they joined again, escaped. 10M events (2 busy cores): the
    search 0.5-0.7 s, the join 0.8-1.5 s, one after the other before."""
    ids = pl.col("session_id")
    joined = events.select(session_id=pl.concat_str("customer_id", pl.lit("#"), ids),
                           _escape=ids.str.contains_any(list(EXPORT_ID_ESCAPES)).any())
    if not joined["_escape"][0]:
        return joined["session_id"]
    for char, code in EXPORT_ID_ESCAPES.items():
        ids = ids.str.replace_all(char, code, literal=True)
    return events.select(session_id=pl.concat_str("customer_id", pl.lit("#"), ids))["session_id"]


def sessionise(events: pl.DataFrame, gap: timedelta = SESSION_GAP) -> pl.DataFrame:
    """Typed events -> the same rows with `session_id` filled in.

    Rows carrying the export's session id get `<customer_id>#<export id>` (`export_session_ids`; an
    export with ids on every row keeps its row order: no sort). The others are split per customer into
    sessions that end after `gap` without an event; such a session's id is `<customer_id>@<ISO time of
    its first event>`. Both are stable across re-deliveries and files: they depend on the events only."""
    missing = events["session_id"].is_null()
    events = events.with_columns(session_id=export_session_ids(events))
    if not missing.any():
        return events
    derived = (
        events.filter(missing).lazy()
        .sort("customer_id", "event_time")
        .with_columns(_new=(pl.col("customer_id") != pl.col("customer_id").shift(1)).fill_null(True)
                      | ((pl.col("event_time") - pl.col("event_time").shift(1)) > gap).fill_null(True))
        .with_columns(_n=pl.col("_new").cum_sum())
        .with_columns(session_id=pl.col("customer_id") + pl.lit("@")
                      + pl.col("event_time").first().over("_n").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
        .drop("_new", "_n")
        .collect()
    )
    return pl.concat([events.filter(~missing), derived])


DERIVED_ID_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def derived_id() -> pl.Expr:
    """True where `session_id` was made by `sessionise`'s gap rule (`<customer_id>@<ISO time>`), not
    taken from the export. Costly on every row (10M: ~1.5 s); `maybe_derived` first where rows are many."""
    prefix = pl.col("customer_id") + pl.lit("@")
    return (pl.col("session_id").str.starts_with(prefix)
            & pl.col("session_id").str.strip_prefix(prefix).str.contains(DERIVED_ID_TIME))


def maybe_derived() -> pl.Expr:
    """A cheap superset of `derived_id` (10M rows: ~0.2 s): ends in `Z`, 21-31 bytes longer than the customer id."""
    extra = pl.col("session_id").str.len_bytes().cast(pl.Int64) - pl.col("customer_id").str.len_bytes().cast(pl.Int64)
    return pl.col("session_id").str.ends_with("Z") & extra.is_between(21, 31)


def sessionise_across_drops(events: pl.DataFrame, gap: timedelta = SESSION_GAP) -> pl.DataFrame:
    """Events of several drops (each sessionised on its own) -> the same rows with the gap-rule sessions
    of every customer whose such events come from more than one drop made again over all of them.

    A drop cut in the middle of a session (an export cut at midnight) ends that session at the cut and
    the next drop starts a new one; sessionised together, the two parts are one session again with the
    id the whole session would have had (`<customer_id>@<first event time>`). Export session ids
    (`<customer_id>#<export id>`) are kept as they are: they already name the session across files."""
    if events.is_empty() or (events["source_file"] == events["source_file"][0]).all():
        return events  # one drop: nothing was cut between files
    # staged: the cheap test on every row, the exact one on the few that pass (all rows when every
    # session is a gap session; 10M events of one drop never get here)
    gap_rule = (events.select("customer_id", "session_id", "source_file").with_row_index("_row")
                .filter(maybe_derived()).filter(derived_id()))
    spread = gap_rule.group_by("customer_id").agg(drops=pl.col("source_file").n_unique()).filter(pl.col("drops") > 1)
    if spread.is_empty():
        return events
    rows = gap_rule.join(spread, on="customer_id", how="semi")["_row"]
    redo = pl.Series(np.zeros(events.height, dtype=bool)).scatter(rows, True)
    again = sessionise(events.filter(redo).with_columns(session_id=pl.lit(None, pl.String)), gap)
    return pl.concat([events.filter(~redo), again.select(events.columns)])


def session_purchase_orders(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Sessionised events -> `session_id, purchase_orders` for the sessions with a purchase event: one entry per
    order id of its purchase events (null for those without one) with the sum of their `purchase_value`, in order
    id order. What clean_sessions matches against the orders data so an order in both exports counts once.
    Events stored before `order_id` existed name no order (one null entry)."""
    events = events.lazy()
    if "order_id" not in events.collect_schema().names():
        events = events.with_columns(order_id=pl.lit(None, pl.String))
    if "order_amount" not in events.collect_schema().names():  # a drop stored before order_amount existed
        events = events.with_columns(order_amount=pl.lit(None, pl.Float64))
    return (
        events.filter(pl.col("event_type") == "purchase")
        .group_by("session_id", "order_id").agg(amount=purchase_value().sum())
        .sort("session_id", "order_id", nulls_last=True)
        .group_by("session_id", maintain_order=True)
        .agg(purchase_orders=pl.struct("order_id", "amount"))
        .with_columns(pl.col("purchase_orders").cast(PURCHASE_ORDERS))
    )


def event_sessions(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Sessionised events -> one row per session, in the sessions table's shape plus
    `session_start, page_views, product_views, categories_viewed`.

    `browsing_time_sec` = last minus first event time; `page_views` = view events, `product_views`
    = view events of a product, `categories_viewed` = distinct categories viewed; `added_to_cart` /
    `purchase_made` = any such event; `purchase_amount` = sum of purchase events' `purchase_value`
    (price x quantity, quantity 1 when absent; an order-level purchase's order_amount; no price adds 0);
    `product_viewed` = the known category with the most views in the session (then most events; ties
    alphabetical), `unknown` when no event has a category (a product id is never a category: it would explode
    per-category features and rankings); `purchase_orders` = `session_purchase_orders` (null without a purchase,
    and on every session of events that name no order id: nothing to match; the join cost 10M events ~70 MiB of
    peak memory).

    Two group-bys: per (session, category), then per session over those few rows, only for the sessions
    with events of several categories; a session of one category is its one row as it stands (10M events:
    2.06M rows for 2.02M sessions, the second group-by 2.3-3.5 -> ~0.7 s CPU)."""
    view, purchase = pl.col("event_type") == "view", pl.col("event_type") == "purchase"
    names_orders = "order_id" in (events.columns if isinstance(events, pl.DataFrame) else events.collect_schema().names())
    if names_orders:  # the rows in memory know their null count; stored ones are read for this one column
        names_orders = (events["order_id"].null_count() < events.height if isinstance(events, pl.DataFrame)
                        else events.select(pl.col("order_id").is_not_null().any()).collect().item())
    events = events.lazy()
    if "order_amount" not in events.collect_schema().names():  # a drop stored before order_amount existed
        events = events.with_columns(order_amount=pl.lit(None, pl.Float64))
    per_label = events.group_by(
        "session_id", pl.col("category").alias("_label"), pl.col("category").is_not_null().alias("_is_category"),
    ).agg(
        _first=pl.col("event_time").min(), _last=pl.col("event_time").max(),
        # a session id holds its customer (`<customer_id>#…`, `<customer_id>@…`): any row's customer is the session's
        _customer=pl.col("customer_id").first(),
        _date=pl.col("event_date").sort_by("event_time").first(),
        _views=view.sum(), _product_views=(view & pl.col("product_id").is_not_null()).sum(), _events=pl.len(),
        _carted=(pl.col("event_type") == "cart").any(), _purchased=purchase.any(),
        _amount=purchase_value().filter(purchase).sum(),
        source_file=pl.col("source_file").first(), line=pl.col("line").min(),
    ).collect()
    # sessions of several rows, found on the ids' hashes (2M ids: 0.4 -> 0.15 s); a collision only sends a
    # one-row session through the merge, which gives it the same figures
    several = repeated(per_label["session_id"].hash())
    by_time = pl.col("_first")
    merged = per_label.filter(several).lazy().group_by("session_id").agg(
        customer_id=pl.col("_customer").first(),
        session_date=pl.col("_date").sort_by(by_time).first(),
        product_viewed=pl.col("_label").sort_by(["_is_category", "_views", "_events", "_label"],
                                                descending=[True, True, True, False], nulls_last=True).first(),
        browsing_time_sec=(pl.col("_last").max() - by_time.min()).dt.total_microseconds() / 1e6,
        purchase_made=pl.col("_purchased").any(),
        purchase_amount=pl.col("_amount").sum(),
        added_to_cart=pl.col("_carted").any(),
        session_start=by_time.min(),
        page_views=pl.col("_views").sum().cast(pl.Int64),
        product_views=pl.col("_product_views").sum().cast(pl.Int64),
        categories_viewed=(pl.col("_is_category") & (pl.col("_views") > 0)).sum().cast(pl.Int64),
        source_file=pl.col("source_file").first(),
        line=pl.col("line").min(),
    )
    alone = per_label.filter(~several).lazy().select(  # the same figures of a session's one row
        "session_id", customer_id="_customer", session_date="_date", product_viewed="_label",
        browsing_time_sec=(pl.col("_last") - by_time).dt.total_microseconds() / 1e6,
        purchase_made="_purchased", purchase_amount="_amount", added_to_cart="_carted", session_start=by_time,
        page_views=pl.col("_views").cast(pl.Int64), product_views=pl.col("_product_views").cast(pl.Int64),
        categories_viewed=(pl.col("_is_category") & (pl.col("_views") > 0)).cast(pl.Int64),
        source_file="source_file", line="line",
    )
    return (
        (pl.concat([alone, merged]).join(session_purchase_orders(events), on="session_id", how="left") if names_orders
         else pl.concat([alone, merged]).with_columns(purchase_orders=pl.lit(None, PURCHASE_ORDERS)))
        .select(
            "session_id", "customer_id", "session_date", pl.col("product_viewed").fill_null(UNKNOWN_PRODUCT),
            "browsing_time_sec", "purchase_made", pl.col("purchase_amount").fill_null(0.0), "added_to_cart",
            "session_start", "page_views", "product_views", "categories_viewed", "purchase_orders", "source_file",
            "line",
        )
        .sort("line")
        .collect()
    )
