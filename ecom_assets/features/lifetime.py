"""Lifetime aggregates per customer, kept as a mergeable state.

Every stored column is a count, a sum, a minimum or a maximum (plus the per-category visit
counts), so the state of "all sessions so far" and the state of a new drop combine into the
state of both without reading the old sessions again. The readable aggregates (means, shares,
purchase-gap statistics, category mix) are derived from the state by `finish`.

The one order-dependent part is the purchase-gap chain: a drop that only adds purchase dates
on or after a customer's last purchase extends the chain; a purchase dated before it (late
data) splits a gap, and that customer is recomputed from its sessions (`late_customers`).
"""

from __future__ import annotations

import polars as pl

from ecom_assets.schemas import UNKNOWN_PRODUCT

LIFETIME_INPUTS = ["customer_id", "session_date", "purchase_made", "purchase_amount", "browsing_time_sec",
                   "product_viewed"]  # the session columns the state is computed from
STATE_COLUMNS = ["customer_id", "first_seen", "last_session", "first_purchase", "last_purchase", "n_sessions",
                 "n_purchases", "revenue", "max_order", "browsing_total_sec", "browsing_sessions", "weekend_sessions",
                 "category_counts", "purchase_days", "gap_sq_sum"]
SUMS = ["n_sessions", "n_purchases", "revenue", "browsing_total_sec", "browsing_sessions", "weekend_sessions"]
MINIMA = ["first_seen", "first_purchase"]
MAXIMA = ["last_session", "last_purchase", "max_order"]
CATEGORY_COUNT = pl.Struct({"category": pl.String, "n": pl.UInt32})
# the readable aggregates `finish` derives (what customer_features takes from the history)
LIFETIME_COLUMNS = ["n_sessions", "n_purchases", "revenue", "max_order", "browsing_mean_sec", "weekend_share",
                    "gap_mean_days", "gap_std_days", "distinct_categories", "favourite_category_share",
                    "favourite_category", "category_entropy"]

_d = pl.col("session_date")
_buy = pl.col("purchase_made")
_amount = pl.col("purchase_amount")


MAX_WIDE_CATEGORIES = 64  # up to this many categories the visits per category are counted in the main group-by


def lifetime_state(sessions: pl.LazyFrame | pl.DataFrame, max_wide: int = MAX_WIDE_CATEGORIES) -> pl.LazyFrame:
    """The mergeable state per customer over every session given (one group-by + one pass over the
    purchases for the gap chain). With at most `max_wide` categories the visits per category are
    one count column each in the same group-by (3x faster than grouping by customer and category),
    packed into a list sorted by category; beyond that, the two-key group-by. Customers who only
    viewed `unknown` get null."""
    s = sessions.lazy()
    known = pl.col("product_viewed") != UNKNOWN_PRODUCT
    categories = s.select(pl.col("product_viewed").filter(known).unique().sort()).collect().to_series().to_list()
    wide = len(categories) <= max_wide
    main = s.group_by("customer_id").agg(
        first_seen=_d.min(),
        last_session=_d.max(),
        first_purchase=_d.filter(_buy).min(),
        last_purchase=_d.filter(_buy).max(),
        n_sessions=pl.len().cast(pl.Float64),
        n_purchases=_buy.sum().cast(pl.Float64),
        revenue=_amount.sum(),
        max_order=_amount.filter(_buy).max(),
        browsing_total_sec=pl.col("browsing_time_sec").sum(),
        browsing_sessions=pl.col("browsing_time_sec").count().cast(pl.Float64),
        weekend_sessions=(_d.dt.weekday() >= 6).sum().cast(pl.Float64),
        *[(pl.col("product_viewed") == category).sum().alias(f"__n{i}")
          for i, category in enumerate(categories if wide else [])],
    )
    if wide and categories:
        packed = pl.concat_list([pl.struct(category=pl.lit(category), n=pl.col(f"__n{i}"))
                                 for i, category in enumerate(categories)])
        main = main.with_columns(category_counts=packed.list.eval(pl.element().filter(pl.element().struct.field("n") > 0)))
        main = main.drop(r"^__n\d+$")
    elif wide:
        main = main.with_columns(category_counts=pl.lit(None, dtype=pl.List(CATEGORY_COUNT)))
    else:
        main = main.join(category_counts(s.filter(known)), on="customer_id", how="left")
    return (
        main.with_columns(pl.when(pl.col("category_counts").list.len() > 0).then(pl.col("category_counts"))
                          .alias("category_counts"))
        .join(purchase_chain(s.filter(_buy)), on="customer_id", how="left")
        .with_columns(pl.col("purchase_days", "gap_sq_sum").fill_null(0.0))
        .select(STATE_COLUMNS)
    )


def category_counts(rows: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """customer_id, category_counts (list of {category, n} sorted by category) from rows that carry
    either `product_viewed` (one visit each) or already-counted `category`, `n`."""
    rows = rows.lazy()
    if "product_viewed" in rows.collect_schema().names():
        rows = rows.group_by("customer_id", pl.col("product_viewed").alias("category")).agg(n=pl.len())
    return (
        rows.group_by("customer_id", "category").agg(pl.col("n").sum().cast(pl.UInt32))
        .sort("customer_id", "category")
        .group_by("customer_id", maintain_order=True).agg(category_counts=pl.struct("category", "n"))
    )


def purchase_chain(purchases: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Per customer: distinct purchase dates and the sum of squared days between consecutive ones
    (with first/last purchase and the count, enough for the mean and std of the gaps)."""
    return (
        purchases.lazy().select("customer_id", "session_date").unique()
        .sort("customer_id", "session_date")
        .with_columns(gap=pl.when(pl.col("customer_id") == pl.col("customer_id").shift(1))
                      .then(_d.diff().dt.total_days().cast(pl.Float64)))
        .group_by("customer_id").agg(purchase_days=pl.len().cast(pl.Float64), gap_sq_sum=(pl.col("gap") ** 2).sum())
    )


def finish(state: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """The readable lifetime aggregates from the state (kept beside it)."""
    gaps = pl.col("purchase_days") - 1
    gap_mean = (pl.col("last_purchase") - pl.col("first_purchase")).dt.total_days().cast(pl.Float64) / gaps
    # sample std of the gaps from their sum of squares: sum(g^2) - k * mean^2 over k - 1 (clipped at 0
    # against rounding); the sum of the gaps is last - first, an exact integer
    gap_var = (pl.col("gap_sq_sum") - gaps * gap_mean**2) / (gaps - 1)
    n = pl.col("category_counts").list.eval(pl.element().struct.field("n").cast(pl.Float64))
    total = n.list.sum()
    seen = total > 0
    share = n.list.eval(pl.element() / pl.element().sum())
    return state.lazy().with_columns(
        browsing_mean_sec=pl.when(pl.col("browsing_sessions") > 0)
        .then(pl.col("browsing_total_sec") / pl.col("browsing_sessions")),
        weekend_share=pl.col("weekend_sessions") / pl.col("n_sessions"),
        gap_mean_days=pl.when(gaps >= 1).then(gap_mean),
        gap_std_days=pl.when(gaps >= 2).then(gap_var.clip(lower_bound=0.0).sqrt()),
        distinct_categories=pl.col("category_counts").list.len().fill_null(0).cast(pl.Float64),
        favourite_category_share=pl.when(seen).then(n.list.max() / total),
        # counts are sorted by category, so the first maximum is the alphabetically first favourite
        favourite_category=pl.col("category_counts").list.get(n.list.arg_max(), null_on_oob=True)
        .struct.field("category"),
        category_entropy=pl.when(seen).then(-share.list.eval(pl.element() * pl.element().log()).list.sum()),
    )


def lifetime_aggregates(sessions: pl.LazyFrame | pl.DataFrame, max_wide: int = MAX_WIDE_CATEGORIES) -> pl.LazyFrame:
    """State and readable aggregates per customer over every session given (`customer_history`)."""
    return finish(lifetime_state(sessions, max_wide))


def late_customers(previous: pl.DataFrame, drop: pl.DataFrame) -> pl.Series:
    """Customers with a purchase in `drop` dated before their stored last purchase: it splits a gap,
    so their chain cannot be extended and they are recomputed from their sessions."""
    return (
        drop.filter(_buy).select("customer_id", "session_date")
        .join(previous.select("customer_id", "last_purchase"), on="customer_id")
        .filter(_d < pl.col("last_purchase"))["customer_id"].unique()
    )


def merge_drop(previous: pl.DataFrame, drop: pl.DataFrame) -> pl.DataFrame:
    """The finished state of every customer in `drop` (new sessions only, none dated before a
    customer's last purchase — see `late_customers`): their stored state combined with the drop's."""
    added = lifetime_state(drop).collect()
    before = previous.join(added.select("customer_id"), on="customer_id", how="semi")
    # the gap chain continues from the stored last purchase: chain it in front of the drop's dates
    chain = purchase_chain(pl.concat([
        before.filter(pl.col("last_purchase").is_not_null()).select("customer_id", session_date="last_purchase"),
        drop.filter(_buy).select("customer_id", "session_date"),
    ])).collect()
    counts = category_counts(
        pl.concat([before.select("customer_id", "category_counts"), added.select("customer_id", "category_counts")])
        .explode("category_counts").drop_nulls("category_counts").unnest("category_counts")).collect()
    merged = (
        added.join(before, on="customer_id", how="left", suffix="_before")
        .join(chain.rename({"purchase_days": "chain_days", "gap_sq_sum": "chain_sq"}), on="customer_id", how="left")
        .with_columns(
            *[(pl.col(c) + pl.col(f"{c}_before").fill_null(0)).alias(c) for c in SUMS],
            *[pl.min_horizontal(c, f"{c}_before").alias(c) for c in MINIMA],
            *[pl.max_horizontal(c, f"{c}_before").alias(c) for c in MAXIMA],
            # the stored last purchase is the chain's first date and is counted in the stored days already
            purchase_days=pl.col("purchase_days_before").fill_null(0) + pl.col("chain_days").fill_null(0)
            - pl.col("last_purchase_before").is_not_null().cast(pl.Float64),
            gap_sq_sum=pl.col("gap_sq_sum_before").fill_null(0) + pl.col("chain_sq").fill_null(0),
        )
        .drop("category_counts")
        .join(counts, on="customer_id", how="left")
        .select(STATE_COLUMNS)
    )
    return finish(merged).collect()


def update_with_drop(previous: pl.DataFrame, drop: pl.DataFrame,
                     all_sessions: pl.LazyFrame) -> tuple[pl.DataFrame, int, int]:
    """(history after `drop`, customers merged, customers recomputed). `all_sessions` (the stored
    sessions including the drop's) is read only for customers with a late purchase."""
    merged = merge_drop(previous, drop)
    late = late_customers(previous, drop)
    if late.len():  # their gap chain is split: recompute them from every session they have
        # is_in inside the scan: filtered in the parquet reader, other columns decoded only where it matches
        sessions = all_sessions.select(LIFETIME_INPUTS).filter(pl.col("customer_id").is_in(late.implode()))
        recomputed = lifetime_aggregates(sessions).collect().select(previous.columns)
        merged = pl.concat([merged.join(recomputed, on="customer_id", how="anti"), recomputed])
    table = pl.concat([previous.join(merged, on="customer_id", how="anti"), merged.select(previous.columns)])
    return table.sort("customer_id"), merged.height - late.len(), late.len()
