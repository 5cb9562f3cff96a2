"""product_funnel on a real store's quirks: most purchasing sessions have no cart event (a purchase log
joined to a partial click stream), a category the product could not read (`unknown`), and an export
without the optional added_to_cart column."""

import polars as pl

from ecom_assets.insights.analyses import product_funnel


def sessions(rows: list[tuple[str, bool | None, bool, int]]) -> pl.DataFrame:
    """(category, added_to_cart, purchase_made, how many sessions)"""
    out = [(c, cart, buy, 10.0 if buy else 0.0) for c, cart, buy, n in rows for _ in range(n)]
    return pl.DataFrame(out, schema={"product_viewed": pl.String, "added_to_cart": pl.Boolean,
                                     "purchase_made": pl.Boolean, "purchase_amount": pl.Float64}, orient="row")


RATES = ["conversion", "view_to_cart", "cart_to_purchase"]


def test_rates_are_shares_of_the_same_sessions_with_purchases_without_carts() -> None:
    frame = sessions([
        ("Books", True, True, 5), ("Books", False, True, 30), ("Books", True, False, 1), ("Books", False, False, 64),
        ("Toys", True, True, 2), ("Toys", True, False, 8), ("Toys", False, False, 290),
        ("unknown", False, True, 3), ("unknown", False, False, 900),  # the leakiest-looking, but not a category
        ("Garden", None, True, 4), ("Garden", None, False, 46),  # cart flag missing in this export's rows
    ])
    funnel = product_funnel(frame)
    books = funnel.filter(pl.col("category") == "Books").row(0, named=True)
    assert books["purchases"] == 35 and books["purchases_without_cart"] == 30 and books["purchases_after_cart"] == 5
    assert books["cart_to_purchase"] == 5 / 6  # among the 6 sessions with a cart, not 35 / 6
    assert books["view_to_cart"] == 6 / 100 and books["conversion"] == 35 / 100
    for rate in RATES:
        values = funnel.select(rate, f"{rate}_low", f"{rate}_high").drop_nulls()
        assert values.select(pl.all().is_between(0, 1).all()).row(0) == (True, True, True), rate
        assert (values[f"{rate}_low"] <= values[rate]).all() and (values[rate] <= values[f"{rate}_high"]).all()
    garden = funnel.filter(pl.col("category") == "Garden").row(0, named=True)
    assert garden["view_to_cart"] is None and garden["cart_to_purchase"] is None  # nothing to divide by
    unknown = funnel.filter(pl.col("category") == "unknown").row(0, named=True)
    assert unknown["leakage_rank"] is None and not unknown["leaking"]
    assert funnel["leakage_rank"][0] == 1 and funnel["category"][0] == "Toys"


def test_an_export_without_cart_events_has_no_cart_rates() -> None:
    frame = sessions([("Books", None, True, 5), ("Books", None, False, 20), ("Toys", None, False, 10)])
    funnel = product_funnel(frame)
    assert funnel["carts"].null_count() == funnel.height and funnel["cart_to_purchase"].null_count() == funnel.height
    assert funnel["conversion"].is_between(0, 1).all()
