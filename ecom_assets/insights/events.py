"""What event streams and order lines add: funnels per category and item, co-viewed and
co-purchased pairs, conversion by hour of day and day of week.

Pure polars functions first, then their thin assets (group `insights`). Every rate is a share of
the same sessions (a session that purchased without a cart event counts as viewed-and-purchased,
never as carted), with a 95 % Wilson interval (Wilson 1927, via `insights.stats.wilson`).
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_DAILY
from ecom_assets.insights.analyses import _rate
from ecom_assets.io import columns_in
from ecom_assets.metadata import NO_DATA, column_schema, empty_table, md_table
from ecom_assets.schemas import UNKNOWN_PRODUCT

MIN_ITEM_SESSIONS = 20  # item_funnel: products viewed in fewer sessions say nothing reliable
MIN_PAIR_BASKETS = 5  # pairs: items in fewer baskets (sessions, orders) are left out
FUNNEL_EVENT_COLUMNS = ["session_id", "event_type", "product_id", "category"]
RATES = {  # rate -> (numerator, denominator), both session counts
    "view_to_cart": ("viewed_and_carted", "sessions_viewed"),
    "view_to_purchase": ("viewed_and_purchased", "sessions_viewed"),
    "cart_to_purchase": ("carted_and_purchased", "sessions_carted"),
    "cart_abandonment": ("carted_not_purchased", "sessions_carted"),
}
FUNNEL_COLUMNS = {
    "sessions_viewed": "int - sessions with a view event of it",
    "sessions_carted": "int - sessions with a cart event of it",
    "sessions_purchased": "int - sessions with a purchase event of it",
    "viewed_and_carted": "int", "viewed_and_purchased": "int", "carted_and_purchased": "int",
    "carted_not_purchased": "int",
    **{f"{rate}{end}": f"float64 - {num} / {den}" + (" (95 % Wilson bound)" if end else "")
       for rate, (num, den) in RATES.items() for end in ("", "_low", "_high")},
}


def event_funnel(events: pl.LazyFrame | pl.DataFrame, level: str, min_sessions: int = 0) -> pl.DataFrame:
    """Clean events -> one row per `level` value (`category`, or `product_id`) with the sessions that
    viewed / carted / purchased it and the rates between them.

    Events without a category count under 'unknown'; events without a product are left out of the
    item level. `min_sessions`: keep values viewed in at least this many sessions."""
    key = pl.col(level).fill_null(UNKNOWN_PRODUCT) if level == "category" else pl.col(level)
    per_session = (
        events.lazy().select("session_id", key.alias(level), "event_type").drop_nulls(level)
        .group_by(level, "session_id")
        .agg(viewed=(pl.col("event_type") == "view").any(), carted=(pl.col("event_type") == "cart").any(),
             purchased=(pl.col("event_type") == "purchase").any())
    )
    funnel = per_session.group_by(level).agg(
        sessions_viewed=pl.col("viewed").sum(), sessions_carted=pl.col("carted").sum(),
        sessions_purchased=pl.col("purchased").sum(),
        viewed_and_carted=(pl.col("viewed") & pl.col("carted")).sum(),
        viewed_and_purchased=(pl.col("viewed") & pl.col("purchased")).sum(),
        carted_and_purchased=(pl.col("carted") & pl.col("purchased")).sum(),
        carted_not_purchased=(pl.col("carted") & ~pl.col("purchased")).sum(),
    ).filter(pl.col("sessions_viewed") >= min_sessions).collect()
    funnel = funnel.with_columns(pl.exclude(level).cast(pl.Int64))
    return with_rates(funnel, RATES).sort("sessions_viewed", level, descending=[True, False])


def with_rates(frame: pl.DataFrame, rates: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """Each rate = numerator / denominator with its 95 % Wilson interval (`_low`, `_high`; null where the
    denominator is 0), by product_funnel's own rule (analyses._rate)."""
    return frame.with_columns(expr for rate, (num, den) in rates.items() for expr in _rate(rate, pl.col(num), pl.col(den)))


def pairs_within(baskets: pl.LazyFrame | pl.DataFrame, basket: str, item: str,
                 min_baskets: int = MIN_PAIR_BASKETS) -> pl.DataFrame:
    """Items that occur in the same basket (a session's views, an order's lines): one row per pair
    `item_a < item_b` with `baskets_together`, each item's baskets, all baskets and the lift
    (together x baskets / (a x b); 1 = as often as independent items would be).

    Items in fewer than `min_baskets` baskets are left out first, which bounds the self-join."""
    items = baskets.lazy().select(basket, pl.col(item).alias("item")).drop_nulls().unique().collect()
    total = items[basket].n_unique()
    counts = items.group_by("item").agg(baskets=pl.len().cast(pl.Int64)).filter(pl.col("baskets") >= min_baskets)
    items = items.join(counts.select("item"), on="item", how="semi")
    pairs = (
        items.join(items, on=basket, suffix="_b").filter(pl.col("item") < pl.col("item_b"))
        .group_by("item", "item_b").agg(baskets_together=pl.len().cast(pl.Int64))
        .rename({"item": "item_a"})
    )
    return (
        pairs.join(counts.rename({"item": "item_a", "baskets": "baskets_a"}), on="item_a")
        .join(counts.rename({"item": "item_b", "baskets": "baskets_b"}), on="item_b")
        .with_columns(baskets=pl.lit(total, pl.Int64))
        .with_columns(lift=pl.col("baskets_together") * pl.col("baskets") / (pl.col("baskets_a") * pl.col("baskets_b")))
        .sort("baskets_together", "item_a", "item_b", descending=[True, False, False])
    )


PAIR_COLUMNS = {
    "relation": "string - co_viewed (same session) | co_purchased (same order / purchasing session)",
    "level": "string - category | product", "item_a": "string", "item_b": "string",
    "baskets_together": "int - sessions / orders holding both", "baskets_a": "int", "baskets_b": "int",
    "baskets": "int - all sessions / orders of this relation", "lift": "float64 - observed / independent",
}


def co_occurrence(events: pl.DataFrame, lines: pl.DataFrame, min_baskets: int = MIN_PAIR_BASKETS) -> pl.DataFrame:
    """Co-viewed pairs (views within a session) beside co-purchased pairs (lines within an order, and
    purchase events within a session), at category and product level."""
    category = pl.col("category").fill_null(UNKNOWN_PRODUCT)
    viewed = events.filter(pl.col("event_type") == "view")
    bought = pl.concat([
        lines.select(basket=pl.lit("order:") + pl.col("order_id"), category=category, product_id="product_id"),
        events.filter(pl.col("event_type") == "purchase")
        .select(basket=pl.lit("session:") + pl.col("session_id"), category=category, product_id="product_id"),
    ])
    parts = []
    for relation, frame, basket in (("co_viewed", viewed.with_columns(category), "session_id"),
                                    ("co_purchased", bought, "basket")):
        for level, column in (("category", "category"), ("product", "product_id")):
            parts.append(pairs_within(frame, basket, column, min_baskets)
                         .with_columns(relation=pl.lit(relation), level=pl.lit(level)))
    return pl.concat(parts).select(list(PAIR_COLUMNS))


HOURLY_SESSION_COLUMNS = ["session_start", "browsing_time_sec"]  # plus purchase_made (in the daily columns)


def conversion_by_time(sessions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Conversion (purchasing sessions / sessions, Wilson 95 %) by hour of day (UTC) and by day of
    week (1 = Monday), over sessions that record browsing and a start time. Sessions made from
    orders are purchases by construction (no browsing recorded) and would fake 100 % conversion,
    so they are left out; without such sessions the table is empty."""
    browsing = sessions.lazy().filter(pl.col("session_start").is_not_null() & pl.col("browsing_time_sec").is_not_null())
    parts = []
    for grain, expr in (("hour_of_day", pl.col("session_start").dt.hour()),
                        ("day_of_week", pl.col("session_start").dt.weekday())):
        parts.append(browsing.group_by(expr.cast(pl.Int64).alias("level"))
                     .agg(sessions=pl.len().cast(pl.Int64), purchases=pl.col("purchase_made").sum().cast(pl.Int64))
                     .with_columns(grain=pl.lit(grain)))
    table = pl.concat(parts).collect().sort("grain", "level")
    return with_rates(table, {"conversion": ("purchases", "sessions")}).rename(
        {"conversion_low": "low", "conversion_high": "high"})


# --- assets -----------------------------------------------------------------------------------
def _funnel_asset(name: str, level: str, min_sessions: int, what: str):
    @dg.asset(
        name=name, group_name="insights", owners=["team:analytics"], kinds={"polars"}, tags=REFRESH_DAILY,
        ins={"clean_events": columns_in(FUNNEL_EVENT_COLUMNS)},
        description=f"View -> cart -> purchase per {what} from clean_events: the sessions that had a view, cart or "
        "purchase event of it, and the rates between them as shares of the same sessions with 95 % Wilson "
        "intervals; cart_abandonment = carted sessions without a purchase of it. Empty (and says so) until an "
        "events drop arrives.",
        metadata=column_schema({level: "string", **FUNNEL_COLUMNS}),
    )
    def funnel_asset(clean_events: pl.LazyFrame) -> dg.Output:
        if not clean_events.collect_schema().names() or clean_events.select(pl.len()).collect().item() == 0:
            return dg.Output(empty_table({level: "string", **FUNNEL_COLUMNS}),
                             metadata={"state": f"{NO_DATA}: no events (drop events*.csv)", "dagster/row_count": 0})
        funnel = event_funnel(clean_events, level, min_sessions)
        shown = [level, "sessions_viewed", "sessions_carted", "sessions_purchased", "view_to_purchase",
                 "cart_abandonment"]
        return dg.Output(funnel, metadata={
            "dagster/row_count": funnel.height,
            "min_sessions_viewed": min_sessions,
            "funnel": dg.MetadataValue.md(md_table(funnel.select(shown))),
        })

    return funnel_asset


category_funnel = _funnel_asset("category_funnel", "category", 0, "category (events without one: 'unknown')")
item_funnel = _funnel_asset("item_funnel", "product_id", MIN_ITEM_SESSIONS,
                            f"product viewed in at least {MIN_ITEM_SESSIONS} sessions")


@dg.asset(
    group_name="insights", owners=["team:marketing"], kinds={"polars"}, tags=REFRESH_DAILY,
    ins={"clean_events": columns_in(["session_id", "event_type", "product_id", "category"]),
         "clean_order_lines": columns_in(["order_id", "product_id", "category"])},
    description="Real baskets: categories and products viewed in the same session (co_viewed) beside those bought "
    f"in the same order or purchasing session (co_purchased), with lift; items in fewer than {MIN_PAIR_BASKETS} "
    "baskets are left out. Empty until an events or orders drop arrives.",
    metadata=column_schema(PAIR_COLUMNS),
)
def basket_pairs(clean_events: pl.LazyFrame, clean_order_lines: pl.LazyFrame) -> dg.Output:
    events = clean_events.collect() if clean_events.collect_schema().names() else pl.DataFrame(
        schema={"session_id": pl.String, "event_type": pl.String, "product_id": pl.String, "category": pl.String})
    lines = clean_order_lines.collect() if clean_order_lines.collect_schema().names() else pl.DataFrame(
        schema={"order_id": pl.String, "product_id": pl.String, "category": pl.String})
    pairs = co_occurrence(events, lines)
    return dg.Output(pairs, metadata={
        "dagster/row_count": pairs.height,
        "strongest": dg.MetadataValue.md(md_table(pairs.filter(pl.col("level") == "category")
                                                  .sort("lift", descending=True).head(10))),
    })


EVENT_ASSETS = [category_funnel, item_funnel, basket_pairs]
