"""Lifetime aggregates per customer, kept as a mergeable state.

Every stored state column is a count, a sum, a minimum or a maximum (visits per category are one
`visits::<category>` count column each), so the state of "all sessions so far" and the state of a
new drop combine into the state of both without reading the old sessions again. The readable
aggregates (means, shares, purchase-gap statistics, category mix) are derived by `finish`.

The one order-dependent part is the purchase-gap chain: a drop that only adds purchase dates on
or after a customer's last purchase extends the chain; a purchase dated before it (late data)
splits a gap, and that customer is recomputed from its sessions (`update_with_drop`).

Categories: only the `max_categories` most visited ones (ties: alphabetical) get a visit column; the
visits of every other category are pooled in `visits_pooled`, a column outside the `visits::`
namespace, so no observed category (`other` included) can collide with it. An export whose
"category" is a product id (thousands of values) so stays at K + 1 count columns. The pooled rest
counts as one category in `distinct_categories` and `category_entropy` and is never a favourite.
The kept set is a function of the visit totals over all sessions: a drop that changes it (a pooled
category overtakes a kept one) makes `update_with_drop` report that a full recompute is needed.
"""

from __future__ import annotations

import polars as pl

from ecom_assets.schemas import UNKNOWN_PRODUCT, sorted_by_id

LIFETIME_INPUTS = ["customer_id", "session_date", "purchase_made", "purchase_amount", "browsing_time_sec",
                   "product_viewed", "units_purchased"]  # the session columns the state is computed from
STATE_COLUMNS = ["customer_id", "first_seen", "last_session", "first_purchase", "last_purchase", "n_sessions",
                 "n_purchases", "revenue", "max_order", "browsing_total_sec", "browsing_sessions", "weekend_sessions",
                 "purchase_days", "gap_sq_sum", "units", "unit_orders"]
SUMS = ["n_sessions", "n_purchases", "revenue", "browsing_total_sec", "browsing_sessions", "weekend_sessions", "units",
        "unit_orders"]
MINIMA = ["first_seen", "first_purchase"]
MAXIMA = ["last_session", "last_purchase", "max_order"]
VISITS = "visits::"  # prefix of the per-category visit counts (`unknown` is not a category)
POOLED = "visits_pooled"  # visits of the categories beyond the top K (outside the `visits::` namespace)
MAX_CATEGORIES = 20  # default K: categories with their own visit column (EcomSettings.max_category_columns)
# the readable aggregates `finish` derives (what customer_features takes from the history)
LIFETIME_COLUMNS = ["n_sessions", "n_purchases", "revenue", "max_order", "browsing_mean_sec", "weekend_share",
                    "gap_mean_days", "gap_std_days", "distinct_categories", "favourite_category_share",
                    "favourite_category", "category_entropy", "n_units", "spend_per_unit"]
MAX_WIDE_CATEGORIES = 64  # up to this many categories the visits are counted in the main group-by

_d = pl.col("session_date")
_buy = pl.col("purchase_made")
_amount = pl.col("purchase_amount")


def lifetime_inputs(sessions: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """The LIFETIME_INPUTS columns of `sessions`; `units_purchased` null where it is absent (sessions
    stored before the column existed, frames built by hand)."""
    s = sessions.lazy()
    if "units_purchased" not in s.collect_schema().names():
        s = s.with_columns(units_purchased=pl.lit(None, pl.Float64))
    return s.select(LIFETIME_INPUTS)


def visit_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The `visits::<category>` columns of a state frame, sorted (so by category)."""
    return sorted(c for c in frame.collect_schema().names() if c.startswith(VISITS))


def category_totals(sessions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """category, visits over the sessions given (`unknown` excluded): one pass over one column."""
    known = pl.col("product_viewed") != UNKNOWN_PRODUCT
    return (sessions.lazy().filter(known).group_by("product_viewed").agg(visits=pl.len())
            .rename({"product_viewed": "category"}).collect())


def top_categories(totals: pl.DataFrame, k: int) -> list[str]:
    """The `k` most visited categories of `category_totals` (ties: alphabetical), sorted by name."""
    return sorted(totals.sort(["visits", "category"], descending=[True, False]).head(k)["category"].to_list())


def lifetime_state(sessions: pl.LazyFrame | pl.DataFrame, max_wide: int = MAX_WIDE_CATEGORIES,
                   max_categories: int = MAX_CATEGORIES, kept: list[str] | None = None) -> pl.LazyFrame:
    """The mergeable state per customer over every session given: one group-by, with the visits per
    kept category (`kept`, else the top `max_categories`) as conditional counts in it (3x faster than
    grouping by customer and category) up to `max_wide` categories and a (customer, category) group-by
    pivoted to columns beyond, the other categories' visits in `visits_pooled`; plus one pass over the
    purchases for the gap chain."""
    s = lifetime_inputs(sessions)
    known = pl.col("product_viewed") != UNKNOWN_PRODUCT
    totals = category_totals(s)
    categories = top_categories(totals, max_categories) if kept is None else sorted(kept)
    pooled = set(totals["category"]) - set(categories)
    wide = len(categories) <= max_wide
    state = s.group_by("customer_id").agg(
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
        units=pl.col("units_purchased").filter(_buy).sum().cast(pl.Float64),
        unit_orders=pl.col("units_purchased").filter(_buy).count().cast(pl.Float64),
        *[(pl.col("product_viewed") == category).sum().cast(pl.UInt32).alias(VISITS + category)
          for category in (categories if wide else [])],
        # nothing to pool (the usual few categories): a constant, no per-row membership test
        **{POOLED: (known & ~pl.col("product_viewed").is_in(categories)).sum().cast(pl.UInt32) if pooled
           else pl.lit(0, pl.UInt32)},
    )
    if not wide:
        visits = (s.filter(pl.col("product_viewed").is_in(categories)).group_by("customer_id", "product_viewed").agg(n=pl.len().cast(pl.UInt32)).collect()
                  .pivot(on="product_viewed", index="customer_id", values="n"))
        visits = visits.rename({c: VISITS + c for c in visits.columns if c != "customer_id"})
        state = state.join(visits.lazy(), on="customer_id", how="left").with_columns(pl.col(f"^{VISITS}.*$").fill_null(0))
    state = (state.join(purchase_chain(s.filter(_buy)), on="customer_id", how="left")
             .with_columns(pl.col("purchase_days", "gap_sq_sum").fill_null(0.0)))
    return state.select(*STATE_COLUMNS, POOLED, *[VISITS + c for c in categories])


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
    state = state.lazy()
    columns = visit_columns(state)
    gaps = pl.col("purchase_days") - 1
    gap_mean = (pl.col("last_purchase") - pl.col("first_purchase")).dt.total_days().cast(pl.Float64) / gaps
    # sample std of the gaps from their sum of squares: (sum g^2 - k mean^2) / (k - 1), clipped at 0
    # against rounding; the sum of the gaps is last - first, an exact integer
    gap_var = (pl.col("gap_sq_sum") - gaps * gap_mean**2) / (gaps - 1)
    all_counted = (pl.col("n_purchases") > 0) & (pl.col("unit_orders") == pl.col("n_purchases"))
    derived = [
        pl.when(pl.col("browsing_sessions") > 0).then(pl.col("browsing_total_sec") / pl.col("browsing_sessions"))
        .alias("browsing_mean_sec"),
        (pl.col("weekend_sessions") / pl.col("n_sessions")).alias("weekend_share"),
        pl.when(gaps >= 1).then(gap_mean).alias("gap_mean_days"),
        pl.when(gaps >= 2).then(gap_var.clip(lower_bound=0.0).sqrt()).alias("gap_std_days"),
        # items bought, only where every purchase says how many (orders do, sessions and events do not): a
        # wholesaler's bulk buyers return more often than their order count and spend alone tell
        pl.when(all_counted).then(pl.col("units")).alias("n_units"),
        pl.when(all_counted & (pl.col("units") > 0)).then(pl.col("revenue") / pl.col("units")).alias("spend_per_unit"),
    ]
    if not columns:  # no category at all (so nothing pooled either)
        return state.with_columns(*derived, distinct_categories=pl.lit(0.0), favourite_category_share=pl.lit(None, pl.Float64),
                                  favourite_category=pl.lit(None, pl.String), category_entropy=pl.lit(None, pl.Float64))
    n = [pl.col(c).cast(pl.Float64) for c in columns]
    counted = [*n, pl.col(POOLED).cast(pl.Float64)]  # the pooled rest counts as one category
    total = pl.sum_horizontal(counted)
    top = pl.max_horizontal(n)
    seen = total > 0  # customers who only viewed `unknown` get nulls
    entropy = -pl.sum_horizontal([pl.when(c > 0).then((c / total) * (c / total).log()).otherwise(0.0) for c in counted])
    return state.with_columns(
        *derived,
        distinct_categories=pl.sum_horizontal([(c > 0) for c in counted]).cast(pl.Float64),
        favourite_category_share=pl.when(seen).then(top / total),
        # the columns are sorted by category, so the first maximum is the alphabetically first favourite
        favourite_category=pl.coalesce([pl.when((top > 0) & (c == top)).then(pl.lit(name.removeprefix(VISITS)))
                                        for c, name in zip(n, columns)]),
        category_entropy=pl.when(seen).then(entropy),
    )


def lifetime_aggregates(sessions: pl.LazyFrame | pl.DataFrame, max_wide: int = MAX_WIDE_CATEGORIES,
                        max_categories: int = MAX_CATEGORIES) -> pl.LazyFrame:
    """State and readable aggregates per customer over every session given (`customer_history`)."""
    return finish(lifetime_state(sessions, max_wide, max_categories))


def late_customers(previous: pl.DataFrame, drop: pl.DataFrame) -> pl.Series:
    """Customers with a purchase in `drop` dated before their stored last purchase: it splits a gap,
    so their chain cannot be extended and they are recomputed from their sessions."""
    return (
        drop.filter(_buy).select("customer_id", "session_date")
        .join(previous.select("customer_id", "last_purchase"), on="customer_id")
        .filter(_d < pl.col("last_purchase"))["customer_id"].unique()
    )


def _zero_visits(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`frame` with a 0 count for every visit column in `columns` it lacks (a category it never saw)."""
    return frame.with_columns(pl.lit(0, dtype=pl.UInt32).alias(c) for c in columns if c not in frame.columns)


def _with_visits(state: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The state columns of `state` with every visit column in `columns`, in that order."""
    return _zero_visits(state, columns).select(*STATE_COLUMNS, POOLED, *columns)


def merge_drop(previous: pl.DataFrame, drop: pl.DataFrame, added: pl.DataFrame, visits: list[str]) -> pl.DataFrame:
    """The state of every customer in `drop` (new sessions only, none dated before the customer's
    last purchase; `added` is its `lifetime_state`) combined with its stored state, with the visit
    columns `visits`."""
    added = _with_visits(added, visits)
    before = _with_visits(previous.join(added.select("customer_id"), on="customer_id", how="semi"), visits)
    # the gap chain continues from the stored last purchase: chain it in front of the drop's dates
    chain = purchase_chain(pl.concat([
        before.filter(pl.col("last_purchase").is_not_null()).select("customer_id", session_date="last_purchase"),
        drop.filter(_buy).select("customer_id", "session_date"),
    ])).collect()
    return (
        added.join(before, on="customer_id", how="left", suffix="_before")
        .join(chain.rename({"purchase_days": "chain_days", "gap_sq_sum": "chain_sq"}), on="customer_id", how="left")
        .with_columns(
            *[(pl.col(c) + pl.col(f"{c}_before").fill_null(0)).alias(c) for c in [*SUMS, POOLED, *visits]],
            *[pl.min_horizontal(c, f"{c}_before").alias(c) for c in MINIMA],
            *[pl.max_horizontal(c, f"{c}_before").alias(c) for c in MAXIMA],
            # the stored last purchase is the chain's first date and already counted in the stored days
            purchase_days=pl.col("purchase_days_before").fill_null(0) + pl.col("chain_days").fill_null(0)
            - pl.col("last_purchase_before").is_not_null().cast(pl.Float64),
            gap_sq_sum=pl.col("gap_sq_sum_before").fill_null(0) + pl.col("chain_sq").fill_null(0),
        )
        .select(*STATE_COLUMNS, POOLED, *visits)
    )


def kept_after_drop(previous: pl.DataFrame, drop: pl.DataFrame, all_sessions: pl.LazyFrame,
                    max_categories: int) -> list[str] | None:
    """The categories with a visit column after `drop`, or None if they are no longer the stored ones plus
    the drop's new ones (a full recompute is needed: pooled visits cannot be split again). While
    nothing is pooled and the categories fit in `max_categories`, no session is read; otherwise the
    visit totals are counted over `all_sessions` (one column)."""
    stored = [c.removeprefix(VISITS) for c in visit_columns(previous)]
    seen = set(stored) | set(drop.filter(pl.col("product_viewed") != UNKNOWN_PRODUCT)["product_viewed"].unique())
    if len(seen) <= max_categories and not previous[POOLED].sum():
        return sorted(seen)
    kept = top_categories(category_totals(all_sessions.select("product_viewed")), max_categories)
    # a stored column cannot be pooled back, nor (once something is pooled) a pooled category split out
    # again; with nothing pooled yet, every category beyond the stored ones is new in this drop
    grows = set(stored) <= set(kept) and (not previous[POOLED].sum() or set(kept) == set(stored))
    return kept if grows else None


def update_with_drop(previous: pl.DataFrame, drop: pl.DataFrame, all_sessions: pl.LazyFrame,
                     max_categories: int = MAX_CATEGORIES) -> tuple[pl.DataFrame, int, int] | None:
    """(history after `drop`, customers merged, customers recomputed), or None when the drop changes
    which categories are kept (see `kept_after_drop`): then recompute from scratch. `all_sessions` (the
    stored sessions including the drop's) is read only for customers with a late purchase and for the
    category totals once categories are pooled. Only the changed customers are finished again; the
    others keep their stored row (a category new to the table is a zero count for them, which changes
    none of their aggregates)."""
    kept = kept_after_drop(previous, drop, all_sessions, max_categories)
    if kept is None:
        return None
    added = lifetime_state(drop, kept=kept).collect()
    visits = [VISITS + c for c in kept]
    changed = merge_drop(previous, drop, added, visits)
    late = late_customers(previous, drop)
    if late.len():  # their gap chain is split: recompute them from every session they have
        # is_in inside the scan: filtered in the parquet reader, other columns decoded only where it matches
        sessions = lifetime_inputs(all_sessions).filter(pl.col("customer_id").is_in(late.implode()))
        recomputed = _with_visits(lifetime_state(sessions, kept=kept).collect(), visits)
        changed = pl.concat([changed.join(recomputed, on="customer_id", how="anti"), recomputed])
    finished = finish(changed).collect()
    kept = _zero_visits(previous.join(changed, on="customer_id", how="anti", maintain_order="left"), visits)
    # both halves sorted by id: one linear merge instead of sorting the whole table again
    table = sorted_by_id(kept.select(finished.columns)).merge_sorted(sorted_by_id(finished), key="customer_id")
    return table, changed.height - late.len(), late.len()
