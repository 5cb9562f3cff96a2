"""`orders*.csv`: one row per order line (Shopify, WooCommerce, ERP exports, UCI Online Retail).

Contract (DESIGN.md "Real exports"): `order_id, customer_id, order_time` and `unit_price` (with `quantity`)
or `line_amount`; optional `quantity, product_id, category, product_name, status, currency, refunded_amount,
discount_amount` (a purchase log `customer, date, amount` has no quantity: its items are unknown, null). An order is read whole or not at all: a quarantined line quarantines its order's other lines
(`parse.quarantine_whole_records`), so no order is counted as a smaller purchase.
An order-level export (one row per order with its total, no product column: a purchase log)
is read the same way, every line's product being `unknown`; where the file has a product
column, a line without a product is quarantined. A file without an `order_id` column (CDNOW's
`customer, date, quantity, amount`) is one order per row, its id derived from the row's content
(`parse.content_key`: stable across re-exports of the same row, never a line number).

Pure polars functions, used by the `raw_orders` partition (ingest/assets.py):
- `order_rules` / `typed_order_lines`: the row rules and typed values `parse.split_rows` applies,
  so an order line gets the same three fates (clean / quarantined with reason / duplicate) as a
  session row. A line without a customer is quarantined ("empty customer_id"), never guessed; a
  continuation line whose order-level fields (customer_id, order_time, status, currency) are empty
  first takes them from the other lines of its order in the file when those carry exactly one value
  (`parse.fill_record_fields`: Shopify writes them on an order's first line item only).
- `mark_returns`: a line is a return or cancellation when its `status` says the order was
  cancelled/refunded/returned as a whole or not (yet) paid (pending, authorized, failed, on-hold), its quantity or amount is negative, or the file's declared
  `return_when` rule holds (e.g. order ids starting with `C`, as UCI Online Retail writes
  cancellations). A `partially_refunded` order is bought: its positive lines are purchases, its
  negative lines refunds.
- `is_refund`: which return lines are money given back for revenue counted earlier (subtracted in
  net revenue) and which are lines of a cancelled/refunded order (never revenue, kept for the record).
- `restates_order` / `withdrawn_orders`: which export of an order re-exported in a later drop replaces its
  earlier ones (clean.tables.latest_per_order, clean.store), and which orders a drop withdraws from purchases.
- `order_revenue`: what an order counts as revenue: its positive lines less its order-level `discount_amount`
  (Shopify's Discount Amount, on the first line item), once.
- `order_refunds`: the refunds net revenue subtracts, once per order: an order-level `refunded_amount`
  (Shopify's Refunded Amount, written on the order's first line item: a partial refund has no negative line)
  where the export gives one, at most the order's revenue, else the order's refund lines.
- `order_sessions`: each order with at least one purchased line becomes one purchased row of
  the sessions table (`session_id` = order id), so every session-based table keeps working.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from ecom_assets.ingest.parse import (KINDS, RULES, DropKind, Reading, _bad, _date_rules, _empty, _text_rules,
                                      text_or_null, value_last)
from ecom_assets.ingest.sources import ReturnRule
from ecom_assets.ingest.values import number_hint
from ecom_assets.schemas import UNKNOWN_PRODUCT, CleanOrderLines

KIND = DropKind(
    "orders",
    ("order_id", "customer_id", "order_time"),
    ("quantity", "product_id", "unit_price", "line_amount", "category", "product_name", "status", "currency", "refunded_amount",
     "discount_amount"),
    dates=("order_time",), numbers=("quantity", "unit_price", "line_amount", "refunded_amount", "discount_amount"),
    texts=("order_id", "customer_id", "product_id", "category", "product_name"),
    any_of=("unit_price", "line_amount"), keyed=False,
    # order-level fields: a Shopify export writes them on an order's first line item only
    record_key="order_id",
    record_fields=("customer_id", "order_time", "status", "currency", "refunded_amount", "discount_amount"),
    key_from_content=True,  # a purchase log without order ids: one order per row
    # one unreadable line (a gift card without SKU, an ambiguous `1,185`) would leave a smaller purchase, its
    # order-level refund still whole: the order's other lines are quarantined with it
    whole_records="never counted as a smaller purchase",
    categories=("category",),
)
# order statuses meaning the whole order was not (or no longer) bought, so none of its lines ever was revenue;
# compared lower-case. `partially_refunded` is not one: the order was bought, its refund is its negative lines.
DECLARED = "declared in sources.yaml: "  # return_reason of a line the file's `return_when` rule marks
RETURN_STATUSES = ("cancelled", "canceled", "refunded", "returned", "voided", "void", "reversed", "chargeback")
# order statuses meaning the order was not (yet) paid: never revenue either (Shopify pending / authorized, WooCommerce
# pending / failed / on-hold / checkout-draft); compared as `status_word`. It becomes revenue in the export that says paid.
NOT_PAID_STATUSES = ("pending", "authorized", "failed", "on_hold", "unpaid", "expired", "checkout_draft")


def status_word() -> pl.Expr:
    """The lower-case status as a word to compare: WooCommerce's `wc-` prefix dropped, spaces and hyphens as `_`
    ("On hold", "on-hold", "wc-on-hold" -> "on_hold")."""
    return pl.col("status").str.strip_prefix("wc-").str.replace_all(r"[ -]", "_")


def unreadable_number(column: str, reading: Reading) -> tuple[pl.Expr, pl.Expr]:
    """Present but not a finite number in the file's decimal mark (a sign is allowed: returns are negative)."""
    return _bad(~_empty(column) & reading.number(column).is_null(), number_hint(column, reading.decimal.get(column, ".")))


def order_amount_rules(column: str, meaning: str, reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    """Rules of an order-level amount (`refunded_amount`, `discount_amount`): readable, not negative (`meaning`
    says what it is, written positive), and one figure per order: lines that disagree cannot say which is the
    order's."""
    amount = reading.number(column)
    return [
        unreadable_number(column, reading),
        _bad(amount < 0, value_last(f"negative {column} ({meaning}, written positive)", column)),
        _bad(amount.max().over("order_id") != amount.min().over("order_id"),
             value_last(f"{column} differs between the lines of this order_id (an order-level figure)", column)),
    ]


def order_rules(reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    quantity, price = reading.number("quantity"), reading.number("unit_price")
    return [
        *_text_rules(KIND, reading),  # empty order_id / customer_id
        # a purchase log may give only the amount (customer, date, amount): items are then unknown, never guessed
        _bad(_empty("quantity") & _empty("line_amount"), "empty quantity (needed for quantity x unit_price without "
             "a line_amount)"),
        # a product column with values: a line with neither an id nor a name to key it by is unreadable (a
        # purchase log has no such column)
        _bad(_empty("product_id") & _empty("product_name") & pl.col("product_id").is_not_null().any(),
             "empty product_id and product_name"),
        *_date_rules("order_time", reading, required=True),
        unreadable_number("quantity", reading),
        _bad(quantity == 0, value_last("quantity 0", "quantity")),
        unreadable_number("unit_price", reading),
        _bad(price < 0, value_last("negative unit_price (an adjustment, not a product line)", "unit_price")),
        unreadable_number("line_amount", reading),
        _bad(_empty("unit_price") & _empty("line_amount"), "neither unit_price nor line_amount"),
        *order_amount_rules("refunded_amount", "the money given back on the order", reading),
        *order_amount_rules("discount_amount", "the order's discounts", reading),
        *currency_rules(reading),
    ]


def currency_rules(reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    """Lines not in the file's reporting currency (`parse.reporting_currency`), and, in a file holding more
    than one currency, lines without one (their amount's currency is unknown): quarantined, never added."""
    if not reading.currency_rule:
        return []
    written = pl.col("currency").str.strip_chars().str.to_uppercase()
    other = ~_empty("currency") & (written != reading.currency if reading.currency else pl.lit(True))
    return [_bad(other, value_last(reading.currency_rule, "currency")),
            _bad(_empty("currency"), "empty currency in a file holding more than one currency (the amount's "
                 "currency is unknown)")]


def instant(column: str) -> pl.Expr:
    """The value's UTC instant; a date without a time counts from its midnight (UTC)."""
    return pl.coalesce(pl.col(f"_instant_{column}"),
                       pl.col(f"_date_{column}").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


# a product keyed by its name (`product_key`): never equal to an export's own product id
NAME_KEY = "name:"


def product_key() -> pl.Expr:
    """`product_id` as written; where it is empty and the line has a `product_name`, `name:` + that name (Shopify
    writes no SKU for a gift card, a custom item or a tip; WooCommerce products often have none): the export's own
    label of the item, stable across its exports, and counted per drop (`lines_keyed_by_name`); else `unknown`
    (an order-level log without products)."""
    return (pl.when(~_empty("product_id")).then(pl.col("product_id"))
            .when(~_empty("product_name")).then(pl.lit(NAME_KEY) + pl.col("product_name"))
            .otherwise(pl.lit(UNKNOWN_PRODUCT)).alias("product_id"))


def typed_order_lines(reading: Reading) -> list[pl.Expr]:
    quantity, price = reading.number("quantity"), reading.number("unit_price")
    # a given line_amount is the export's own figure (discounts included); else quantity x unit price
    amount = pl.coalesce(reading.number("line_amount"), quantity * price)
    return [
        pl.col("order_id"),
        reading.customer(),
        instant("order_time").alias("order_time"),
        pl.col("_date_order_time").alias("order_date"),
        product_key(),
        text_or_null("product_name"),
        pl.when(reading.no_category("category")).then(None).otherwise(pl.col("category")).alias("category"),
        quantity.alias("quantity"),
        price.alias("unit_price"),
        amount.alias("line_amount"),
        pl.when(_empty("status")).then(None).otherwise(pl.col("status").str.to_lowercase()).alias("status"),
        # a line that leaves it empty is in the file's reporting currency: its amount is added as such anyway
        pl.when(_empty("currency")).then(pl.lit(reading.currency, pl.String))
        .otherwise(pl.col("currency").str.to_uppercase()).alias("currency"),
        reading.number("refunded_amount").alias("refunded_amount"),
        reading.number("discount_amount").alias("discount_amount"),
    ]


KINDS[KIND.name] = KIND
RULES[KIND.name] = (order_rules, typed_order_lines, CleanOrderLines)

ORDER_LINE_COLUMNS = {
    "order_id": "string - order key (one order = one session row)",
    "customer_id": "string - required (lines without one are quarantined)",
    "order_time": "datetime[us, UTC] - when the order was placed (a date alone: its midnight UTC)",
    "order_date": "date - the calendar date written in order_time",
    "product_id": "string - as exported; 'name:<product_name>' for a line without one but with a name (a gift "
                  "card, a custom item); 'unknown' when the export has neither (an order-level log)",
    "product_name": "string - nullable",
    "category": "string - nullable",
    "quantity": "float64 - negative on a return line; null when the export gives only line_amount (a purchase log)",
    "unit_price": "float64 - nullable when the export gives line_amount",
    "line_amount": "float64 - line_amount as exported, else quantity x unit_price (negative on returns)",
    "status": "string - lower-case, nullable",
    "currency": "string - upper-case, nullable; one per file (its reporting currency: lines in another are quarantined)",
    "refunded_amount": "float64 - nullable, >= 0: the money given back on the whole order as the export writes it "
                       "(Shopify's Refunded Amount), the same on every line of the order; counted once per order, "
                       "at most the order's revenue",
    "discount_amount": "float64 - nullable, >= 0: the discounts on the whole order (Shopify's Discount Amount), the "
                       "same on every line of the order; subtracted once from the order's revenue",
    "is_return": "bool - a return/cancellation line (goes to clean_returns, never a purchase)",
    "return_reason": "string - why the line is a return; null for purchased lines",
}
REFUND_COLUMN = {"is_refund": "bool - a refund (money given back for revenue counted earlier: subtracted in net "
                 "revenue); false for purchases and for lines of a cancelled/refunded order (never revenue)"}


def return_reason(return_when: ReturnRule | None = None) -> pl.Expr:
    """Why a typed order line is a return (null for a purchased line); the first reason that holds.
    `return_when`: the file's declared rule (sources.yaml), e.g. order ids starting with `C`."""
    cases = [  # the order's status first: it says whether the line ever was revenue (see `is_refund`)
        (status_word().is_in(list(RETURN_STATUSES)), pl.lit("status '") + pl.col("status") + pl.lit("'")),
        (status_word().is_in(list(NOT_PAID_STATUSES)), pl.lit("status '") + pl.col("status") + pl.lit("' (not paid)")),
        (pl.col("quantity") < 0, pl.lit("negative quantity")),
        (pl.col("line_amount") < 0, pl.lit("negative line_amount")),
    ]
    if return_when is not None:
        declared = (f"{return_when.column} starts with {return_when.prefix!r}" if return_when.prefix is not None
                    else f"{return_when.column} in {list(return_when.values)}")
        cases.append((return_when.expr(), pl.lit(f"{DECLARED}{declared}")))
    reason = pl.lit(None, pl.String)
    for condition, text in reversed(cases):
        reason = pl.when(condition.fill_null(False)).then(text).otherwise(reason)
    return reason


def mark_returns(lines: pl.DataFrame, return_when: ReturnRule | None = None) -> pl.DataFrame:
    """Typed lines + `is_return`, `return_reason` (see `return_reason`)."""
    return lines.with_columns(return_reason=return_reason(return_when)).with_columns(
        is_return=pl.col("return_reason").is_not_null())


def is_refund() -> pl.Expr:
    """Over marked lines (`is_return`, `status`, `return_reason`): true for a refund, money given back for
    revenue counted earlier (a negative line, or a declared `return_when` line such as UCI's `C` invoices, of
    an order not cancelled/refunded as a whole), which net revenue subtracts; false for a purchased line and
    for a line whose order status is in RETURN_STATUSES or NOT_PAID_STATUSES or matches a `return_when` rule
    declared on `status`: that order never was revenue, so subtracting it would count it twice."""
    never_revenue = (status_word().is_in(list(RETURN_STATUSES + NOT_PAID_STATUSES))
                     | pl.col("return_reason").str.starts_with(f"{DECLARED}status ")).fill_null(False)
    return pl.col("is_return") & ~never_revenue


def restates_order() -> pl.Expr:
    """Aggregation over one order's marked lines (with `is_refund`) in one drop: true when that export restates
    the order, i.e. holds a line that is not a refund (a purchased line, or a line of a cancelled/refunded
    order). Such an export replaces the order's earlier exports as a whole; refund lines exported alone (an
    incremental export of the day's refunds) add to the order instead."""
    return (~pl.col("is_refund")).any()


def withdrawn_orders(lines: pl.DataFrame | pl.LazyFrame) -> pl.Series:
    """One drop's marked order lines -> `order_id` of the orders it restates without a purchased line (cancelled
    or refunded as a whole since an earlier export): their earlier purchased session is withdrawn, not kept."""
    return (
        lines.lazy().with_columns(is_refund=is_refund())
        .group_by("order_id").agg(restates=restates_order(), bought=(~pl.col("is_return")).any())
        .filter(pl.col("restates") & ~pl.col("bought")).select("order_id").collect().to_series()
    )


def with_refund_flags(raw_lines: pl.DataFrame) -> pl.DataFrame:
    """Stored order lines (raw_orders, every drop) + `is_refund`; `refunded_amount` / `discount_amount` null where
    a drop ingested before that column existed lacks it."""
    if raw_lines.width == 0:
        return raw_lines
    raw_lines = raw_lines.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ORDER_AMOUNTS
                                       if c not in raw_lines.columns)
    return raw_lines.with_columns(is_refund=is_refund())


ORDER_AMOUNTS = ("refunded_amount", "discount_amount")  # order-level amounts, on every line of the order


def order_revenue() -> pl.Expr:
    """Aggregation over one order's purchased lines (`line_amount`, `discount_amount`): what the order counts as
    revenue, its positive line amounts less its order-level discount (once: every line carries it), never below 0
    (a discount above the items, e.g. with a shipping discount in it, leaves 0)."""
    lines = pl.col("line_amount").filter(pl.col("line_amount") > 0).sum()
    return (lines - pl.col("discount_amount").max().fill_null(0.0)).clip(lower_bound=0.0)


# the clean_order_lines columns `order_refunds` reads
REFUND_INPUT_COLUMNS = ["order_id", "order_time", "line_amount", "refunded_amount", "discount_amount"]


def order_refunds(order_lines: pl.LazyFrame | pl.DataFrame, returns: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """The money given back on bought orders, each refund once: rows (`order_id`, `order_time`, `refunds` >= 0,
    `refund_above_revenue` >= 0).

    `order_lines`: clean_order_lines (`REFUND_INPUT_COLUMNS`); `returns`: clean_returns
    (`order_id, order_time, line_amount, is_refund`). An order with purchased lines and an order-level
    `refunded_amount` > 0 gives one row of that amount, dated by its order time (the export gives no refund
    date), capped at the order's revenue (`order_revenue`): the platform's figure may hold refunded shipping and
    taxes, which revenue never counted, so subtracting them would take more than the order brought; the part
    above is `refund_above_revenue`, reported, never subtracted. Its own refund lines are then left out: the
    order-level figure is the platform's total given back on the order, which its negative lines only itemise
    (often without shipping), so adding both would count the refund twice. Every other `is_refund` line is one
    row of its amount (by its own order time; `refund_above_revenue` 0). An order with no purchased line
    (cancelled / refunded / not paid as a whole) never was revenue: its `refunded_amount` is not a refund."""
    given = (order_lines.lazy()
             # one figure per order: lines of an order that disagree are quarantined at ingest
             .group_by("order_id").agg(pl.col("order_time").min(), _given=pl.col("refunded_amount").max(),
                                       _revenue=order_revenue())
             .filter(pl.col("_given") > 0)
             .select("order_id", "order_time", refunds=pl.min_horizontal("_given", "_revenue"),
                     refund_above_revenue=(pl.col("_given") - pl.col("_revenue")).clip(lower_bound=0.0)))
    lines = (returns.lazy().filter("is_refund").join(given, on="order_id", how="anti")
             .select("order_id", "order_time", refunds=pl.col("line_amount").abs(),
                     refund_above_revenue=pl.lit(0.0)))
    return pl.concat([given, lines], how="vertical_relaxed")


def _file_names(files: list[str]) -> str:
    """Partition keys as the file names dropped, the first three then "…"."""
    return ", ".join(f.rsplit("__", 1)[0] for f in files[:3]) + (", …" if len(files) > 3 else "")


def file_currencies(table: pl.LazyFrame, rows: pl.Expr) -> pl.LazyFrame:
    """Distinct (source_file, currency) of `table`'s money-carrying `rows` (all order lines, purchase events,
    purchased sessions): `money_currencies`' `money`, lazily. A table without a `currency` column (a sessions
    export; events stored before they kept one) names none."""
    currency = pl.col("currency") if "currency" in table.collect_schema().names() else pl.lit(None, pl.String)
    return table.filter(rows).select("source_file", currency.alias("currency")).unique()


def money_currencies(money: pl.DataFrame) -> dict[str, list[str]]:
    """currency -> the files (partition keys, sorted) naming it, in currency order, over `money` (`source_file`,
    `currency`: rows of the money-carrying files — order lines, purchase events, purchased sessions of a sessions
    export — null where a file names no currency)."""
    by_currency = (money.filter(pl.col("currency").is_not_null())
                   .group_by("currency").agg(pl.col("source_file").unique().sort()).sort("currency"))
    return dict(zip(by_currency["currency"], by_currency["source_file"].to_list()))


def currency_problem(money: pl.DataFrame) -> str | None:
    """None when the money rows with a currency (`money_currencies`' `money`) are all in one, else which files hold
    which: each file keeps only its reporting currency (see `parse.reporting_currency`), but revenue adds files
    together, and money is never converted."""
    found = money_currencies(money)
    if len(found) > 1:
        return ("amounts in " + " and ".join(f"{c} ({_file_names(files)})" for c, files in found.items())
                + ": revenue adds these files as if they were one currency; ingest one shop's currency per data "
                  "directory, or declare the shop's `currency` in sources.yaml for every orders and events file")
    return None


def unnamed_currency_files(money: pl.DataFrame) -> list[str]:
    """The money-carrying files of `money` (`money_currencies`' `money`) none of whose rows names a currency, when
    another file names one (sorted partition keys): their amounts are added to the others' as if in the same
    currency, which nothing can check. [] when no file names a currency: a sessions export never does (its
    contract has no currency column), and a sessions-only shop's money is simply in settings.currency."""
    named = set(money.filter(pl.col("currency").is_not_null())["source_file"])
    return sorted(set(money["source_file"]) - named) if named else []


def unnamed_currency_note(money: pl.DataFrame) -> str:
    """`unnamed_currency_files` of `money` in words: their currency is assumed to be the one the other files name,
    or unknown when those name several. "" without such files."""
    files, found = unnamed_currency_files(money), list(money_currencies(money))
    if not files:
        return ""
    assumed = found[0] if len(found) == 1 else None
    return (f"{len(files)} file(s) carrying money name no currency ({_file_names(files)}): their amounts are "
            + (f"assumed to be in {assumed}" if assumed else "added in an unknown currency")
            + " (a sessions export has no currency column; an orders or events export's `currency` can be declared "
              "in sources.yaml)")


def shown_currency(money: pl.DataFrame, setting: str) -> str:
    """The label to show beside money, over `money_currencies`' `money` (clean_order_lines, clean_returns,
    clean_events' purchases, a sessions export's purchases): the one currency the files name (each file's
    reporting currency, declared in sources.yaml or written in the export); "mixed EUR+USD" when they name several
    (revenue adds them unconverted and `one_currency` fails: no one code is true); else `setting` (settings.currency,
    `$ECOM_CURRENCY`, `ecom-assets run --currency`): a sessions export carries no currency."""
    found = list(money_currencies(money))
    return found[0] if len(found) == 1 else f"mixed {'+'.join(found)}" if found else setting


def order_sessions(lines: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Order lines (typed, marked) -> one purchased session row per order with a purchased line.

    `purchase_amount` = sum of the order's positive line amounts less its `discount_amount` (`order_revenue`);
    `units_purchased` = sum of its
    purchased lines' quantity (items bought: a wholesaler's bulk orders); `product_viewed` = the known category
    with the largest summed line value in the order (ties: alphabetical), `unknown` when no line has
    one (a product id is never a category: it would explode per-category features and rankings);
    `session_start` = the earliest order_time; `line` = the order's first physical line.
    Orders made only of return lines give no row: they are in clean_returns, never purchases.
    Columns: session-shaped (see ingest.assets.RAW_COLUMNS["sessions"]) + `source_file`, `line`.
    """
    bought = lines.lazy().filter(~pl.col("is_return"))
    if "discount_amount" not in bought.collect_schema().names():  # lines typed before the column existed
        bought = bought.with_columns(discount_amount=pl.lit(None, pl.Float64))
    top = (
        bought.group_by("order_id", pl.col("category").alias("_label"))
        .agg(pl.col("line_amount").sum().alias("_value"))
        # known categories first; the uncategorised group only when nothing else is there
        .sort("order_id", pl.col("_label").is_null(), "_value", "_label", descending=[False, False, True, False])
        .group_by("order_id").agg(pl.col("_label").first().alias("product_viewed"))
    )
    return (
        bought.group_by("order_id")
        .agg(
            pl.col("customer_id").sort_by("line").first(),
            pl.col("order_time").min().alias("session_start"),
            pl.col("order_date").min().alias("session_date"),
            order_revenue().alias("purchase_amount"),
            # items bought: unknown (null) when a purchased line does not say its quantity
            pl.when(pl.col("quantity").is_null().any()).then(None)
            .otherwise(pl.col("quantity").filter(pl.col("quantity") > 0).sum()).alias("units_purchased"),
            pl.col("source_file").first(),
            pl.col("line").min(),
        )
        .join(top, on="order_id", how="left")
        .select(
            pl.col("order_id").alias("session_id"),
            "customer_id",
            "session_date",
            pl.col("product_viewed").fill_null(UNKNOWN_PRODUCT),
            pl.lit(None, pl.Float64).alias("browsing_time_sec"),
            pl.lit(True).alias("purchase_made"),
            "purchase_amount",
            pl.lit(None, pl.Boolean).alias("added_to_cart"),
            "session_start",
            "units_purchased",
            "source_file",
            "line",
        )
        .sort("line")
        .collect()
    )
