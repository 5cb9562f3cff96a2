"""Train, calibrate, gate and score the churn model (pure functions: frames in, results out).

Windows come from `churn_training_set`: the newest is the out-of-time holdout and is used only
for the metrics and the gates; the second newest is the validation window for early stopping
and calibration; the older ones are the training data. With only two windows, a fixed 20 %
of the training customers (by id hash) serves as validation instead.
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
PARAMS = {
    "objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "max_depth": 4,
    "eta": 0.15, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 5, "lambda": 1.0,
    "max_cat_to_onehot": 1, "seed": SEED, "nthread": NTHREAD,
}
MAX_ROUNDS = 600
MAX_TRAIN_ROWS = 300_000  # a seeded sample beyond this: more rows add seconds, not skill
EARLY_STOPPING = 30
LEAKAGE_AUC = 0.97
MIN_CLASS_ROWS = 20
MAX_LEVELS = 30  # rarer categorical levels are pooled into "other"
RISK_TIERS = [(0.75, "high"), (0.5, "medium"), (0.0, "low")]
RECENCY_EDGES = [0, 30, 60, 90, 120, 180, 270, 365, 540]


@dataclass
class TrainedModel:
    booster: object  # xgboost.Booster trimmed to the best iteration
    features: list[str]
    categories: dict[str, list[str]]
    calibration: dict  # isotonic breakpoints {"x": [...], "y": [...]}
    best_iteration: int


@dataclass
class Evaluation:
    status: str
    status_reason: str
    metrics: dict
    single_feature_auc: dict = field(default_factory=dict)
    leaking_features: list[str] = field(default_factory=list)


def category_levels(frame: pl.DataFrame) -> dict[str, list[str]]:
    """Fixed levels per categorical feature (most frequent first), stored in the model card."""
    levels = {}
    for col in CATEGORICAL_FEATURES:
        if col in frame.columns:
            counts = frame[col].drop_nulls().value_counts(sort=True)
            levels[col] = sorted(counts[col].head(MAX_LEVELS).to_list()) + ["other"]
    return levels


def design_matrix(frame: pl.DataFrame, features: list[str], categories: dict[str, list[str]], label=None):
    """An XGBoost DMatrix in the model's feature order with categoricals coded by the stored levels
    (null -> missing, a level the model never saw -> "other"), so the column order or an unseen level
    in the scoring data can never shift the codes. Built from one float32 array (XGBoost's own
    precision): no pandas frame in between, which cost more than the prediction itself at 300k rows."""
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
            other = levels.index("other") if "other" in levels else None
            # replace_strict would send null to the default: null stays missing
            codes = values.replace_strict(levels, list(range(len(levels))), default=other, return_dtype=pl.Float32)
            columns.append(pl.when(values.is_not_null()).then(codes).alias(col))
        else:
            columns.append(pl.col(col).cast(pl.Float32).fill_nan(None))
    # one select (columns converted in parallel), row-major as XGBoost stores it: at 310k rows the array
    # takes 0.04 s and the DMatrix from it 0.075 s (0.13 s together when built column by column)
    matrix = frame.select(columns).to_numpy(order="c") if columns else np.empty((frame.height, 0), dtype=np.float32)
    return xgb.DMatrix(matrix, label=label, feature_names=features, enable_categorical=True, nthread=NTHREAD,
                       feature_types=["c" if col in categories else "q" for col in features])


def _validation_split(train: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    windows = sorted(train["window"].unique().to_list())
    if len(windows) >= 2:
        return train.filter(pl.col("window") != windows[0]), train.filter(pl.col("window") == windows[0])
    bucket = train["customer_id"].hash(seed=SEED) % 5
    return train.filter(bucket != 0), train.filter(bucket == 0)


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(raw, y)
    return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def apply_calibration(raw: np.ndarray, calibration: dict) -> np.ndarray:
    return np.interp(raw, calibration["x"], calibration["y"])


def train_model(train: pl.DataFrame) -> TrainedModel:
    import xgboost as xgb

    features = feature_columns(train)
    if train.height > MAX_TRAIN_ROWS:
        train = train.sample(MAX_TRAIN_ROWS, seed=SEED)
    fit, valid = _validation_split(train)
    categories = category_levels(fit)
    dfit = design_matrix(fit, features, categories, label=fit["churned"].to_numpy())
    dvalid = design_matrix(valid, features, categories, label=valid["churned"].to_numpy())
    booster = xgb.train(PARAMS, dfit, MAX_ROUNDS, evals=[(dvalid, "validation")],
                        early_stopping_rounds=EARLY_STOPPING, verbose_eval=False)
    best = int(booster.best_iteration)
    booster = booster[: best + 1]  # keep only the trees up to the best iteration
    raw_valid = booster.predict(dvalid)
    calibration = fit_isotonic(raw_valid, valid["churned"].to_numpy().astype(float))
    calibration["support"] = _bin_support(raw_valid, valid["churned"].to_numpy())
    return TrainedModel(booster, features, categories, calibration, best)


def _bin_support(raw: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Validation rows and churn rate per raw-score decile: what each prediction's 95 % interval rests on."""
    edges = np.unique(np.quantile(raw, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges[1:-1], raw, side="right"), 0, max(len(edges) - 2, 0))
    n = np.bincount(which, minlength=len(edges) - 1)
    rate = np.bincount(which, weights=y.astype(float), minlength=len(edges) - 1) / np.maximum(n, 1)
    return {"edges": edges.tolist(), "n": n.tolist(), "rate": rate.tolist()}


def predict(model: TrainedModel, frame: pl.DataFrame, with_drivers: bool = False):
    """(calibrated probability, raw probability, top-3 drivers or None)."""
    matrix = design_matrix(frame, model.features, model.categories)
    model.booster.set_param({"nthread": NTHREAD})
    drivers = None
    if with_drivers:
        # contributions (+ the bias column) sum to the margin, so one pass gives both scores and drivers
        contribs = model.booster.predict(matrix, pred_contribs=True, approx_contribs=True)
        raw = (1.0 / (1.0 + np.exp(-contribs.sum(axis=1, dtype=np.float64)))).astype(np.float32)
        drivers = top_drivers(contribs[:, :-1], model.features)
    else:
        raw = model.booster.predict(matrix)
    return apply_calibration(raw, model.calibration), raw, drivers


def top_drivers(contribs: np.ndarray, features: list[str], k: int = 3) -> pl.Series:
    """The k features that move each prediction most, e.g. 'days_since_last_purchase ↑' (raises risk).

    One gather from a label table (feature × direction) and a reshape into lists, so 500k
    customers cost k argmax passes, not 1.5M Python strings.
    """
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


def recency_baseline(train: pl.DataFrame) -> dict:
    """Churn rate by days-since-last-purchase band on the training windows (the baseline and fallback)."""
    labelled = train.filter(~pl.col("cold_start"))
    band = labelled["days_since_last_purchase"].cut(RECENCY_EDGES[1:], left_closed=False).cast(pl.String)
    rates = labelled.with_columns(band=band).group_by("band").agg(n=pl.len(), rate=pl.col("churned").mean())
    cold = train.filter(pl.col("cold_start"))
    overall = float(labelled["churned"].mean()) if labelled.height else None
    return {
        "edges": RECENCY_EDGES[1:],
        "rates": {r["band"]: r["rate"] for r in rates.to_dicts()},
        "overall_rate": overall,
        # customers who visited but never bought: their empirical 90-day no-purchase rate
        "cold_start_prior": float(cold["churned"].mean()) if cold.height else overall,
        "cold_start_rows": cold.height,
    }


def baseline_probability(frame: pl.DataFrame, baseline: dict) -> np.ndarray:
    band = frame["days_since_last_purchase"].cut(baseline["edges"], left_closed=False).cast(pl.String)
    rates = band.replace_strict(baseline["rates"], default=baseline["overall_rate"], return_dtype=pl.Float64)
    return rates.fill_null(baseline["overall_rate"]).to_numpy()


def evaluate_holdout(model: TrainedModel, holdout: pl.DataFrame, baseline: dict) -> tuple[Evaluation, np.ndarray]:
    """Holdout metrics beside the recency baseline, the skill gate and the leakage guard."""
    y = holdout["churned"].to_numpy().astype(float)
    p, _, _ = predict(model, holdout)
    p_base = baseline_probability(holdout, baseline)
    recency = holdout["days_since_last_purchase"].to_numpy()
    metrics = {**evaluate.classification_metrics(y, p), **evaluate.classification_metrics(y, p_base, "_baseline")}
    metrics["auc_out_of_time"] = metrics.pop("auc")
    metrics["auc_baseline_recency"] = evaluate.auc(y, recency)
    diff = evaluate.bootstrap_auc_difference(y, p, recency)
    metrics.update({"auc_diff": diff["auc_diff"], "auc_diff_ci_low": diff["ci_low"], "auc_diff_ci_high": diff["ci_high"],
                    "n_holdout": int(y.size), "base_rate": float(y.mean()),
                    "calibration_table": evaluate.calibration_table(y, p)})
    single = single_feature_auc(holdout, model.features)
    leaking = sorted(f for f, a in single.items() if a >= LEAKAGE_AUC)
    auc_m, auc_b = metrics["auc_out_of_time"], metrics["auc_baseline_recency"]
    ci = f"95 % CI of the difference {diff['ci_low']:+.3f}…{diff['ci_high']:+.3f}"
    if auc_m >= LEAKAGE_AUC or leaking:
        named = ", ".join(f"{f} (AUC {single[f]:.3f} alone)" for f in leaking) or f"the model as a whole (AUC {auc_m:.3f})"
        ev = Evaluation("leakage_suspected", f"holdout AUC {auc_m:.3f}: suspected label leakage from {named}; "
                        "this model is not used and the previous champion keeps serving", metrics, single, leaking)
    elif diff["ci_low"] > 0:
        ev = Evaluation("champion", f"holdout AUC {auc_m:.3f} beats the recency-only baseline {auc_b:.3f} ({ci})",
                        metrics, single)
    else:
        ev = Evaluation("no_skill", f"holdout AUC {auc_m:.3f} does not beat the recency-only baseline {auc_b:.3f} "
                        f"({ci} includes 0): the data carries no usable churn signal beyond recency; the model "
                        "is not promoted and the previous champion (or the baseline) keeps serving", metrics, single)
    return ev, p


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
