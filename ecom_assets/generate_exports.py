"""The generator's two other export shapes: order lines and event streams, from the same simulated
history as the sessions export (`ecom-assets generate --shape orders|events`).

Both are vectorised numpy/polars conversions of the session frame `generate.simulate` writes, with
their own planted truth (returned beside the frame, merged into truth.json):

* events: each session becomes views (1 + Poisson(browsing time / 90 s)) spread over its browsing
  time, a cart event when it carted, a purchase event (price = the session's amount) when it bought;
  the start hour carries a planted hour-of-day effect on conversion (`HOUR_CONVERSION`), assigned by
  Bayes' rule so the session table itself is unchanged; one planted *leaky product*
  (`LEAKY_PRODUCT`): viewed and carted often, never bought. A few rows are logged twice and a few
  events are of a type the contract does not know (`login`).
* orders: each purchasing session becomes an order of 1-3 lines whose largest line is in the
  session's category; some orders are cancelled later by a `C`-prefixed invoice with negative
  quantities (UCI Online Retail style); lines keep the session's defects (no customer id,
  duplicated lines).
"""

from __future__ import annotations

import numpy as np
import polars as pl

PRODUCTS_PER_CATEGORY = 8
LEAKY_PRODUCT = "Smartphone-03"
# traffic by hour of day (UTC) and the planted conversion multiplier per hour
HOUR_TRAFFIC = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 4, 4, 4.5, 4.5, 4, 4, 4.5, 5, 6, 7, 7, 6, 4, 2.5])
HOUR_CONVERSION = np.where(np.isin(np.arange(24), [19, 20, 21, 22]), 1.6, np.where(np.arange(24) < 6, 0.5, 1.0))
EXTRA_EVENT = "login"  # an event type outside the contract: kept as `other`
EVENT_COLUMNS = ["event_time", "event_type", "product_id", "category", "brand", "price", "customer_id", "session_id"]
ORDER_COLUMNS = ["order_id", "customer_id", "order_time", "product_id", "product_name", "category", "quantity",
                 "unit_price"]


def session_starts(sessions: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Start instant (numpy datetime64[s]) per session: its date plus an hour drawn so that the
    conversion at hour h is proportional to HOUR_CONVERSION[h] (P(h | bought) = w_h c_h / c)."""
    bought = sessions["purchase_made"].cast(pl.Boolean).to_numpy()
    w = HOUR_TRAFFIC / HOUR_TRAFFIC.sum()
    c = bought.mean() if bought.size else 0.0
    c_h = np.clip(c * HOUR_CONVERSION / (w * HOUR_CONVERSION).sum(), 0, 1)
    hour = np.empty(bought.size, np.int64)
    for mask, p in ((bought, w * c_h), (~bought, w * (1 - c_h))):
        if mask.any():
            hour[mask] = _draw(rng, p / p.sum(), int(mask.sum()))
    seconds = hour * 3600 + rng.integers(0, 3600, bought.size)
    days = sessions["session_date"].cast(pl.Date).to_numpy().astype("datetime64[s]")
    return (days + seconds.astype("timedelta64[s]")).astype("datetime64[ms]")


def _draw(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(n)), p.size - 1)


def _products(category: np.ndarray, pick: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add(category.astype(str), "-"), np.char.zfill(pick.astype(str), 2))


def _iso(instants: np.ndarray) -> pl.Series:
    return pl.Series(instants).dt.replace_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def to_events(sessions: pl.DataFrame, rng: np.random.Generator, duplicate_rate: float = 0.003,
              other_rate: float = 0.02) -> tuple[pl.DataFrame, dict]:
    """Session export -> (event export, truth). Sessions of unknown category view `unknown-*` products."""
    sessions = sessions.unique(maintain_order=True)  # a duplicated session row would get different events
    n = sessions.height
    start = session_starts(sessions, rng)
    browsing = sessions["browsing_time_sec"].fill_null(60).to_numpy().astype(np.int64)
    category = sessions["product_viewed"].replace("", "Unknown").to_numpy().astype(str)
    bought = sessions["purchase_made"].cast(pl.Boolean).to_numpy()
    carted = sessions["added_to_cart"].cast(pl.Boolean).fill_null(False).to_numpy() | bought
    views = 1 + np.minimum(rng.poisson(browsing / 90), 29)
    owner = np.repeat(np.arange(n), views)
    first = np.r_[0, np.cumsum(views)[:-1]]
    is_first = np.zeros(owner.size, bool)
    is_first[first] = True
    # views in order, at distinct seconds: a real double-logged row is then the only identical pair
    position = np.arange(owner.size) - first[owner]
    step = np.maximum(browsing[owner] * 4 // (5 * views[owner]), 1)
    offset = np.where(is_first, 0, position * step + (rng.random(owner.size) * step).astype(np.int64))
    # product choice: Zipf-like within the category; the first view is never the leaky product
    weights = 1 / np.arange(1, PRODUCTS_PER_CATEGORY + 1)
    pick = _draw(rng, weights / weights.sum(), owner.size) + 1
    view_product = _products(category[owner], pick)
    leaky_category, leaky_number = LEAKY_PRODUCT.rsplit("-", 1)
    is_leaky_cat = category[owner] == leaky_category
    # the leaky product draws a third of its category's later views
    to_leaky = is_leaky_cat & ~is_first & (rng.random(owner.size) < 0.33)
    view_product = np.where(to_leaky, LEAKY_PRODUCT, view_product)
    view_product = np.where(is_first & (view_product == LEAKY_PRODUCT), f"{leaky_category}-01", view_product)
    first_product = view_product[first]
    saw_leaky = np.zeros(n, bool)
    saw_leaky[owner[view_product == LEAKY_PRODUCT]] = True
    # a non-buying carted session carts the leaky product when it saw it; buyers cart what they buy
    cart_product = np.where(~bought & saw_leaky, LEAKY_PRODUCT, first_product)
    prices = _category_prices()
    base_price = np.array([prices.get(c, 50.0) for c in category])
    amount = sessions["purchase_amount"].to_numpy()
    parts = [
        (owner, offset, np.full(owner.size, "view"), view_product, base_price[owner]),
        (np.flatnonzero(carted), (browsing[carted] * 0.85).astype(np.int64), np.full(int(carted.sum()), "cart"),
         cart_product[carted], base_price[carted]),
        (np.flatnonzero(bought), browsing[bought], np.full(int(bought.sum()), "purchase"), first_product[bought],
         amount[bought]),
    ]
    extra = np.flatnonzero(rng.random(n) < other_rate)
    parts.append((extra, np.zeros(extra.size, np.int64), np.full(extra.size, EXTRA_EVENT), np.full(extra.size, ""),
                  np.full(extra.size, np.nan)))
    rows = np.concatenate([p[0] for p in parts])
    frame = pl.DataFrame({
        "_row": rows,
        "_at": start[rows] + np.concatenate([p[1] for p in parts]).astype("timedelta64[s]"),
        "event_type": np.concatenate([p[2] for p in parts]),
        "product_id": np.concatenate([p[3] for p in parts]),
        "price": np.round(np.concatenate([p[4] for p in parts]).astype(float), 2),
    }).with_columns(
        customer_id=pl.Series(sessions["customer_id"].to_numpy()[rows]),
        session_id=pl.Series(sessions["session_id"].to_numpy()[rows]),
        category=pl.Series(category[rows]),
        brand=pl.lit("acme"),
    ).with_columns(
        product_id=pl.when(pl.col("product_id") == "").then(None).otherwise("product_id"),
        category=pl.when(pl.col("event_type") == EXTRA_EVENT).then(None).otherwise("category"),
        price=pl.col("price").fill_nan(None),
    ).sort("_at", "_row", "event_type")
    duplicated = rng.random(frame.height) < duplicate_rate
    frame = pl.concat([frame, frame.filter(pl.Series(duplicated))]).sort("_at", "_row", "event_type", maintain_order=True)
    frame = frame.with_columns(event_time=_iso(frame["_at"].to_numpy())).select(EVENT_COLUMNS)
    truth = {
        "leaky_product": LEAKY_PRODUCT,
        "hour_conversion_multiplier": HOUR_CONVERSION.tolist(),
        "peak_conversion_hours": [int(h) for h in np.flatnonzero(HOUR_CONVERSION == HOUR_CONVERSION.max())],
        "events_written": frame.height,
        "double_logged_rows": int(duplicated.sum()),
        "other_events": int(extra.size),
        "sessions": n,
    }
    return frame, truth


def _category_prices() -> dict[str, float]:
    from ecom_assets.generate import CATEGORIES

    return {c: v[2] for c, v in CATEGORIES.items()}


def to_orders(sessions: pl.DataFrame, rng: np.random.Generator, cancel_rate: float = 0.03,
              duplicate_rate: float = 0.002) -> tuple[pl.DataFrame, dict]:
    """Session export -> (order-line export, truth): every purchasing session is one order whose
    largest line is in the session's category; `cancel_rate` of the orders are cancelled by a later
    `C<order id>` invoice with negative quantities."""
    sessions = sessions.unique(maintain_order=True).filter(pl.col("purchase_made").cast(pl.Boolean))
    n = sessions.height
    start = session_starts(sessions.with_columns(purchase_made=pl.lit(0)), rng)  # traffic hours only
    amount = sessions["purchase_amount"].to_numpy()
    category = sessions["product_viewed"].replace("", "Unknown").to_numpy().astype(str)
    lines = 1 + rng.binomial(2, 0.3, n)
    owner = np.repeat(np.arange(n), lines)
    first = np.r_[0, np.cumsum(lines)[:-1]]
    position = np.arange(owner.size) - first[owner]
    # shares: the first line holds 55-80 %, the rest split the remainder
    head = rng.uniform(0.55, 0.8, n)
    share = np.where(position == 0, head[owner], (1 - head[owner]) / np.maximum(lines[owner] - 1, 1))
    quantity = np.where(rng.random(owner.size) < 0.25, 2, 1)
    unit_price = np.round(amount[owner] * share / quantity, 2)
    cats = np.array(list(_category_prices()))
    other_category = cats[rng.integers(0, cats.size, owner.size)]
    line_category = np.where(position == 0, category[owner], other_category)
    # the extra lines of an order are different products (equal shares would otherwise make twin lines)
    product = _products(line_category, np.where(position == 0, rng.integers(1, PRODUCTS_PER_CATEGORY + 1, owner.size),
                                                position + 1))
    frame = pl.DataFrame({
        "order_id": "ORD" + pl.Series(sessions["session_id"].to_numpy()[owner]).str.replace("^SESS", ""),
        "customer_id": sessions["customer_id"].to_numpy()[owner],
        "_at": start[owner],
        "product_id": product,
        "product_name": np.char.add("Item ", product),
        "category": line_category,
        "quantity": quantity,
        "unit_price": unit_price,
    })
    cancelled = rng.random(n) < cancel_rate
    cancel = frame.filter(pl.Series(cancelled[owner])).with_columns(
        order_id="C" + pl.col("order_id"), quantity=-pl.col("quantity"),
        _at=pl.col("_at") + pl.duration(days=3))
    duplicated = rng.random(frame.height) < duplicate_rate
    out = pl.concat([frame, frame.filter(pl.Series(duplicated)), cancel]).sort("_at", "order_id", maintain_order=True)
    out = out.with_columns(order_time=pl.col("_at").dt.strftime("%Y-%m-%d %H:%M:%S")).select(ORDER_COLUMNS)
    with_customer = frame.filter(pl.col("customer_id") != "")
    truth = {
        "orders": int(with_customer["order_id"].n_unique()),
        "order_revenue": round(float((with_customer["quantity"] * with_customer["unit_price"]).sum()), 2),
        "cancelled_orders": int(cancelled.sum()),
        "cancelled_amount": round(float((cancel.filter(pl.col("customer_id") != "")["quantity"].abs()
                                         * cancel.filter(pl.col("customer_id") != "")["unit_price"]).sum()), 2),
        "lines_without_customer": int((out["customer_id"] == "").sum()),
        "duplicated_lines": int(duplicated.sum()),
        "lines_written": out.height,
    }
    return out, truth
