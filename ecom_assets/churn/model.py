"""Train, calibrate, gate and score the churn model (pure functions: frames in, results out).

Windows come from `churn_training_set` (cutoffs every 30 days): the newest is the out-of-time
holdout, used only for the metrics and the gates. The gated model trains on the windows whose
90-day label horizon ends by the holdout's cutoff (a window whose horizon reaches past it would
have seen the holdout's feature period); the windows in between are used only by the refit. Each
customer's rows are weighted 1 / (their windows), so long-known customers do not dominate; the
customers (by id hash, all their windows) are split into 5 folds: each fold early-stops a model trained on
the others, the served booster uses their mean number of trees on every row, and the out-of-fold scores of
the newest window calibrate it. Once a recipe passes the gate it is refitted the
same way on every labelled window, the holdout included, and the refit serves.
"""

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ecom_assets.churn import evaluate
from ecom_assets.features.build import CATEGORICAL_FEATURES, feature_columns

SEED = 7
NTHREAD = 2
# no row or column subsampling: on a few thousand customers (a wholesaler's log) the sampled rows and columns
# moved the served AUC by +-0.002 and decided the gate (champion with one seed, no_skill with another); without
# them the fit depends on the data alone, and the real logs rank as well (bench/real_logs.py, README)
PARAMS = {
    "objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "max_depth": 4,
    "eta": 0.15, "subsample": 1.0, "colsample_bytree": 1.0, "min_child_weight": 5, "lambda": 1.0,
    "max_cat_to_onehot": 1, "seed": SEED, "nthread": NTHREAD,
}
MAX_ROUNDS = 600
MAX_TRAIN_ROWS = 150_000  # a seeded sample beyond this (per fit: gated and refit): more rows add seconds, not skill
EARLY_STOPPING = 30
LEAKAGE_AUC = 0.97
# a feature (or the model) that separates the holdout at >= LEAKAGE_AUC is suspected only when it beats the best
# classic (recency / BG/NBD, built from the history before each cutoff: test_features checks that) by this much:
# a purchase log where recency alone reaches 0.99 is very predictable, not leaking
LEAKAGE_MARGIN = 0.02
MIN_CLASS_ROWS = 20
MAX_LEVELS = 30  # rarer categorical levels share one pooled code after the kept ones (never a string like "other")
CV_FOLDS = 5  # cross-validation folds over whole customers: the trees' count and the calibration scores
# up to this many customers every fold runs (5 early-stopped fits + 1 on all rows): a single fold's fifth of a
# few thousand customers decided the gate by the luck of the split (wholesaler's log, ~1,800 customers). Beyond
# it one fold's fifth (> 2,000 customers) validates: on the music log (23,570 customers) all five folds served
# the same AUC (0.8064 -> 0.8064 / 0.8067 with two seeds) for 3x the model's seconds
CV_ALL_FOLDS_CUSTOMERS = 10_000
MIN_CALIBRATION_ROWS = 200
# how far (log-odds) a calibrated score beyond the outer calibration knots may move from the knot's value:
# enough to keep the order strict, too little to claim what the calibration data did not show
CALIBRATION_TAIL = 0.1
RISK_TIERS = [(0.75, "high"), (0.5, "medium"), (0.0, "low")]
NO_SKILL_TIER = "no_skill"  # the tier of buyers served the base rate: nothing ranked them better than chance
HORIZON_DAYS = 90
# the trees start from the BG/NBD's log-odds and learn corrections to it (boosting from a prior model): where the
# data says nothing more, the model is the classic, not a worse re-learning of it from younger windows
MARGIN_FEATURE = "bgnbd_churn_90d"
# drivers shown as one: member column -> the column their contributions are added to (one BG/NBD fit's views)
DRIVER_GROUPS = {"p_alive": MARGIN_FEATURE, "expected_purchases_90d": MARGIN_FEATURE}
# the classic baselines: score column (higher = more likely to churn) and the axis it is calibrated on
CLASSICS = {"recency": ("days_since_last_purchase", "log1p"), "bgnbd": ("bgnbd_churn_90d", "logit")}


@dataclass
class TrainedModel:
    booster: object  # xgboost.Booster trimmed to the best iteration
    features: list[str]
    categories: dict[str, list[str]]
    calibration: dict  # centered isotonic knots {"x": [...], "y": [...]} + decile support
    best_iteration: int
    dropped_features: dict = field(default_factory=dict)  # name -> why it was left out ("all null", "constant")
    training: dict = field(default_factory=dict)  # windows, rows, customers, weights: for the model card


@dataclass
class Evaluation:
    status: str
    status_reason: str
    metrics: dict
    single_feature_auc: dict = field(default_factory=dict)
    leaking_features: list[str] = field(default_factory=list)


def category_levels(frame: pl.DataFrame, features: list[str]) -> dict[str, list[str]]:
    """Kept levels per categorical feature (the MAX_LEVELS most frequent, sorted), stored in the model card.
    Every other value gets the pooled code len(levels): an observed value "other" is a level like any."""
    levels = {}
    for col in CATEGORICAL_FEATURES:
        if col in features:
            counts = frame[col].drop_nulls().value_counts(sort=True)
            levels[col] = sorted(counts[col].head(MAX_LEVELS).to_list())
    return levels


def usable_features(frame: pl.DataFrame, candidates: list[str]) -> tuple[list[str], dict[str, str]]:
    """(the candidates that carry information, {left-out feature: why}): an all-null column (a purchase
    log has no browsing time, many shops no age) or one with a single value teaches nothing."""
    kept, dropped = [], {}
    for col in candidates:
        values = frame[col]
        if values.dtype.is_float():
            values = values.fill_nan(None)
        distinct = values.drop_nulls().n_unique()
        if distinct == 0:
            dropped[col] = "all null"
        elif distinct == 1:
            dropped[col] = "constant"
        else:
            kept.append(col)
    return kept, dropped


def base_margin(frame: pl.DataFrame, spec: dict | None) -> np.ndarray | None:
    """Log-odds of the BG/NBD churn probability per row (the boosting's starting point), the training mean
    where a row lacks it; None for a model trained without one."""
    if not spec:
        return None
    if spec["feature"] not in frame.columns:
        return np.full(frame.height, spec["mean"], dtype=np.float32)
    p = np.clip(frame[spec["feature"]].cast(pl.Float64).fill_nan(None).to_numpy(), 1e-4, 1 - 1e-4)
    margin = np.log(p / (1 - p))
    return np.where(np.isnan(margin), spec["mean"], margin).astype(np.float32)


def design_matrix(frame: pl.DataFrame, features: list[str], categories: dict[str, list[str]], label=None,
                  weight=None, margin=None):
    """An XGBoost DMatrix in the model's feature order with categoricals coded by the stored levels
    (null -> missing, a level the model never saw -> the pooled code len(levels)), so the column order
    or an unseen level in the scoring data can never shift the codes. Built from one float32 array
    (XGBoost's own precision): no pandas frame in between, which cost more than the prediction itself
    at 300k rows."""
    import xgboost as xgb

    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"scoring data lacks model features: {', '.join(missing)} (a model trained on an older "
                         "feature set: retrain it, e.g. `ecom-assets run --retrain`)")
    columns = []
    for col in features:
        if col in categories:
            levels = categories[col]
            values = pl.col(col).cast(pl.String)
            # replace_strict would send null to the default: null stays missing
            codes = values.replace_strict(levels, list(range(len(levels))), default=len(levels), return_dtype=pl.Float32)
            columns.append(pl.when(values.is_not_null()).then(codes).alias(col))
        else:
            columns.append(pl.col(col).cast(pl.Float32).fill_nan(None))
    # one select (columns converted in parallel), row-major as XGBoost stores it: at 310k rows the array
    # takes 0.04 s and the DMatrix from it 0.075 s (0.13 s together when built column by column)
    matrix = frame.select(columns).to_numpy(order="c") if columns else np.empty((frame.height, 0), dtype=np.float32)
    return xgb.DMatrix(matrix, label=label, weight=weight, base_margin=margin, feature_names=features, enable_categorical=True,
                       nthread=NTHREAD, feature_types=["c" if col in categories else "q" for col in features])


def customer_weights(frame: pl.DataFrame) -> np.ndarray:
    """1 / (rows of the same customer): every customer weighs 1 however many windows they are in."""
    return frame.select(1.0 / pl.len().over("customer_id")).to_series().to_numpy()


def _axis(score: np.ndarray, transform: str) -> np.ndarray:
    score = np.asarray(score, dtype=np.float64)
    if transform == "logit":
        s = np.clip(score, 1e-6, 1 - 1e-6)
        return np.log(s / (1 - s))
    if transform == "log1p":
        return np.log1p(np.clip(score, 0, None))
    return score


def fit_calibration(score: np.ndarray, y: np.ndarray, transform: str = "logit", weight: np.ndarray | None = None) -> dict:
    """Centered isotonic regression (Oron & Flournoy 2017, "Centered isotonic regression: point and interval
    estimation for dose-response studies"): scikit-learn's isotonic fit (PAVA), then one knot per block at
    its weighted mean score, interpolated linearly in log-odds and continued with the end slopes. Strictly
    increasing, so every distinct score keeps its own probability and the model's order (and AUC) is kept;
    PAVA's steps would tie whole score ranges. Beyond the outer knots the data says nothing more: the
    curve stays within `tail` log-odds of the outer knot (a bounded, strictly monotone tail, so the order
    is kept without extrapolating to 0 or 1), and the outer knots are floored at the Jeffreys rate of their
    block (weighted customers n: 0.5 / (n + 1)). `transform` is the axis: "logit" for probabilities,
    "log1p" for day counts. JSON-ready knots."""
    from sklearn.isotonic import IsotonicRegression

    u = _axis(score, transform)
    w = np.ones_like(u) if weight is None else np.asarray(weight, dtype=np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(u, y, sample_weight=w)
    fitted = iso.predict(u)
    values, block = np.unique(fitted, return_inverse=True)
    n = np.bincount(block, weights=w)
    centre = np.bincount(block, weights=w * u) / n
    # the outer blocks rest on few customers: their rate is kept off 0 and 1 by the Jeffreys estimate of
    # a block with no (or only) events, 0.5 / (n + 1), so "no churner among 40" never serves as ~0
    values[0] = max(values[0], 0.5 / (n[0] + 1))
    values[-1] = min(values[-1], 1 - 0.5 / (n[-1] + 1))
    values = np.maximum.accumulate(values) + np.arange(values.size) * 1e-9  # flooring must not tie the knots
    logit = np.log(values / (1 - values))
    return {"method": "centered_isotonic", "transform": transform, "x": centre.tolist(), "y": logit.tolist(),
            "tail": CALIBRATION_TAIL}


def apply_calibration(score: np.ndarray, calibration: dict) -> np.ndarray:
    """Calibrated probability for raw scores (see fit_calibration)."""
    if calibration.get("method") == "isotonic":  # versions saved before centered isotonic: PAVA breakpoints
        return np.interp(score, calibration["x"], calibration["y"])
    u = _axis(score, calibration["transform"])
    x, y = np.asarray(calibration["x"]), np.asarray(calibration["y"])
    v = np.interp(u, x, y)
    if "tail" in calibration:  # bounded tails: within `tail` log-odds of the outer knots, strictly monotone
        span = max(float(x[-1] - x[0]), 1e-6)
        tail = calibration["tail"]
        v = np.where(u < x[0], y[0] - tail * (1 - np.exp((u - x[0]) / span)), v)
        v = np.where(u > x[-1], y[-1] + tail * (1 - np.exp((x[-1] - u) / span)), v)
    else:  # versions saved before bounded tails: the end slopes
        v = np.where(u < x[0], y[0] + calibration["slope_low"] * (u - x[0]), v)
        v = np.where(u > x[-1], y[-1] + calibration["slope_high"] * (u - x[-1]), v)
    return 1.0 / (1.0 + np.exp(-v))


def _calibration_rows(valid: pl.DataFrame) -> pl.DataFrame:
    """The validation customers' rows of the newest window (the closest in time to serving), or all their
    rows when that window is too thin to calibrate on."""
    if "cutoff" not in valid.columns:
        return valid
    newest = valid.filter(pl.col("cutoff") == pl.col("cutoff").max())
    churned = int(newest["churned"].sum())
    enough = newest.height >= MIN_CALIBRATION_ROWS and 0 < churned < newest.height
    return newest if enough else valid


def _fold_of(frame: pl.DataFrame) -> np.ndarray:
    """Each row's cross-validation fold, by customer id hash: all of a customer's windows in one fold."""
    return (frame["customer_id"].hash(seed=SEED) % CV_FOLDS).to_numpy().astype(np.int64)


def train_model(train: pl.DataFrame) -> TrainedModel:
    """XGBoost on stacked windows, weighted per customer. The number of trees is chosen by 5-fold
    cross-validation over whole customers (each fold early-stopped on its held-out customers; the mean
    best round), the served booster is then fitted on every row with that many trees, and the scores
    are calibrated on the out-of-fold predictions of the newest window (scikit-learn's
    CalibratedClassifierCV(ensemble=False) recipe). Above CV_ALL_FOLDS_CUSTOMERS customers only the
    first fold runs and its early-stopped booster (80 % of the customers) serves. One 80/20 split made both the stopping round and
    the calibration rest on a fifth of the customers: on a wholesaler's log (one training window of
    ~1,800 customers) the split alone decided the gate (champion with one seed, no skill with two of
    three others). All-null and constant features are left out (`dropped_features`)."""
    import xgboost as xgb

    if train.height > MAX_TRAIN_ROWS:
        train = train.sample(MAX_TRAIN_ROWS, seed=SEED)
    features, dropped = usable_features(train, feature_columns(train))
    categories = category_levels(train, features)
    margin = None
    if MARGIN_FEATURE in features:  # a window without a BG/NBD fit starts from the mean log-odds
        margin = {"feature": MARGIN_FEATURE, "mean": 0.0}
        margin["mean"] = float(base_margin(train, margin).mean())
    label, weight = train["churned"].to_numpy(), customer_weights(train)
    full = design_matrix(train, features, categories, label=label, weight=weight, margin=base_margin(train, margin))
    fold = _fold_of(train)
    customers = train["customer_id"].n_unique()
    # past CV_ALL_FOLDS_CUSTOMERS one fold validates on enough customers: it alone sets the trees and serves
    folds = range(CV_FOLDS) if customers <= CV_ALL_FOLDS_CUSTOMERS else range(1)
    out_of_fold = np.full(train.height, np.nan)
    rounds = []
    for k in folds:
        held = np.flatnonzero(fold == k)
        rest = np.flatnonzero(fold != k)
        if held.size == 0 or rest.size == 0:
            continue
        booster = xgb.train(PARAMS, full.slice(rest), MAX_ROUNDS, evals=[(full.slice(held), "validation")],
                            early_stopping_rounds=EARLY_STOPPING, verbose_eval=False)
        rounds.append(int(booster.best_iteration) + 1)
        out_of_fold[held] = booster.predict(full.slice(held), iteration_range=(0, rounds[-1]))
    n_trees = max(1, int(round(float(np.mean(rounds))))) if rounds else 1
    if len(rounds) == 1:
        booster = booster[:n_trees]
    else:
        booster = xgb.train(PARAMS, full, n_trees, verbose_eval=False)
    scored = ~np.isnan(out_of_fold)
    calib = _calibration_rows(train.filter(pl.Series(scored)).with_columns(_raw=pl.Series(out_of_fold[scored])))
    y = calib["churned"].to_numpy().astype(float)
    raw = calib["_raw"].to_numpy()
    calibration = fit_calibration(raw, y, "logit")
    calibration["base_margin"] = margin
    calibration["support"] = _bin_support(raw, y)
    training = {"rows": train.height, "customers": train["customer_id"].n_unique(),
                "windows": sorted({str(c) for c in train["cutoff"].to_list()}) if "cutoff" in train.columns else [],
                "cv_folds_run": len(rounds), "cv_best_rounds": rounds, "trees": n_trees,
                "calibration_rows": calib.height, "calibration": "out-of-fold predictions of the newest window",
                "row_weight": "1 / windows of the customer"}
    return TrainedModel(booster, features, categories, calibration, n_trees - 1, dropped, training)


def _bin_support(raw: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Validation rows and churn rate per raw-score decile: what each prediction's 95 % interval rests on."""
    edges = np.unique(np.quantile(raw, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges[1:-1], raw, side="right"), 0, max(len(edges) - 2, 0))
    n = np.bincount(which, minlength=len(edges) - 1)
    rate = np.bincount(which, weights=y.astype(float), minlength=len(edges) - 1) / np.maximum(n, 1)
    return {"edges": edges.tolist(), "n": n.tolist(), "rate": rate.tolist()}


def predict(model: TrainedModel, frame: pl.DataFrame, with_drivers: bool = False):
    """(calibrated probability, raw probability, top-3 drivers or None)."""
    spec = model.calibration.get("base_margin")
    margin = base_margin(frame, spec)
    matrix = design_matrix(frame, model.features, model.categories, margin=margin)
    model.booster.set_param({"nthread": NTHREAD})
    drivers = None
    if with_drivers:
        # contributions (+ the bias column) sum to the margin, so one pass gives both scores and drivers
        contribs = model.booster.predict(matrix, pred_contribs=True, approx_contribs=True)
        if spec:  # the bias column holds the BG/NBD starting point: its deviation from the mean is that feature's part
            shift = margin - np.float32(spec["mean"])
            contribs[:, model.features.index(spec["feature"])] += shift
            contribs[:, -1] -= shift
        raw = (1.0 / (1.0 + np.exp(-contribs.sum(axis=1, dtype=np.float64)))).astype(np.float32)
        drivers = top_drivers(contribs[:, :-1], model.features)
    else:
        raw = model.booster.predict(matrix)
    return apply_calibration(raw, model.calibration), raw, drivers


def grouped_contributions(contribs: np.ndarray, features: list[str]) -> tuple[np.ndarray, list[str]]:
    """(contributions, names) with each DRIVER_GROUPS member's column added into its group's column and
    dropped: the BG/NBD's P(alive), expected purchases and P(no purchase) are one fit's three views of a
    customer, and shown apart they can pull opposite ways ("P(alive) low (raises risk)" beside "P(no
    purchase in 90 days) low (lowers risk)"); their sum is what that fit does to the score."""
    contribs = np.array(contribs, copy=True)
    keep = list(range(len(features)))
    for member, group in DRIVER_GROUPS.items():
        if member in features and group in features:
            contribs[:, features.index(group)] += contribs[:, features.index(member)]
            keep.remove(features.index(member))
    return contribs[:, keep], [features[i] for i in keep]


def top_drivers(contribs: np.ndarray, features: list[str], k: int = 3) -> pl.Series:
    """The k features that move each prediction most, e.g. 'days_since_last_purchase ↑' (raises risk);
    the BG/NBD's three columns count as one driver (`grouped_contributions`).

    One gather from a label table (feature × direction) and a reshape into lists, so 500k
    customers cost k argmax passes, not 1.5M Python strings.
    """
    contribs, features = grouped_contributions(contribs, features)
    strength = np.abs(contribs)
    rows = np.arange(contribs.shape[0])
    top = []
    for _ in range(min(k, contribs.shape[1])):  # k argmax passes: far cheaper than sorting every row
        strongest = strength.argmax(axis=1)
        top.append(strongest)
        strength[rows, strongest] = -1.0
    top = np.stack(top, axis=1) if top else np.empty((contribs.shape[0], 0), dtype=np.int64)
    raises = np.take_along_axis(contribs, top, axis=1) > 0
    labels = pl.Series([f"{f} ↑" for f in features] + [f"{f} ↓" for f in features], dtype=pl.String)
    picked = top + np.where(raises, 0, len(features))
    return labels.gather(picked.ravel()).reshape(picked.shape).arr.to_list().rename("top_drivers")


def classic_score(frame: pl.DataFrame, name: str) -> np.ndarray | None:
    """The classic's churn score per row (higher = more likely to churn), or None if a row lacks it."""
    column = CLASSICS[name][0]
    if column not in frame.columns or frame[column].null_count() or frame.is_empty():
        return None
    return frame[column].cast(pl.Float64).to_numpy()


def fit_baseline(train_all: pl.DataFrame, holdout: pl.DataFrame, cold: pl.DataFrame) -> dict:
    """The classic baselines (days since the last purchase; BG/NBD P(no purchase in 90 days)): each one
    calibrated on the training windows (judged on the holdout) and again on the newest labelled window
    (what serves); the one with the best holdout AUC is the baseline the gate compares with and the
    fallback that serves without a champion (recency without a holdout to choose on)."""
    y_hold = holdout["churned"].to_numpy().astype(float) if holdout.height else None
    # a holdout of one class (every buyer of the newest window churned, as one-visit tracker devices do) ranks
    # nothing: no AUC is judged on it, and the classic serves unjudged, as without a holdout
    judgeable = y_hold is not None and 0 < y_hold.sum() < y_hold.size
    newest = holdout if holdout.height else train_all.filter(pl.col("cutoff") == pl.col("cutoff").max())
    classics = {}
    for name, (column, transform) in CLASSICS.items():
        # an older window without a BG/NBD fit (too few repeat buyers then) leaves the others to calibrate on
        train = train_all.filter(pl.col(column).is_not_null()) if column in train_all.columns else train_all
        s_train, s_new = classic_score(train, name), classic_score(newest, name)
        if s_train is None or s_new is None or train.height < MIN_CLASS_ROWS:
            continue
        classics[name] = {
            "column": column, "transform": transform,
            "calibration": fit_calibration(s_train, train["churned"].to_numpy().astype(float), transform,
                                           customer_weights(train)),
            "serving_calibration": fit_calibration(s_new, newest["churned"].to_numpy().astype(float), transform),
            # customers per score decile of the serving fit: what each served probability's interval rests on
            "serving_support": _bin_support(s_new, newest["churned"].to_numpy()),
            "holdout_auc": evaluate.auc(y_hold, classic_score(holdout, name)) if judgeable else None,
        }
    judged = {k: v["holdout_auc"] for k, v in classics.items() if v["holdout_auc"] is not None}
    best = max(judged, key=lambda k: (judged[k], k == "recency")) if judged else "recency"
    labelled = pl.concat([train_all.select("customer_id", "churned"), holdout.select("customer_id", "churned")])
    overall = float(labelled["churned"].mean()) if labelled.height else None
    skill = None
    if best in judged:  # does the best classic rank the holdout better than chance (a constant: AUC 0.5)?
        diff = evaluate.bootstrap_auc_difference(y_hold, classic_score(holdout, best), np.zeros(holdout.height))
        skill = {"classic": best, "holdout_auc": judged[best], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"],
                 "has_skill": diff["ci_low"] > 0}
    return {
        "classic": best if best in classics else None,
        "classics": classics,
        # None: no holdout to judge it on (the classic serves, as the only evidence there is)
        "classic_skill": skill,
        "overall_rate": overall,
        "labelled_customers": labelled["customer_id"].n_unique(),
        # customers who visited but never bought: their empirical 90-day no-purchase rate
        "cold_start_prior": float(cold["churned"].mean()) if cold.height else overall,
        "cold_start_rows": cold.height,
    }


def classic_has_skill(baseline: dict | None) -> bool:
    """False only when the baseline's best classic was judged on a holdout and its AUC's 95 % CI reaches 0.5
    (it ranks no better than a constant); True without a judgement (no holdout yet, or a baseline saved before
    the check)."""
    return ((baseline or {}).get("classic_skill") or {}).get("has_skill", True)


def no_skill_words(baseline: dict) -> str:
    """Why nothing ranks the buyers: the best classic's holdout AUC and its CI against chance."""
    skill = baseline["classic_skill"]
    return (f"no skill: neither the model nor the best classic ({skill['classic']}, holdout AUC "
            f"{skill['holdout_auc']:.3f}, 95 % CI of the gain over chance {skill['ci_low']:+.3f}…{skill['ci_high']:+.3f}) "
            "ranks customers better than chance, so every buyer gets the base rate and no risk tier")


def baseline_probability(frame: pl.DataFrame, baseline: dict, which: str = "serving_calibration",
                         classic: str | None = None) -> np.ndarray:
    """The calibrated probability of the baseline's classic (or `classic`); rows without its score (e.g.
    no BG/NBD fit at scoring time) get recency's, then the overall rate."""
    out = np.full(frame.height, np.nan)
    for name in [classic or baseline.get("classic"), "recency"]:
        spec = baseline.get("classics", {}).get(name or "")
        if spec is None or spec["column"] not in frame.columns:
            continue
        score = frame[spec["column"]].cast(pl.Float64).fill_nan(None).to_numpy()
        todo = np.isnan(out) & ~np.isnan(score)
        out[todo] = apply_calibration(score[todo], spec[which])
    overall = baseline.get("overall_rate")
    return np.where(np.isnan(out), np.nan if overall is None else overall, out)


def baseline_drivers(p: np.ndarray, baseline: dict, column: str) -> list[list[str]]:
    """The one driver of a classic baseline's probability, per customer, in the direction it moves them:
    the classic is monotone (a larger `column` means a higher risk), so `column ↑` (raises risk) where the
    customer's probability is above the labelled customers' churn rate (`overall_rate`; the median of `p`
    without it), `column ↓` (lowers risk) where it is at or below, e.g. a customer who bought today; none
    where `p` is NaN (nothing scored the customer)."""
    p = np.asarray(p, dtype=float)
    reference = baseline.get("overall_rate") if baseline else None
    if reference is None:
        reference = float(np.nanmedian(p)) if np.isfinite(p).any() else np.nan
    # an unscored customer (no probability) has no direction to give
    return [[] if np.isnan(v) else [f"{column} ↑"] if v > reference else [f"{column} ↓"] for v in p]


# the BG/NBD's inputs as drivers, each named by the feature a marketer reads it in: recency against the customer's
# own typical gap, repeat purchases (frequency) and days since the first purchase (age T)
BGNBD_DRIVERS = ["days_overdue", "repeat_purchases", "days_since_first_purchase"]
MIN_DRIVER_EFFECT = 1e-4  # a smaller change of P(no purchase in 90 days) (0.01 points) moves nobody: not a driver


def bgnbd_references(frame: pl.DataFrame) -> dict[str, float | None]:
    """What a customer's BG/NBD inputs are compared with (medians over the rows of `frame` that have them):
    `repeat_purchases` among repeat buyers (a one-purchase buyer has no frequency to compare), and
    `days_since_first_purchase` among all buyers. None where no row has the value."""
    def median(column: str, where: pl.Expr) -> float | None:
        if column not in frame.columns:
            return None
        value = frame.filter(where)[column].drop_nulls().median()
        return None if value is None else float(value)

    return {"repeat_purchases": median("repeat_purchases", pl.col("repeat_purchases") > 0),
            "days_since_first_purchase": median("days_since_first_purchase", pl.lit(True))}


def bgnbd_drivers(buyers: pl.DataFrame, params) -> list[list[str]] | None:
    """Per customer of `buyers` (rows of `customer_features`), the BG/NBD inputs that move their P(no purchase
    in 90 days) (`btyd.p_no_purchase` with `params`, the fit behind the features' `bgnbd_churn_90d`), strongest
    first, as "feature ↑/↓" labels; None without a fit or its inputs, or when `params` does not reproduce the
    features' `bgnbd_churn_90d`.

    Method: one input at a time, the change in that probability when the input is set to a reference with the
    others kept (a one-at-a-time sensitivity, like a partial-dependence contrast for one customer): ↑ where
    the customer's own value gives a higher probability than the reference (raises risk), ↓ where lower.
    - `days_overdue` (recency against their own typical gap): days since the last purchase set to their
      `gap_mean_days` (the BG/NBD's own t_x / x), so ↑ exactly when they are past it (the probability rises
      with recency at fixed frequency and age);
    - `repeat_purchases` (frequency): set to the repeat buyers' median (`bgnbd_references`);
    - `days_since_first_purchase` (age T): set to the buyers' median, recency kept (at least the recency).
    A one-purchase-day buyer has no recency or frequency in the model (x = 0, t_x = 0: BG/NBD lets customers
    drop out only after a repeat purchase), so their one driver is the age of that purchase. Changes below
    MIN_DRIVER_EFFECT are not drivers. The served probability is a strictly increasing calibration of this
    one, so the directions are the served score's."""
    from ecom_assets.features import btyd

    needed = {"repeat_purchases", "days_since_first_purchase", "days_since_last_purchase", "gap_mean_days"}
    if params is None or not needed <= set(buyers.columns):
        return None
    ref = bgnbd_references(buyers)

    def column(name: str) -> np.ndarray:
        return buyers[name].cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)

    x, T, R, gap = (column(c) for c in ("repeat_purchases", "days_since_first_purchase", "days_since_last_purchase",
                                        "gap_mean_days"))
    repeat = x > 0

    def p(x_: np.ndarray, recency: np.ndarray, age: np.ndarray) -> np.ndarray:  # days in, weeks for the model
        return btyd.p_no_purchase(params, x_, np.clip(age - recency, 0.0, None) / 7.0, age / 7.0)

    x_ref = np.nan if ref["repeat_purchases"] is None else ref["repeat_purchases"]
    T_ref = np.nan if ref["days_since_first_purchase"] is None else ref["days_since_first_purchase"]
    with np.errstate(all="ignore"):
        base = p(x, R, T)
        served = column("bgnbd_churn_90d") if "bgnbd_churn_90d" in buyers.columns else base
        if not np.allclose(base, served, rtol=0, atol=1e-9, equal_nan=True):
            return None  # not the fit behind the served score: its drivers would explain another one
        effects = np.column_stack([
            np.where(repeat, base - p(x, gap, T), 0.0),
            np.where(repeat, base - p(np.full_like(x, x_ref), R, T), 0.0),
            # a one-purchase-day buyer's recency is their age: both move to the reference
            base - np.where(repeat, p(x, R, np.maximum(T_ref, R)), p(x, np.full_like(T, T_ref), np.full_like(T, T_ref))),
        ])
    effects = np.where(np.isfinite(effects), effects, 0.0)
    order = np.argsort(-np.abs(effects), axis=1, kind="stable")
    ranked = np.take_along_axis(effects, order, axis=1)
    labels = pl.Series([f"{f} ↑" for f in BGNBD_DRIVERS] + [f"{f} ↓" for f in BGNBD_DRIVERS], dtype=pl.String)
    picked = labels.gather((order + np.where(ranked > 0, 0, len(BGNBD_DRIVERS))).ravel())
    picked = picked.set(pl.Series(np.abs(ranked).ravel() < MIN_DRIVER_EFFECT), None)
    return picked.reshape(order.shape).arr.to_list().list.drop_nulls().to_list()


def tier_of(p: np.ndarray) -> np.ndarray:
    out = np.full(p.size, RISK_TIERS[-1][1], dtype=object)
    for threshold, name in reversed(RISK_TIERS):
        out[p >= threshold] = name
    return out


def calibration_report(y: np.ndarray, p: np.ndarray) -> dict:
    """Reliability per decile, ECE and observed churn per risk tier (monotone or not) on the holdout."""
    table = evaluate.reliability_table(y, p)
    tiers, monotone = evaluate.tier_table(y, tier_of(p), [name for _, name in RISK_TIERS])
    return {"reliability": table, "ece": evaluate.expected_calibration_error(table), "tiers": tiers,
            "tiers_monotone": monotone}


def evaluate_holdout(model: TrainedModel, holdout: pl.DataFrame, baseline: dict) -> tuple[Evaluation, np.ndarray]:
    """Holdout metrics beside the classic baselines, the skill gate (against the best classic on the
    holdout) and the leakage guard."""
    y = holdout["churned"].to_numpy().astype(float)
    p, _, _ = predict(model, holdout)
    best = baseline.get("classic") or "recency"
    best_score = classic_score(holdout, best)
    if best_score is None:  # a baseline saved without the classic: recency is always there for buyers
        best, best_score = "recency", holdout["days_since_last_purchase"].to_numpy()
    p_base = baseline_probability(holdout, baseline, which="calibration")
    metrics = {**evaluate.classification_metrics(y, p), **evaluate.classification_metrics(y, p_base, "_baseline")}
    metrics["auc_out_of_time"] = metrics.pop("auc")
    metrics["auc_baseline_recency"] = evaluate.auc(y, holdout["days_since_last_purchase"].to_numpy())
    for name in CLASSICS:
        score = classic_score(holdout, name)
        if score is not None:
            metrics[f"auc_classic_{name}"] = evaluate.auc(y, score)
    metrics["best_classic"] = best
    metrics["auc_best_classic"] = evaluate.auc(y, best_score)
    diff = evaluate.bootstrap_auc_difference(y, p, best_score)
    report = calibration_report(y, p)
    baseline_report = calibration_report(y, p_base)
    metrics.update({"auc_diff": diff["auc_diff"], "auc_diff_ci_low": diff["ci_low"], "auc_diff_ci_high": diff["ci_high"],
                    "n_holdout": int(y.size), "base_rate": float(y.mean()),
                    "calibration_table": report["reliability"], "ece": report["ece"],
                    "tiers_holdout": report["tiers"], "tiers_monotone": report["tiers_monotone"],
                    "baseline_calibration_table": baseline_report["reliability"], "ece_baseline": baseline_report["ece"],
                    "baseline_tiers_holdout": baseline_report["tiers"],
                    "baseline_tiers_monotone": baseline_report["tiers_monotone"]})
    single = single_feature_auc(holdout, model.features)
    auc_m, auc_b = metrics["auc_out_of_time"], metrics["auc_best_classic"]
    leaking = suspected_leaks(single, auc_b)
    ci = f"95 % CI of the difference {diff['ci_low']:+.3f}…{diff['ci_high']:+.3f}"
    ci_verdict = f"{ci} lies below 0" if diff["ci_high"] < 0 else f"{ci} includes 0"
    against = f"the best classic baseline ({best}, AUC {auc_b:.3f})"
    if leaking or suspected_leaks({"model": auc_m}, auc_b):
        named = ", ".join(f"{f} (AUC {single[f]:.3f} alone)" for f in leaking) or f"the model as a whole (AUC {auc_m:.3f})"
        ev = Evaluation("leakage_suspected", f"holdout AUC {auc_m:.3f}: suspected label leakage from {named}, "
                        f"against {against}; this model is not used and the previous champion (or the calibrated "
                        "classic) keeps serving", metrics, single, leaking)
    elif diff["ci_low"] > 0:
        ev = Evaluation("champion", f"holdout AUC {auc_m:.3f} beats {against} ({ci})", metrics, single)
    else:
        ev = Evaluation("no_skill", f"holdout AUC {auc_m:.3f} does not beat {against} ({ci_verdict}): the data "
                        f"carries no usable churn signal beyond the classic model; the model is not promoted and the "
                        "previous champion (or the calibrated classic) keeps serving", metrics, single)
    return ev, p


def suspected_leaks(auc_alone: dict[str, float], auc_best_classic: float) -> list[str]:
    """Names whose holdout AUC alone reaches LEAKAGE_AUC and beats the best classic's by LEAKAGE_MARGIN, sorted.

    A label that leaks into a feature separates the holdout almost perfectly; so does recency on a log
    where customers stop at a fixed age. Only what the classics cannot explain is suspected."""
    return sorted(name for name, a in auc_alone.items() if a >= LEAKAGE_AUC and a >= auc_best_classic + LEAKAGE_MARGIN)


def single_feature_auc(frame: pl.DataFrame, features: list[str]) -> dict[str, float]:
    """max(AUC, 1 - AUC) of each numeric feature alone on the holdout: the leakage screen."""
    y = frame["churned"].to_numpy().astype(float)
    out = {}
    for col in features:
        if col in CATEGORICAL_FEATURES:
            continue
        values = frame[col].cast(pl.Float64).fill_nan(None)
        filled = values.fill_null(values.min() - 1 if values.null_count() < values.len() else 0).to_numpy()
        a = evaluate.auc(y, filled)
        out[col] = max(a, 1 - a)
    return out


def risk_tier(p: pl.Expr) -> pl.Expr:
    """The tier of a probability column (`unscored` when null); the same thresholds as `tier_of`."""
    expr = pl.when(p.is_null()).then(pl.lit("unscored"))
    for threshold, name in RISK_TIERS:
        expr = expr.when(p >= threshold).then(pl.lit(name))
    return expr.otherwise(pl.lit("low"))


def fingerprint(frame: pl.DataFrame) -> str:
    """A short content hash of a frame (row count, columns and a hash of the values)."""
    digest = hashlib.sha256(json.dumps([frame.height, frame.columns]).encode())
    digest.update(str(frame.hash_rows(seed=0).sum()).encode())
    return digest.hexdigest()[:16]


def has_enough_history(train: pl.DataFrame, holdout: pl.DataFrame) -> str | None:
    """None if a model can be trained and judged, else the reason in words."""
    if holdout.height and train.is_empty():
        return ("no labelled window ends its 90-day horizon by the holdout's cutoff: a model needs one to train on "
                "and a newer one to judge it out of time, i.e. at least ~270 days of purchase history")
    if train.is_empty() or holdout.is_empty():
        n_windows = 0 if train.is_empty() and holdout.is_empty() else 1
        return (f"only {n_windows} labelled 90-day window(s) in the data: a model needs at least two (one to train on "
                "and a newer one to judge it out of time), i.e. at least ~270 days of purchase history")
    for name, part in (("training", train), ("holdout", holdout)):
        churned = int(part["churned"].sum())
        kept = part.height - churned
        if min(churned, kept) < MIN_CLASS_ROWS:
            return (f"the {name} window has {churned} churned and {kept} retained customers; at least "
                    f"{MIN_CLASS_ROWS} of each are needed for an honest estimate")
    return None
