"""Never-buyers (visited, never purchased): P(no purchase in the next 90 days) from what they did.

A logistic regression (scikit-learn) on their visits — how many, how recent, how long ago they
were first seen, the last-30/prior-60-day visit counts, browsing time — fitted on the never-buyers
of the training windows only (those whose 90-day labels end by the holdout's cutoff, each customer
weighing 1 however many windows they are in) and judged on those of the newest (out-of-time)
window against the constant prior (their training-window rate). It serves only if the 95 %
bootstrap CI of AUC(model) - 0.5 on that holdout lies above 0; otherwise every never-buyer gets
the constant and `cold_start_reason` says that their visits carried no signal. The fit is stored as JSON
(`models/<version>/cold_start.json`: coefficients, scaling, the gate's figures), never pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from ecom_assets.churn.evaluate import auc, bootstrap_auc_difference
from ecom_assets.churn.model import customer_weights
from ecom_assets.churn.risk_list import decile_of, probability_interval, support_counts
from ecom_assets.features.build import HORIZON_DAYS
from ecom_assets.io import write_json_atomic

FILE = "cold_start.json"
MIN_CLASS_ROWS = 20  # churned and converted never-buyers needed in each of training and holdout
# the visit figures the model reads; log1p because visit counts and day gaps are heavy-tailed
INPUTS = ["n_sessions", "days_since_last_session", "tenure_days", "sessions_30d", "sessions_prev_60d",
          "browsing_mean_sec"]
SUPPORT_BINS = 10


def _design(frame: pl.DataFrame, inputs: list[str], fill: dict[str, float]) -> np.ndarray:
    """log1p of each input, a missing value (no browsing time recorded) set to the training mean,
    plus a 0/1 missing indicator per input, so 'no data' is a signal of its own rather than a guess."""
    values = frame.select(pl.col(c).cast(pl.Float64).fill_nan(None).clip(lower_bound=0).log1p() for c in inputs)
    filled = values.with_columns(pl.col(c).fill_null(fill[c]) for c in inputs).to_numpy()
    missing = values.select(pl.col(c).is_null().cast(pl.Float64) for c in inputs).to_numpy()
    return np.hstack([filled, missing]).reshape(frame.height, 2 * len(inputs))


def _prior(train: pl.DataFrame, reason: str, extra: dict | None = None) -> dict:
    """The training never-buyers' no-purchase rate; `prior_rows` counts customers, not stacked rows
    (what its interval rests on)."""
    rate = float(train["churned"].mean()) if train.height else None
    return {"method": "prior", "prior": rate, "prior_rows": train["customer_id"].n_unique() if train.height else 0,
            "reason": reason, **(extra or {})}


def fit(training: pl.DataFrame) -> dict:
    """The cold-start scorer from `churn_training_set` (JSON-able dict).

    method "logistic": coefficients over `inputs` (log1p, standardised) and their missing
    indicators, with the holdout AUC and its CI against the constant; method "prior": the
    training-window never-buyers' no-purchase rate and the reason no model serves.
    """
    if training.is_empty() or "cold_start" not in training.columns:
        return {"method": "prior", "prior": None, "prior_rows": 0, "reason": "no labelled windows yet"}
    cold = training.filter(pl.col("cold_start"))
    holdout = cold.filter(pl.col("is_holdout"))
    train = cold.filter(~pl.col("is_holdout"))
    if holdout.height and "cutoff" in cold.columns:
        # only windows whose 90-day labels end by the holdout's cutoff: later ones would see its outcomes
        train = train.filter(pl.col("cutoff") + pl.duration(days=HORIZON_DAYS) <= holdout["cutoff"][0])
    for name, part in (("training", train), ("holdout", holdout)):
        churned = int(part["churned"].sum())
        if min(churned, part.height - churned) < MIN_CLASS_ROWS:
            return _prior(train, f"too few never-buyers to learn from their visits (the {name} windows have "
                          f"{part.height - churned} who later bought and {churned} who did not; {MIN_CLASS_ROWS} "
                          "of each are needed)")
    from sklearn.linear_model import LogisticRegression

    # a column without any value (a purchase log has no browsing time) carries nothing: left out
    inputs = [c for c in INPUTS if c in train.columns and train[c].null_count() < train.height]
    fill = {c: float(train[c].cast(pl.Float64).fill_nan(None).clip(lower_bound=0).log1p().mean()) for c in inputs}
    x_train = _design(train, inputs, fill)
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale[scale == 0] = 1.0
    y_train = train["churned"].to_numpy().astype(float)
    # a customer in many stacked windows weighs as much as one seen once
    lr = LogisticRegression(C=1.0, max_iter=500).fit((x_train - mean) / scale, y_train,
                                                      sample_weight=customer_weights(train))
    model = {"method": "logistic", "inputs": inputs, "fill": fill, "mean": mean.tolist(), "scale": scale.tolist(),
             "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}
    y = holdout["churned"].to_numpy().astype(float)
    p = _probability(model, holdout)
    diff = bootstrap_auc_difference(y, p, np.zeros_like(p))  # a constant ranks at AUC 0.5
    gate = {"holdout_auc": auc(y, p), "auc_diff_ci_low": diff["ci_low"], "auc_diff_ci_high": diff["ci_high"],
            "n_train": train.height, "n_holdout": holdout.height,
            "holdout_rate": float(y.mean()), "holdout_mean_predicted": float(p.mean())}
    if diff["ci_low"] <= 0:
        return _prior(train, f"their visits did not predict a first purchase out of time (holdout AUC "
                      f"{gate['holdout_auc']:.3f}, 95 % CI of the gain over a constant {diff['ci_low']:+.3f}…"
                      f"{diff['ci_high']:+.3f})", {"gate": gate})
    p_train = _probability(model, train)
    edges = np.unique(np.quantile(p_train, np.linspace(0, 1, SUPPORT_BINS + 1)))
    # customers (not stacked rows) per decile: a customer in five windows is one piece of evidence
    counts = np.bincount(decile_of(p_train, edges), weights=customer_weights(train), minlength=max(len(edges) - 1, 1))
    return {**model, "gate": gate, "support": {"edges": edges.tolist(), "n": counts.tolist()},
            "reason": f"scored from their visits (holdout AUC {gate['holdout_auc']:.3f} vs 0.5 for a constant)"}


def _probability(model: dict, frame: pl.DataFrame) -> np.ndarray:
    x = (_design(frame, model["inputs"], model["fill"]) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    return 1.0 / (1.0 + np.exp(-(x @ np.asarray(model["coef"]) + model["intercept"])))


def save(models_dir: Path, version: str, model: dict) -> None:
    write_json_atomic(model, Path(models_dir) / version / FILE)


def load(models_dir: Path, version: str | None, baseline: dict | None) -> dict:
    """The stored scorer of `version`; a version trained before it existed falls back to the
    baseline's cold-start prior (the same rate the scorer would serve without signal)."""
    path = Path(models_dir) / version / FILE if version else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    prior = baseline.get("cold_start_prior") if baseline else None
    return {"method": "prior", "prior": prior, "prior_rows": (baseline or {}).get("cold_start_rows", 0),
            "reason": "scored at the never-buyers' training-window rate (this model version has no visit model)"
            if prior is not None else "no labelled windows yet"}


def basis_words(model: dict) -> str:
    """The never-buyers' `score_basis`: what scored them and how well it ranked the newest window (out of time),
    or why nothing did."""
    if model["method"] == "logistic":
        return f"never-buyers' visit model, holdout AUC {model['gate']['holdout_auc']:.3f} (a constant: 0.5)"
    if model["prior"] is None:
        return f"not scored: {model['reason']}"
    rate = f"the never-buyers' rate {model['prior']:.2f} for every never-buyer"
    if "gate" in model:  # judged on the holdout, and their visits ranked no better than a constant
        return f"no skill: {rate} (their visits ranked no better than chance on the holdout: AUC " \
               f"{model['gate']['holdout_auc']:.3f})"
    return f"{rate} ({model['reason']})"


def score(model: dict, cold: pl.DataFrame) -> pl.DataFrame:
    """customer_id, churn_probability, churn_probability_low/high (95 % Wilson interval given the
    training never-buyers the estimate rests on), cold_start_reason ("never purchased: 3 visits,
    last 12 days ago; …") for the never-buyers in `cold` (rows of `customer_features`)."""
    if model["method"] == "logistic":
        p = _probability(model, cold)
        n = support_counts(p, model["support"])
        how = "scored from their visits"
    else:
        p = np.full(cold.height, np.nan if model["prior"] is None else model["prior"], dtype=float)
        n = np.full(cold.height, float(model["prior_rows"]))
        how = ("no signal in their visits: " if "gate" in model or "too few" in model["reason"] else "") + model["reason"]
    visits = pl.col("n_sessions").cast(pl.Int64)
    days = pl.col("days_since_last_session").cast(pl.Int64)
    when = (pl.when(days == 0).then(pl.lit("today")).when(days == 1).then(pl.lit("1 day ago"))
            .otherwise(days.cast(pl.String) + pl.lit(" days ago")))
    reason = pl.concat_str(
        pl.lit("never purchased: "), visits.cast(pl.String),
        pl.when(visits == 1).then(pl.lit(" visit, ")).otherwise(pl.lit(" visits, last ")), when,
        pl.lit(f"; {how}"))
    low, high = probability_interval(p, n)
    return cold.select("customer_id", cold_start_reason=reason).with_columns(
        churn_probability=pl.Series(p, dtype=pl.Float64).fill_nan(None),
        churn_probability_low=pl.Series(low, dtype=pl.Float64).fill_nan(None),
        churn_probability_high=pl.Series(high, dtype=pl.Float64).fill_nan(None))
