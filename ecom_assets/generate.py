"""Synthetic e-commerce exports with planted, known structure (`ecom-assets generate`).

The files have exactly the seed export's format (or, with `shape`, the same history as order lines
or events: generate_exports.py); `truth.json` and `customer_truth.parquet` say what was planted so
tests (and sceptical users) can check that the graph recovers it:

* customers visit at a latent rate `mu` (gamma heterogeneity) until a latent dropout time
  (exponential, rate `delta`); both depend on age, location and a hidden signup channel. Each
  visit is a session on one product category; it converts with the category's conversion times
  the customer's propensity (times a campaign lift inside campaign windows). The 90 days after the
  last written day are simulated too but not written: `p_no_purchase_90d` is the true probability
  of no purchase in them given the latent state at T, `churned_90d` the realised outcome.
* weekday and month multipliers on the visit intensity (Q4/December peak), campaigns that lift
  conversion by a known factor, one "leaky" category (most views, lowest conversion), 4 planted
  category pairs (a purchase in the first is followed by one in the second with probability 0.35), a top-5 % value group
  whose first 30 days differ (more sessions, bigger orders, longer browsing), seed-like defects.

Everything is vectorised numpy/polars: no Python loop runs per customer or per session.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

HORIZON_DAYS = 90
CATEGORIES = {  # name: (view weight, conversion, mean price)
    "Electronics": (0.13, 0.14, 420.0),
    "Laptop": (0.22, 0.035, 950.0),  # the leaky one: most views, fewest purchases per view
    "Smartphone": (0.12, 0.12, 620.0),
    "Clothing": (0.12, 0.22, 55.0),
    "Books": (0.10, 0.26, 22.0),
    "Home": (0.11, 0.18, 85.0),
    "Beauty": (0.10, 0.24, 35.0),
    "Sports": (0.10, 0.17, 70.0),
}
LEAKY_CATEGORY = "Laptop"
FOLLOW_UP = 0.35  # probability that a purchase in a planted pair's first category brings a second purchase
PLANTED_PAIRS = [("Books", "Home"), ("Beauty", "Clothing"), ("Smartphone", "Electronics"), ("Laptop", "Sports")]
WEEKDAY_MULTIPLIER = [0.90, 0.92, 0.95, 0.97, 1.05, 1.18, 1.03]  # Monday first
MONTH_MULTIPLIER = [0.90, 0.85, 0.92, 0.95, 0.97, 0.95, 0.93, 0.95, 1.00, 1.05, 1.30, 1.65]
LOCATIONS = ["United States", "India", "Germany", "United Kingdom", "Brazil", "Nigeria", "Japan", "Ghana"]
LOCATION_P = [0.26, 0.18, 0.12, 0.11, 0.10, 0.09, 0.08, 0.06]
LOCATION_RATE = [1.10, 0.85, 1.05, 1.05, 0.90, 0.80, 1.15, 0.80]  # visit-rate multiplier
CHANNELS = ["organic", "paid_search", "referral"]
CHANNEL_P = [0.5, 0.3, 0.2]
CHANNEL_RATE = [1.0, 0.75, 1.35]
CHANNEL_DROPOUT = [1.0, 1.5, 0.7]
SESSION_COLUMNS = [
    "session_id", "customer_id", "session_date", "product_viewed", "browsing_time_sec",
    "purchase_made", "purchase_amount", "added_to_cart",
]


@dataclass(frozen=True)
class DefectRates:
    """Defect fractions; the defaults resemble the seed export."""

    duplicate_rows: float = 0.002  # exact duplicate lines (seed: 100 of 50,100)
    empty_customer_id: float = 0.004  # sessions with an empty customer_id (seed: 200)
    unknown_product: float = 0.026  # empty or "Unknown" product_viewed (seed: 1,295 of 49,800)
    missing_gender: float = 0.017  # customers (seed: 85 of 5,000)
    missing_location: float = 0.048  # customers (seed: 238 of 5,000)
    before_signup: float = 0.02  # sessions dated before the customer's signup_date

    @classmethod
    def none(cls) -> "DefectRates":
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class Sample:
    customers: pl.DataFrame
    sessions: pl.DataFrame
    campaigns: pl.DataFrame
    customer_truth: pl.DataFrame
    truth: dict
    drift_sessions: pl.DataFrame | None = None
    timings: dict = field(default_factory=dict)


class _Progress:
    """Stage messages on stderr, only when it is a terminal."""

    def __init__(self, enabled: bool, stages: int) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.stages, self.done, self.started = stages, 0, time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        if self.enabled:
            bar = "#" * (20 * self.done // self.stages)
            print(f"\r[{bar:<20}] {self.done}/{self.stages} {label:<28} "
                  f"{time.perf_counter() - self.started:5.1f} s", end="", file=sys.stderr, flush=True)
            if self.done == self.stages:
                print(file=sys.stderr)


def _id_width(n: int, minimum: int) -> int:
    return max(minimum, len(str(max(n, 1))))


def _day_multiplier(start: date, n_days: int) -> np.ndarray:
    """Weekday x month multiplier of the visit intensity for day offsets 0..n_days-1."""
    days = np.arange(n_days)
    weekday = (start.weekday() + days) % 7
    months = np.array([(start + timedelta(days=int(d))).month for d in range(0, n_days, 1)]) - 1
    return np.asarray(WEEKDAY_MULTIPLIER)[weekday] * np.asarray(MONTH_MULTIPLIER)[months]


def _campaign_windows(rng: np.random.Generator, n_days: int) -> list[tuple[int, int, float]]:
    """3-4 non-overlapping windows (start offset, end offset inclusive, conversion lift)."""
    n = 4 if n_days >= 400 else 3
    slots = np.linspace(30, max(n_days - 40, 60), n + 1).astype(int)
    windows = []
    for k in range(n):
        length = int(rng.integers(7, 22))
        begin = int(rng.integers(slots[k], max(slots[k] + 1, slots[k + 1] - length)))
        windows.append((begin, begin + length - 1, round(float(rng.uniform(1.3, 1.8)), 2)))
    return windows


def simulate(
    customers: int = 20_000,
    days: int = 730,
    start: str = "2023-01-01",
    seed: int = 7,
    defects: DefectRates = DefectRates(),
    sessions: int | None = None,
    drift: bool = False,
    progress: bool = False,
) -> Sample:
    """Simulate `days` of history (+90 unwritten days, + a drifted drop when asked)."""
    bar = _Progress(progress, 6)
    rng = np.random.default_rng(np.random.PCG64(seed))
    t0 = date.fromisoformat(start)
    n = customers
    total_days = days + HORIZON_DAYS
    day_mult = _day_multiplier(t0, total_days)
    max_mult = float(day_mult.max())

    # --- customers and their latent state --------------------------------------------------
    age = np.clip(rng.normal(40, 13, n), 18, 80).astype(np.int64)
    gender = rng.choice(np.array(["Male", "Female", "Other"]), n, p=[0.48, 0.48, 0.04])
    loc_idx = rng.choice(len(LOCATIONS), n, p=LOCATION_P)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    signup = rng.integers(0, max(days - 14, 1), n)  # day offset
    value = rng.lognormal(0.0, 0.6, n)  # latent value: visit rate, basket size, browsing
    age_rate = 0.85 + 0.3 * (age - 18) / 62
    mu = rng.gamma(1.3, 1 / 1.3, n) * value**0.7 * np.asarray(CHANNEL_RATE)[channel]
    mu *= np.asarray(LOCATION_RATE)[loc_idx] * age_rate
    delta = rng.gamma(1.5, 1 / 1.5, n) / 260 * np.asarray(CHANNEL_DROPOUT)[channel] * (1.25 - 0.5 * (age - 18) / 62)
    propensity = np.clip(rng.beta(4, 4, n) * 2, 0.05, 3.0)
    spend = rng.lognormal(0.0, 0.25, n) * value**0.5
    browse = rng.lognormal(0.0, 0.2, n) * value**0.25
    lifetime = rng.exponential(1 / delta)
    alive_until = np.minimum(signup + lifetime, total_days)  # day offset the customer leaves
    window = np.maximum(alive_until - signup, 0)
    # scale visit rates so the written history holds about `sessions` rows
    expected = mu * day_mult.mean() * np.minimum(window, np.maximum(days - signup, 0))
    base_rate = 0.045 if sessions is None else 0.045 * sessions / max(float(expected.sum() * 0.045), 1.0)
    mu *= base_rate
    cats = list(CATEGORIES)
    n_cat = len(cats)
    view_w = np.array([v[0] for v in CATEGORIES.values()])
    # planted cross-sell: a purchase in A is followed by a purchase in B within two weeks
    follow_target = np.full(n_cat, -1)
    for a, b in PLANTED_PAIRS:
        follow_target[cats.index(a)] = cats.index(b)
    conv = np.array([v[1] for v in CATEGORIES.values()])
    price = np.array([v[2] for v in CATEGORIES.values()])
    bar.step("customers")

    # --- sessions: thinned Poisson process per customer -------------------------------------
    draws = rng.poisson(mu * max_mult * window)
    owner = np.repeat(np.arange(n), draws)
    t = signup[owner] + rng.random(owner.size) * window[owner]
    day = np.minimum(t.astype(np.int64), total_days - 1)
    keep = rng.random(owner.size) < day_mult[day] / max_mult
    owner, day = owner[keep], day[keep]
    cat = np.minimum(np.searchsorted(view_w.cumsum(), rng.random(owner.size)), n_cat - 1)
    windows = _campaign_windows(rng, days)
    lift = np.ones(total_days)
    for begin, end, factor in windows:
        lift[begin : end + 1] = factor
    bought = rng.random(owner.size) < np.clip(conv[cat] * propensity[owner] * lift[day], 0, 0.95)
    follows = bought & (follow_target[cat] >= 0) & (rng.random(owner.size) < FOLLOW_UP)
    follow_day = day[follows] + rng.integers(1, 15, int(follows.sum()))
    still_active = follow_day < np.minimum(alive_until[owner[follows]], total_days)
    owner = np.concatenate([owner, owner[follows][still_active]])
    day = np.concatenate([day, follow_day[still_active]])
    cat = np.concatenate([cat, follow_target[cat[follows][still_active]]])
    bought = np.concatenate([bought, np.ones(int(still_active.sum()), dtype=bool)])
    m = owner.size
    amount = np.where(bought, np.round(price[cat] * spend[owner] * rng.lognormal(0, 0.35, m), 2), 0.0)
    browsing = np.round(rng.lognormal(np.log(240), 0.6, m) * browse[owner] * np.where(bought, 1.4, 1.0))
    carted = bought | (rng.random(m) < 0.18)
    bar.step("sessions")

    # --- ground truth at T = last written day ------------------------------------------------
    last = days - 1
    future = (day > last) & (day <= last + HORIZON_DAYS)
    history = day <= last
    bought_future = np.bincount(owner[future & bought], minlength=n) > 0
    alive = alive_until > days
    # purchases per visit outside campaigns, plus the planted follow-up purchases
    per_visit = (view_w * conv).sum()
    follow_share = (view_w * conv)[follow_target >= 0].sum() / per_visit
    q = propensity * per_visit * (1 + FOLLOW_UP * follow_share)
    cum_mult = np.cumsum(day_mult[days : days + HORIZON_DAYS])
    p_none = np.ones(n)
    p_none[alive] = _p_none_alive(mu, q, delta, cum_mult, day_mult[days], np.flatnonzero(alive))
    # The benchmark for any model: the Bayes probability given everything latent EXCEPT the alive
    # state, which is inferred from the days since the last session (a model cannot see it either).
    visit = mu * day_mult.mean()
    last_seen = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_seen, owner[history], day[history])
    quiet = np.where(last_seen >= 0, last - last_seen, np.maximum(last - signup, 0)).astype(float)
    odds_alive = np.exp(-(delta + visit) * quiet)
    odds_dead = delta / (delta + visit) * (1 - np.exp(-(delta + visit) * quiet))
    p_alive = odds_alive / (odds_alive + odds_dead)
    p_none_if_alive = p_none.copy()
    p_none_if_alive[~alive] = _p_none_alive(mu, q, delta, cum_mult, day_mult[days], np.flatnonzero(~alive))
    p_none = p_alive * p_none_if_alive + (1 - p_alive)
    revenue = np.bincount(owner[history], weights=amount[history], minlength=n)
    top5 = revenue >= np.quantile(revenue, 0.95) if n else np.zeros(0, bool)
    bar.step("truth")

    # --- frames in the export format, with defects ---------------------------------------------
    width_c = _id_width(n, 5)
    cust_ids = pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(width_c)
    cust_ids = ("CUST" + cust_ids).to_numpy()
    hist_idx = np.flatnonzero(history | (drift & (day > last) & (day <= last + 45)))
    order = np.lexsort((owner[hist_idx], day[hist_idx]))
    hist_idx = hist_idx[order]
    width_s = _id_width(hist_idx.size, 6)
    frame = pl.DataFrame(
        {
            "session_id": "SESS" + pl.Series(np.arange(1, hist_idx.size + 1)).cast(pl.String).str.zfill(width_s),
            "customer_id": cust_ids[owner[hist_idx]],
            "day": day[hist_idx],
            "product_viewed": np.asarray(cats)[cat[hist_idx]],
            "browsing_time_sec": browsing[hist_idx].astype(np.int64),
            "purchase_made": bought[hist_idx].astype(np.int8),
            "purchase_amount": amount[hist_idx],
            "added_to_cart": carted[hist_idx].astype(np.int8),
        }
    ).with_columns(session_date=pl.lit(t0) + pl.duration(days=pl.col("day")))
    signup_day = signup.copy()
    counts = {"duplicate_rows": 0, "empty_customer_id": 0, "unknown_product": 0, "missing_gender": 0,
              "missing_location": 0, "before_signup": 0}
    hist_mask = frame["day"].to_numpy() <= last
    n_hist = int(hist_mask.sum())
    if defects.before_signup > 0 and n_hist:
        # move some customers' signup after their first session so part of their history precedes it
        first = frame.filter(pl.col("day") <= last).group_by("customer_id").agg(
            pl.col("day").min().alias("first"), pl.col("day").median().alias("mid"), pl.len().alias("k"))
        first = first.sort("customer_id").sample(fraction=1.0, shuffle=True, seed=seed).with_columns(cum=pl.col("k").cum_sum() / 2)
        chosen = first.filter(pl.col("cum") <= defects.before_signup * n_hist)
        num = chosen["customer_id"].str.slice(4).cast(pl.Int64).to_numpy() - 1
        signup_day[num] = np.maximum(chosen["mid"].to_numpy().astype(np.int64), signup_day[num] + 1)
    frame = frame.with_columns(_signup=pl.Series(signup_day)[
        frame["customer_id"].str.slice(4).cast(pl.Int64) - 1])
    m_all = frame.height
    pick = lambda rate: rng.random(m_all) < rate  # noqa: E731 — one draw per row per defect kind
    empty_id = pick(defects.empty_customer_id) & hist_mask
    unknown = pick(defects.unknown_product) & hist_mask & ~empty_id
    unknown_text = np.where(rng.random(m_all) < 0.5, "Unknown", "")
    frame = frame.with_columns(
        customer_id=pl.when(pl.Series(empty_id)).then(pl.lit("")).otherwise(pl.col("customer_id")),
        product_viewed=pl.when(pl.Series(unknown)).then(pl.Series(unknown_text)).otherwise(pl.col("product_viewed")),
    )
    counts["empty_customer_id"], counts["unknown_product"] = int(empty_id.sum()), int(unknown.sum())
    counts["before_signup"] = int(((frame["day"] < frame["_signup"]) & pl.Series(hist_mask & ~empty_id)).sum())
    dup = pick(defects.duplicate_rows) & hist_mask
    counts["duplicate_rows"] = int(dup.sum())
    frame = pl.concat([frame, frame.filter(pl.Series(dup))]).sort("day", "session_id", maintain_order=True)
    frame = frame.with_columns(pl.col("purchase_amount").round(2))
    history_frame = frame.filter(pl.col("day") <= last).select(SESSION_COLUMNS)
    drift_frame = None
    if drift:
        drift_frame = _apply_drift(frame.filter(pl.col("day") > last), rng).select(SESSION_COLUMNS)

    no_gender = rng.random(n) < defects.missing_gender
    no_location = rng.random(n) < defects.missing_location
    counts["missing_gender"], counts["missing_location"] = int(no_gender.sum()), int(no_location.sum())
    customers_frame = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "age": age,
            "gender": pl.Series(gender.tolist(), dtype=pl.String).scatter(np.flatnonzero(no_gender), None),
            "location": pl.Series(np.asarray(LOCATIONS)[loc_idx].tolist(), dtype=pl.String).scatter(
                np.flatnonzero(no_location), None),
            "signup_date": pl.Series(signup_day).cast(pl.Int32),
        }
    ).with_columns(signup_date=pl.lit(t0) + pl.duration(days=pl.col("signup_date")))
    customers_frame = customers_frame.with_columns(pl.col("signup_date").cast(pl.Date))
    bar.step("defects")

    campaigns = pl.DataFrame(
        {
            "campaign_id": [f"CMP{k + 1:03d}" for k in range(len(windows))],
            "name": [f"Campaign {k + 1}" for k in range(len(windows))],
            "start_date": [t0 + timedelta(days=b) for b, _, _ in windows],
            "end_date": [t0 + timedelta(days=e) for _, e, _ in windows],
            "channel": ["email", "social", "search", "email"][: len(windows)],
        }
    )
    as_of = t0 + timedelta(days=last)
    first30 = (day <= signup[owner] + 30) & history
    customer_truth = pl.DataFrame(
        {
            "customer_id": cust_ids,
            "p_no_purchase_90d": p_none,
            "churned_90d": ~bought_future,
            "alive_at_as_of": alive,
            "p_alive_given_history": p_alive,
            "purchased_by_as_of": np.bincount(owner[history & bought], minlength=n) > 0,
            "top5": top5,
            "revenue": revenue,
            "sessions_first_30d": np.bincount(owner[first30], minlength=n),
            "visit_rate": mu,
            "dropout_rate": delta,
            "propensity": propensity,
            "signup_channel": np.asarray(CHANNELS)[channel],
        }
    )
    truth = {
        "as_of": as_of.isoformat(),
        "start": t0.isoformat(),
        "horizon_days": HORIZON_DAYS,
        "seed": seed,
        "customers": n,
        "sessions_written": history_frame.height,
        "categories": {c: {"view_weight": v[0], "conversion": v[1], "price_mean": v[2]} for c, v in CATEGORIES.items()},
        "leaky_category": LEAKY_CATEGORY,
        "weekday_multiplier": WEEKDAY_MULTIPLIER,
        "month_multiplier": MONTH_MULTIPLIER,
        "campaigns": [
            {**row, "start_date": str(row["start_date"]), "end_date": str(row["end_date"]), "conversion_lift": w[2]}
            for row, w in zip(campaigns.to_dicts(), windows)
        ],
        "planted_pairs": [list(p) for p in PLANTED_PAIRS],
        "top5": {
            "definition": "top 5 % of customers by revenue over the written history",
            "signals": {"sessions_first_30d": "higher", "first_order_value": "higher",
                        "browsing_time_first_30d": "higher", "distinct_categories_first_30d": "higher"},
            "count": int(top5.sum()),
        },
        "churn": {"base_rate": float(1 - bought_future[customer_truth["purchased_by_as_of"].to_numpy()].mean())
                  if n else None},
        "defects": {**asdict(defects), "counts": counts},
        "drift": {"enabled": drift, "days": 45, "browsing_time_factor": 1.6, "price_factor": 1.4,
                  "conversion_factor": 0.6, "location_shift": "new customers from Nigeria and Ghana"},
    }
    bar.step("frames")
    return Sample(customers_frame, history_frame, campaigns, customer_truth, truth, drift_frame)


def _p_none_alive(mu, q, delta, cum_mult, first_mult, idx) -> np.ndarray:
    """P(no purchase in the next 90 days | alive now), dropout day by day, in 100k-row chunks."""
    out = np.empty(idx.size)
    dd = np.arange(HORIZON_DAYS)[None, :]
    for chunk in np.array_split(np.arange(idx.size), max(1, idx.size // 100_000)):
        rows = idx[chunk]
        rate = (mu[rows] * q[rows])[:, None]
        d = delta[rows][:, None]
        die_on_day = np.exp(-d * dd) - np.exp(-d * (dd + 1))
        survive = np.exp(-d[:, 0] * HORIZON_DAYS) * np.exp(-rate[:, 0] * cum_mult[-1])
        out[chunk] = (die_on_day * np.exp(-rate * (cum_mult[None, :] - first_mult / 2))).sum(axis=1) + survive
    return out


def _apply_drift(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """The later drop's shift: longer browsing, pricier orders, 40 % fewer conversions."""
    lose = pl.Series(rng.random(frame.height) < 0.4)
    bought = (pl.col("purchase_made") == 1) & ~lose
    return frame.with_columns(
        browsing_time_sec=(pl.col("browsing_time_sec") * 1.6).round().cast(pl.Int64),
        purchase_amount=pl.when(bought).then((pl.col("purchase_amount") * 1.4).round(2)).otherwise(0.0),
        purchase_made=bought.cast(pl.Int8),
    )


def _write_csv(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")  # the sensor ignores .part files until renamed
    frame.write_csv(tmp, date_format="%Y-%m-%d", float_precision=None)
    tmp.replace(path)
    return path


SHAPES = ("sessions", "orders", "events")


def _in_shape(sessions: pl.DataFrame, shape: str, rng: np.random.Generator) -> tuple[pl.DataFrame, dict]:
    """The session export as written (`sessions`), or converted to order lines / events (generate_exports)."""
    if shape == "sessions":
        return sessions, {}
    from ecom_assets import generate_exports

    return (generate_exports.to_orders if shape == "orders" else generate_exports.to_events)(sessions, rng)


def write_sample(sample: Sample, out: str | Path, files: int = 1, truth_out: str | Path | None = None,
                 shape: str = "sessions") -> list[Path]:
    """Write the drops (the behaviour split into `files` chronological files, as sessions, order
    lines or events: `shape`) and the truth."""
    out = Path(out)
    rng = np.random.default_rng(np.random.PCG64(sample.truth["seed"] + 1))
    written = [_write_csv(sample.customers, out / "customers.csv"), _write_csv(sample.campaigns, out / "campaigns.csv")]
    dates = sample.sessions["session_date"].unique().sort()
    shape_truth: list[dict] = []

    def write(frame: pl.DataFrame, name: str) -> None:
        converted, truth = _in_shape(frame, shape, rng)
        shape_truth.append(truth)
        written.append(_write_csv(converted, out / f"{shape}{name}.csv"))

    if files <= 1 or dates.len() < files:
        write(sample.sessions, "")
    else:
        bounds = [dates[int(k * dates.len() / files)] for k in range(1, files)]
        edges = pl.Series(bounds).cast(pl.Int32).to_numpy()
        day_number = sample.sessions["session_date"].cast(pl.Int32).to_numpy()
        part = sample.sessions.with_columns(_part=pl.Series(np.searchsorted(edges, day_number, side="right")))
        for k in range(files):
            write(part.filter(pl.col("_part") == k).drop("_part"), f"_{k + 1:03d}")
    if sample.drift_sessions is not None:
        write(sample.drift_sessions, "_zz_drift")
    if truth_out is not None:
        truth_dir = Path(truth_out)
        truth_dir.mkdir(parents=True, exist_ok=True)
        truth = {**sample.truth, "files": [p.name for p in written], "shape": shape}
        if shape != "sessions":  # per file, in the order written
            truth[shape] = shape_truth
        (truth_dir / "truth.json").write_text(json.dumps(truth, indent=2, default=str))
        sample.customer_truth.write_parquet(truth_dir / "customer_truth.parquet")
    return written


def generate(
    out: str | Path,
    customers: int = 20_000,
    days: int = 730,
    start: str = "2023-01-01",
    seed: int = 7,
    files: int = 1,
    drift: bool = False,
    truth_out: str | Path | None = None,
    sessions: int | None = None,
    defects: DefectRates = DefectRates(),
    progress: bool = False,
    shape: str = "sessions",
) -> dict:
    started = time.perf_counter()
    sample = simulate(customers, days, start, seed, defects, sessions, drift, progress)
    simulated = time.perf_counter()
    written = write_sample(sample, out, files, truth_out, shape)
    return {
        "files": [str(p) for p in written],
        "customers": sample.customers.height,
        "sessions": sample.sessions.height,
        "drift_sessions": 0 if sample.drift_sessions is None else sample.drift_sessions.height,
        "as_of": sample.truth["as_of"],
        "simulate_s": round(simulated - started, 2),
        "write_s": round(time.perf_counter() - simulated, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def cli_generate(args) -> int:
    summary = generate(
        args.out, args.customers, args.days, args.start, args.seed, args.files, args.drift,
        args.truth_out, args.sessions, progress=True, shape=args.shape,
    )
    print(
        f"wrote {summary['customers']:,} customers and {summary['sessions']:,} sessions as {args.shape} "
        f"(+{summary['drift_sessions']:,} drifted) to {args.out} in {summary['seconds']} s; as of {summary['as_of']}"
    )
    for path in summary["files"]:
        print(f"  {path}")
    return 0
