"""`churn_model`, `churn_predictions`, `churn_risk_list` and the retrain / scoring jobs."""

from datetime import datetime, timezone
from importlib.metadata import version as package_version

import dagster as dg
import numpy as np
import polars as pl

from ecom_assets.automation import REFRESH_FIRST_MODEL, REFRESH_PER_DROP
from ecom_assets.churn import cold_start, registry, risk_list
from ecom_assets.churn import model as churn
from ecom_assets.churn.model import NO_SKILL_TIER
from ecom_assets.exports import write_safe_csv
from ecom_assets.features import btyd, churn_training_set, customer_features
from ecom_assets.io import write_parquet_atomic
from ecom_assets.io import columns_in
from ecom_assets.metadata import column_schema, md_table
from ecom_assets.plots import png_markdown
from ecom_assets.schemas import sorted_by_id
from ecom_assets.settings import EcomSettings

OWNER = "team:data-science"
SKILL_CHECK = "churn_model_has_skill"
LEAKAGE_CHECK = "churn_model_no_leakage"
TRIGGER_TAG = "ecom/trigger"
TRIGGER_DETAIL_TAG = "ecom/trigger_detail"
# the latest version could not be trained (too little history) and the data has changed since: try again
MORE_HISTORY = "more_history"
BASELINE_PREFIX = "baseline-"  # + the classic that serves without a champion: baseline-recency, baseline-bgnbd
# without a champion and with a best classic that ranks the holdout no better than chance: buyers get the base rate
NO_SKILL_VERSION = "base-rate"
PREDICTION_COLUMNS = {
    "customer_id": "string",
    "churn_probability": "float64 - calibrated P(no purchase in the next 90 days)",
    "churn_probability_low": "float64 - lower bound of its 95 % Wilson interval, given the customers the "
    "probability was estimated from (calibration decile; never-buyers: the training never-buyers)",
    "churn_probability_high": "float64 - upper bound of the same interval",
    "risk_tier": "string - high >= 0.75 > medium >= 0.5 > low; unscored without any model; no_skill for buyers "
    "served the base rate (no model and no classic ranks them better than chance on the holdout)",
    "top_drivers": "list[string] - 3 features moving this prediction most (↑ raises risk)",
    "cold_start_reason": "string - never-buyers only: what they did and how they were scored "
    "('never purchased: 3 visits, last 12 days ago; scored from their visits')",
    "model_version": "string - serving version, 'baseline-recency' / 'baseline-bgnbd' (calibrated classic), "
    "'base-rate' (nothing ranks better than chance: every buyer gets the labelled customers' churn rate) or 'none'",
    "as_of": "date",
    "cold_start": "bool - visited, never purchased: scored from their visits (cold_start.py) or the prior",
    "p_alive": "float64 - BG/NBD P(still active) as of as_of (null: never purchased or no BG/NBD fit)",
    "expected_purchases_90d": "float64 - BG/NBD expected purchases in the next 90 days (null: as p_alive)",
    "score_basis": "string - what scored the row and how well it ranked the holdout (model card figures), or why "
    "it is not scored ('XGBoost model v0003, holdout AUC 0.752 (the best classic, bgnbd: 0.733)')",
}
RISK_LIST_COLUMNS = {
    "rank": "int64 - position (at_risk first, then by value at risk); customers equal on every ordering key "
    "share a rank",
    "customer_id": "string",
    "status": "string - at_risk (churn probability >= 0.5) | active | lapsed (no purchase for > 2x their "
    "typical gap and > 180 days: win-back, not retention) | never_purchased | unscored",
    "value_at_risk": "float64 - churn_probability x expected_value_90d, money, 2 decimals (empty for never-buyers "
    "while fewer than 30 one-order buyers show what a first order is worth)",
    "expected_value_90d": "float64 - expected spend in the next 90 days = expected_purchases_90d x spend_per_order",
    "expected_purchases_90d": "float64 - BTYD expectation when available, else (1 - churn probability) x "
    "the customer's own purchase rate over 90 days (at least 1); never-buyers: 1 - churn probability (one first order)",
    "spend_per_order": "float64 - Gamma-Gamma expected spend per order (AOV shrunk to the population mean); "
    "never-buyers: the mean first order of the customers with one order so far (empty when fewer than 30)",
    "churn_probability": "float64 - 4 decimals",
    "churn_probability_low": "float64 - 95 % interval, low",
    "churn_probability_high": "float64 - 95 % interval, high",
    "p_alive": "float64 - BG/NBD probability the customer is still active (null: never purchased, no fit, "
               "no churn score beside it: an unscored row's P(alive) was never checked against outcomes, or no skill: "
               "nothing, BG/NBD included, ranked the holdout better than chance); "
               "empty for a buyer without a repeat purchase (one purchase day so far), whose P(alive) is 1.0 by the "
               "model's construction (it lets customers drop out only right after a repeat purchase): "
               "churn_probability is their score",
    "risk_tier": "string - high | medium | low; no_skill (every buyer got the base rate) | unscored",
    "score_basis": "string - what scored this row and how well it ranked the newest labelled window out of time "
    "(model card figures, never training ones): 'XGBoost model v0003, holdout AUC 0.752 (the best classic, bgnbd: "
    "0.733)', 'BG/NBD baseline (repeat-purchase model), holdout AUC 0.733 (the churn model did not beat it)', "
    "'no skill: base rate 0.62 for every buyer (nothing ranked better than chance on the holdout: …)', the "
    "never-buyers' visit model or rate; unscored rows: 'not scored: ' and why (e.g. a young shop: too little "
    "history for any 90-day outcome; no ordering is claimed then, the list keeps its recency order)",
    "drivers": "string - plain words, each with the direction of this customer's own contribution (raises / lowers "
    "risk); at_risk customers: those raising risk first, and when none does, why they are at risk all the same "
    "(most customers here do not buy again within 90 days, or smaller factors not listed add up); an empty window "
    "is said as such ('no visits in the last 30 days'); the customer's own state is said with the direction "
    "('past their usual gap between purchases (raises risk)', 'more repeat purchases than most repeat buyers'). "
    "BG/NBD baseline: its inputs per customer (recency against their own usual gap, repeat purchases, days since "
    "the first purchase), each the change in P(no purchase in 90 days) when it is set to the reference",
    "cold_start_reason": "string - never-buyers: visits, last visit, how scored; customers known only from the "
    "customers file: 'not scored: known only from the customers file (signed up …), no visit and no purchase yet'",
    "days_since_last_purchase": "float64",
    "days_since_last_visit": "float64",
    "model_version": "string",
    "as_of": "date",
    "cold_start": "bool",
}


def _library_versions() -> dict:
    return {name: package_version(name) for name in ("xgboost", "polars", "scikit-learn", "dagster")
            if _installed(name)}


def _installed(name: str) -> bool:
    try:
        package_version(name)
        return True
    except Exception:  # noqa: BLE001 — a missing distribution is simply not listed
        return False


def _plots(card: dict, trained: churn.TrainedModel | None) -> dict:
    out = {}
    table = card.get("metrics", {}).get("calibration_table")
    if table:
        def calibration(ax):
            ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
            ax.plot([r["mean_predicted"] for r in table], [r["observed_rate"] for r in table], "o-")
            ax.set_xlabel("predicted churn probability")
            ax.set_ylabel("observed churn rate")
        out["calibration_plot"] = dg.MetadataValue.md(png_markdown(calibration, "Calibration on the holdout"))
    if trained is not None:
        gain = trained.booster.get_score(importance_type="gain")
        top = sorted(gain.items(), key=lambda kv: kv[1])[-12:]
        if top:
            def importance(ax):
                ax.barh([k for k, _ in top], [v for _, v in top])
                ax.set_xlabel("gain")
            out["feature_importance_plot"] = dg.MetadataValue.md(png_markdown(importance, "Feature importance", (6, 4)))
    return out


def _champion_scores(settings: EcomSettings, holdout: pl.DataFrame) -> tuple[str | None, np.ndarray | None, str]:
    """(the serving champion's version or None, its scores of the holdout rows, why it has none): a champion
    built on other features cannot score these rows."""
    current = registry.champion_version(settings.models)
    if current is None:
        return None, None, "no champion"
    try:
        champion, _ = registry.load_model(settings.models, current)
        return current, churn.predict(champion, holdout)[0], ""
    except (ValueError, FileNotFoundError) as err:
        return current, None, str(err)


def _compare_with_champion(settings: EcomSettings, holdout: pl.DataFrame, p_new: np.ndarray) -> dict | None:
    """Challenger vs the serving champion on the same newest holdout (bootstrap CI of the AUC difference)."""
    from ecom_assets.churn.evaluate import auc, bootstrap_auc_difference

    current, p_old, why = _champion_scores(settings, holdout)
    if current is None:
        return None
    if p_old is None:
        return {"champion": current, "comparable": False, "note": why, "challenger_not_worse": True}
    y = holdout["churned"].to_numpy().astype(float)
    diff = bootstrap_auc_difference(y, p_new, p_old)
    return {"champion": current, "comparable": True, "champion_auc": auc(y, p_old), "auc_diff": diff["auc_diff"],
            "ci_low": diff["ci_low"], "ci_high": diff["ci_high"],
            # not worse = not significantly worse: the CI of (challenger - champion) reaches 0 or above
            "challenger_not_worse": diff["ci_high"] >= 0}


def _recheck_champion(settings: EcomSettings, holdout: pl.DataFrame, baseline: dict) -> dict | None:
    """The serving champion on the newest holdout when a challenger is not promoted, against the best classic
    there (bootstrap CI of AUC(champion) - AUC(classic), as the skill gate): its card's figures are from an older
    holdout. `retire` when the classic ranks the newest holdout significantly better (the CI lies below 0):
    then no champion serves and the calibrated classic of this version does, as it would for a new shop."""
    from ecom_assets.churn.evaluate import auc, bootstrap_auc_difference

    best = baseline.get("classic")
    if best is None or holdout.is_empty() or holdout["churned"].n_unique() < 2:
        return None
    current, p_old, why = _champion_scores(settings, holdout)
    if current is None:
        return None
    if p_old is None:
        return {"champion": current, "comparable": False, "note": why, "retire": False}
    y, classic = holdout["churned"].to_numpy().astype(float), churn.classic_score(holdout, best)
    diff = bootstrap_auc_difference(y, p_old, classic)
    return {"champion": current, "comparable": True, "holdout_cutoff": str(holdout["cutoff"][0]),
            "champion_auc": auc(y, p_old), "best_classic": best, "best_classic_auc": auc(y, classic),
            "auc_diff": diff["auc_diff"], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"],
            "retire": diff["ci_high"] < 0}


def _champion_words(check: dict) -> str:
    """`_recheck_champion`'s verdict in one clause for the card's status_reason."""
    if not check["comparable"]:
        return f"champion {check['champion']} keeps serving (it cannot score the newest holdout: {check['note']})"
    figures = (f"on the newest holdout ({check['holdout_cutoff']}) its AUC {check['champion_auc']:.3f} vs "
               f"{check['best_classic']} {check['best_classic_auc']:.3f}, 95 % CI of the difference "
               f"{check['ci_low']:+.3f}…{check['ci_high']:+.3f}")
    if check["retire"]:
        return (f"champion {check['champion']} retired: {figures} lies below 0, so the calibrated classic "
                f"{check['best_classic']} serves until a model beats it")
    return f"champion {check['champion']} keeps serving: {figures}"


def split_windows(training: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(gated training rows, holdout rows, every labelled row) of the purchasers. The gated model trains
    only on windows whose 90-day label horizon ends by the holdout's cutoff: a later window's labels
    come from the holdout's feature period (label leakage into the gate)."""
    if training.is_empty():
        return training, training, training
    purchasers = training.filter(~pl.col("cold_start"))
    holdout = purchasers.filter(pl.col("is_holdout"))
    if holdout.is_empty():
        return purchasers.filter(~pl.col("is_holdout")), holdout, purchasers
    horizon_end = pl.col("cutoff") + pl.duration(days=churn.HORIZON_DAYS)
    gated = purchasers.filter(~pl.col("is_holdout") & (horizon_end <= holdout["cutoff"][0]))
    return gated, holdout, purchasers


def _model_summary(trained: churn.TrainedModel) -> dict:
    return {"best_iteration": trained.best_iteration, "features": len(trained.features), **trained.training}


def training_fingerprint(training: pl.DataFrame) -> str | None:
    """`churn.fingerprint` of the training set; None while it is empty (nothing labelled yet)."""
    return churn.fingerprint(training) if not training.is_empty() else None


def _data_state(current_features: pl.DataFrame | None) -> dict:
    """What the current data looked like at training time: the features' as-of date and fingerprint (the same
    `feature_fingerprint` each prediction batch logs, so the retrain sensor can tell when the data changed)."""
    if current_features is None:
        return {}
    as_of = str(current_features["as_of"][0]) if "as_of" in current_features.columns and current_features.height else None
    return {"data_as_of": as_of, "features_fingerprint": churn.fingerprint(current_features)}


def unchanged_since(settings: EcomSettings, training: pl.DataFrame, customer_features: pl.DataFrame) -> dict | None:
    """The latest version's card, with this check recorded in it (`last_recheck`), when it could not be trained
    and the training data is the same as then: a `more_history` request then makes no new version. None when a
    new version is due."""
    latest = registry.latest_card(settings.models)
    if registry.could_not_train(settings.models, latest) is None:
        return None
    fingerprint = training_fingerprint(training)
    if fingerprint != latest.get("data_fingerprint"):
        return None
    unchanged = f"fingerprint {fingerprint}" if fingerprint else "still no labelled 90-day window"
    latest["last_recheck"] = {"at": datetime.now(timezone.utc).isoformat(), **_data_state(customer_features),
                              "outcome": f"training data unchanged ({unchanged}): no new version"}
    registry.write_card(settings.models, latest["version"], latest)
    return latest


def train_and_register(settings: EcomSettings, training: pl.DataFrame, trigger: str, detail: str,
                       current_features: pl.DataFrame | None = None):
    """Train, judge, save and maybe promote a new version. Returns (card, served model or None)."""
    models = settings.models
    version = registry.next_version(models)
    card = {"version": version, "created_at": datetime.now(timezone.utc).isoformat(), "trigger": trigger,
            "trigger_detail": detail, "promoted": False, "params": churn.PARAMS, "metrics": {},
            "library_versions": _library_versions(), "champion_before": registry.champion_version(models),
            "data_fingerprint": training_fingerprint(training), **_data_state(current_features)}
    train, holdout, labelled = split_windows(training)
    cold = training.filter(pl.col("cold_start") & ~pl.col("is_holdout")) if not training.is_empty() else training
    # never-buyers have a scorer of their own, gated on the same holdout window
    never_buyers = cold_start.fit(training)
    cold_start.save(models, version, never_buyers)
    card["cold_start"] = {k: never_buyers[k] for k in ("method", "reason", "gate") if k in never_buyers}
    if not training.is_empty():
        card.update(training_cutoffs=sorted({str(c) for c in train["cutoff"].to_list()}),
                    holdout_cutoff=str(holdout["cutoff"][0]) if holdout.height else None,
                    windows_refit_only=sorted({str(c) for c in labelled.filter(~pl.col("is_holdout"))["cutoff"].to_list()}
                                              - {str(c) for c in train["cutoff"].to_list()}))
    problem = churn.has_enough_history(train, holdout)
    if problem:
        # no gate to pass: the classic is calibrated on whatever labelled window there is
        older = labelled.filter(~pl.col("is_holdout")) if labelled.height else labelled
        base_rows = next((rows for rows in (train, older, holdout) if rows.height), None)
        baseline = churn.fit_baseline(base_rows, holdout, cold) if base_rows is not None else None
        usable = baseline is not None and baseline["classic"] is not None
        # the data it was judged on, said with the reason: more data may come, and this text must not read as current
        seen = f"data as of {card['data_as_of']}" if card.get("data_as_of") else "no data yet"
        fallback = (f"the calibrated classic baseline ({baseline['classic']})" if usable else "no score")
        if usable and not churn.classic_has_skill(baseline):
            fallback = f"the base rate ({churn.no_skill_words(baseline)})"
        card.update(status="insufficient_history", status_reason=f"{seen}: {problem}; predictions fall back to "
                    f"{fallback}.", history_problem=f"{problem} ({seen})",
                    baseline_skill=baseline.get("classic_skill") if baseline else None)
        if usable:
            registry.save_baseline(models, version, baseline)
        registry.write_card(models, version, card)
        return card, None
    baseline = churn.fit_baseline(train, holdout, cold)
    gated = churn.train_model(train)
    evaluation, p_new = churn.evaluate_holdout(gated, holdout, baseline)
    reason = evaluation.status_reason
    if evaluation.status != "champion" and not churn.classic_has_skill(baseline):
        reason += f"; without a champion, {churn.no_skill_words(baseline)}"
    card.update(status=evaluation.status, status_reason=reason, metrics=evaluation.metrics,
                baseline_skill=baseline["classic_skill"], baseline_classic=baseline["classic"], gated_model=_model_summary(gated),
                dropped_features=gated.dropped_features,
                single_feature_auc=evaluation.single_feature_auc, leaking_features=evaluation.leaking_features)
    served = gated
    if evaluation.status == "champion":
        # the recipe passed: refit it on every labelled window, the holdout included, before it serves
        served = churn.train_model(labelled)
        card["served_model"] = {"refit_on_every_labelled_window": True, **_model_summary(served),
                                "note": "calibrated on its validation customers' newest window (the holdout); its own "
                                "out-of-time figures come from model_performance once 90 days of outcomes exist"}
    else:
        card["served_model"] = {"refit_on_every_labelled_window": False, "note": "not promoted: not refitted"}
    registry.save_model(models, version, served, baseline)
    card.update(features=[{"name": f, "dtype": "categorical" if f in served.categories else "float"}
                          for f in served.features],
                categories=served.categories, best_iteration=served.best_iteration,
                dropped_features={**gated.dropped_features, **served.dropped_features})
    # drift reference: the snapshot the model goes live on (same season as its first scoring batch)
    source = current_features if current_features is not None and not current_features.is_empty() else holdout
    reference = source.filter(~pl.col("cold_start")).select("customer_id", *(f for f in served.features if f in source.columns))
    write_parquet_atomic(reference.sample(min(reference.height, settings.drift_sample_rows), seed=churn.SEED),
                         registry.reference_features_path(models, version))
    card["reference_as_of"] = str(source["as_of"][0]) if "as_of" in source.columns and source.height else None
    if evaluation.status == "champion":
        comparison = _compare_with_champion(settings, holdout, p_new)
        card["champion_comparison"] = comparison
        if comparison and not comparison["challenger_not_worse"]:
            card.update(status="not_promoted", status_reason=(
                f"{evaluation.status_reason}, but it is worse than champion {comparison['champion']} on the same "
                f"holdout (AUC {comparison['champion_auc']:.3f}; difference {comparison['auc_diff']:+.3f}, 95 % CI "
                f"{comparison['ci_low']:+.3f}…{comparison['ci_high']:+.3f}): the champion keeps serving"))
        else:
            card["promoted"] = True
            registry.promote(models, version, f"trigger={trigger}: {evaluation.status_reason}")
    else:
        check = _recheck_champion(settings, holdout, baseline)
        if check is not None:
            card["champion_on_newest_holdout"] = check
            card["status_reason"] += f"; {_champion_words(check)}"
            if check["retire"]:
                registry.retire(models, f"trigger={trigger}, {version}: {_champion_words(check)}")
    registry.write_card(models, version, card)
    return card, served


def _metrics_table(metrics: dict) -> str:
    names = ["auc", "pr_auc", "brier", "log_loss", "top_decile_precision", "top_decile_lift", "ece"]
    rows = []
    for name in names:
        model_key = "auc_out_of_time" if name == "auc" else name
        if model_key in metrics:
            rows.append({"metric": name, "model": metrics[model_key],
                         f"classic baseline ({metrics.get('best_classic')}, calibrated)": metrics.get(f"{name}_baseline")})
    for name in churn.CLASSICS:
        if f"auc_classic_{name}" in metrics:
            rows.append({"metric": f"auc of {name} alone", "model": None,
                         f"classic baseline ({metrics.get('best_classic')}, calibrated)": metrics[f"auc_classic_{name}"]})
    return md_table(pl.DataFrame(rows)) if rows else "_(no metrics: no model was trained)_"


def _calibration_metadata(card: dict) -> dict:
    """Reliability per decile, ECE and the risk tiers' observed churn on the holdout, for the UI."""
    metrics = card.get("metrics", {})
    if "calibration_table" not in metrics:
        return {}
    tiers_word = "monotone" if metrics["tiers_monotone"] else "NOT monotone (high > medium > low fails on the holdout)"
    return {
        "ece_holdout": float(metrics["ece"]),
        "ece_holdout_classic_baseline": float(metrics["ece_baseline"]),
        "reliability_holdout": dg.MetadataValue.md(md_table(pl.DataFrame(metrics["calibration_table"]))),
        "risk_tiers_holdout": dg.MetadataValue.md(md_table(pl.DataFrame(metrics["tiers_holdout"]))),
        "risk_tiers_monotone": f"model: {tiers_word}; classic baseline: "
        + ("monotone" if metrics["baseline_tiers_monotone"] else "NOT monotone"),
    }


@dg.asset(
    group_name="churn",
    owners=[OWNER],
    kinds={"xgboost", "polars"},
    description=(
        "XGBoost churn model (no purchase in the next 90 days) trained on the stacked windows of "
        "`churn_training_set` whose label horizon ends by the holdout's cutoff (each customer weighted 1 across "
        "windows), early-stopped on 20 % of the customers and calibrated (centered isotonic: strictly monotone) on "
        "their newest window; judged on the newest (out-of-time) window against the best classic baseline there "
        "(recency or BG/NBD P(no purchase in 90 days)). Promoted to champion only if the 95 % bootstrap CI of "
        "AUC(model) - AUC(best classic) is above 0 and it is not significantly worse than the current champion; "
        "then refitted on every labelled window before it serves. Reliability per decile, ECE and the risk tiers' "
        "observed churn on the holdout are in the card. Saved as models/<version>/model.json + calibration.json + "
        "baseline.json + model_card.json (no pickle). A run tagged `more_history` (the latest version could not "
        "be trained and the data changed since) makes a new version only if the training set's fingerprint "
        "differs from that version's `data_fingerprint`; else the version stands and its card records the recheck."
    ),
    tags=REFRESH_FIRST_MODEL,
    metadata=column_schema({"version": "string", "status": "champion | no_skill | leakage_suspected | "
                            "insufficient_history | not_promoted", "metrics": "holdout metrics vs the baseline",
                            "trigger": "initial | more_history | drift | performance | manual | schedule",
                            "new_version": "whether this run made a version (a `more_history` attempt on the "
                            "unchanged training data of a version that could not be trained makes none)",
                            "data_as_of": "as-of date of the data the version was trained on"}),
    check_specs=[
        dg.AssetCheckSpec(SKILL_CHECK, asset="churn_model",
                          description="the model beats the best classic baseline (recency or BG/NBD) out of time "
                          "(WARN: no skill is a normal outcome)"),
        # not blocking: a suspected model never serves (the previous champion or the calibrated classic does),
        # so the risk list, segments and dashboard are still built; the failed ERROR check says why
        dg.AssetCheckSpec(LEAKAGE_CHECK, asset="churn_model",
                          description="no feature (or the model) reaches holdout AUC >= 0.97 while beating the best "
                          "classic by 0.02 or more (ERROR when violated: the model never serves)"),
    ],
)
def churn_model(context: dg.AssetExecutionContext, settings: EcomSettings, churn_training_set: pl.DataFrame,
                customer_features: pl.DataFrame):
    tags = context.run.tags if context.run else {}
    # untagged runs: the project's first model is `initial`, any later one was asked for by hand
    trigger = tags.get(TRIGGER_TAG) or ("manual" if registry.list_versions(settings.models) else "initial")
    # an automatic `more_history` attempt on the same training data would only repeat the last verdict
    kept = unchanged_since(settings, churn_training_set, customer_features) if trigger == MORE_HISTORY else None
    if kept is not None:
        card, trained = kept, None
        new_version = f"no: {kept['version']} stands ({kept['last_recheck']['outcome']})"
    else:
        card, trained = train_and_register(settings, churn_training_set, trigger,
                                           tags.get(TRIGGER_DETAIL_TAG, ""), customer_features)
        new_version = f"yes (trigger {trigger})"
    serving = registry.champion_version(settings.models)
    metrics = card.get("metrics", {})
    yield dg.Output(card, metadata={
        "version": card["version"],
        "new_version": new_version,
        "status": card["status"],
        "in_words": card["status_reason"],
        "data_as_of": str(card.get("data_as_of")),
        "serving_version": serving or (NO_SKILL_VERSION if (card.get("baseline_skill") or {}).get("has_skill") is False
                                       else f"{BASELINE_PREFIX}{card['baseline_classic']}" if card.get("baseline_classic")
                                       else "none"),
        "trigger": card["trigger"],
        "auc_out_of_time": float(metrics.get("auc_out_of_time", float("nan"))),
        "auc_baseline_recency": float(metrics.get("auc_baseline_recency", float("nan"))),
        "auc_best_classic": float(metrics.get("auc_best_classic", float("nan"))),
        "best_classic": str(metrics.get("best_classic", card.get("baseline_classic"))),
        "metrics": dg.MetadataValue.md(_metrics_table(metrics)),
        **_calibration_metadata(card),
        "dropped_features": ", ".join(f"{k} ({v})" for k, v in card.get("dropped_features", {}).items()) or "none",
        "model_card": dg.MetadataValue.path(str(settings.models / card["version"] / "model_card.json")),
        **_plots(card, trained),
    })
    yield dg.AssetCheckResult(check_name=SKILL_CHECK, passed=card["status"] == "champion",
                              severity=dg.AssetCheckSeverity.WARN, description=card["status_reason"])
    leaking = card["status"] == "leakage_suspected"
    yield dg.AssetCheckResult(check_name=LEAKAGE_CHECK, passed=not leaking, severity=dg.AssetCheckSeverity.ERROR,
                              description=card["status_reason"] if leaking else "no single feature separates the "
                              "holdout labels suspiciously well", metadata={"leaking_features": ", ".join(
                                  card.get("leaking_features", [])) or "none"})


BTYD_SERVED = ["p_alive", "expected_purchases_90d"]  # passed through from customer_features for the risk list


def classic_support(frame: pl.DataFrame, spec: dict) -> np.ndarray:
    """Customers behind each row's calibrated classic probability (0 where the row lacks the classic's score
    or the baseline was saved without its support: then no interval)."""
    if "serving_support" not in spec or spec["column"] not in frame.columns:
        return np.zeros(frame.height)
    score = frame[spec["column"]].cast(pl.Float64).fill_nan(None)
    n = risk_list.support_counts(score.fill_null(0.0).to_numpy(), spec["serving_support"])
    return np.where(score.is_null().to_numpy(), 0.0, n)


CLASSIC_NAMES = {"bgnbd": "BG/NBD baseline (repeat-purchase model)", "recency": "days-since-last-purchase baseline"}
# why the calibrated classic serves, by the status of the version that could not replace it
WHY_BASELINE = {"no_skill": "the churn model did not beat it", "leakage_suspected": "the churn model was set aside: "
                "suspected label leakage", "insufficient_history": "too little history to train a churn model yet"}


def score_basis_words(version: str, card: dict | None, baseline: dict | None) -> str:
    """The buyers' `score_basis`: what scored them (`version` as served) and how well it ranked the holdout,
    from the model card (`card`: the champion's, else the latest version's) and its `baseline` — out-of-time
    figures, never training ones; for version "none", why nothing scores them."""
    metrics = (card or {}).get("metrics", {})
    if version == NO_SKILL_VERSION:
        skill = baseline["classic_skill"]
        return (f"no skill: base rate {baseline['overall_rate']:.2f} for every buyer (nothing ranked better than "
                f"chance on the holdout: neither the churn model nor the best classic, {skill['classic']} at AUC "
                f"{skill['holdout_auc']:.3f}, 95 % CI of the gain over chance {skill['ci_low']:+.3f}…{skill['ci_high']:+.3f})")
    if version.startswith(BASELINE_PREFIX):
        classic = version.removeprefix(BASELINE_PREFIX)
        judged = metrics.get(f"auc_classic_{classic}", ((card or {}).get("baseline_skill") or {}).get("holdout_auc"))
        figure = f"holdout AUC {judged:.3f}" if judged is not None else "not yet checked on a holdout"
        why = WHY_BASELINE.get((card or {}).get("status"), "no churn model has passed the skill gate")
        check = (card or {}).get("champion_on_newest_holdout") or {}
        if check.get("retire"):
            why += (f"; champion {check['champion']} was retired, the classic ranking this holdout better (AUC "
                    f"{check['champion_auc']:.3f} vs {check['best_classic_auc']:.3f})")
        return f"{CLASSIC_NAMES[classic]}, {figure} ({why})"
    if version == "none":
        reason = (card or {}).get("history_problem") or (card or {}).get("status_reason") or "no churn model yet"
        return f"not scored: {reason}"
    return (f"XGBoost model {version}, holdout AUC {metrics['auc_out_of_time']:.3f} (the best classic, "
            f"{metrics['best_classic']}: {metrics['auc_best_classic']:.3f})")


def score_customers(settings: EcomSettings, features: pl.DataFrame, latest_card: dict) -> tuple[pl.DataFrame, str]:
    """Score every customer with the champion (or the calibrated classic baseline, or nothing); never-buyers
    with the serving version's cold-start scorer. Returns (frame with PREDICTION_COLUMNS, how)."""
    models = settings.models
    champion = registry.champion_version(models)
    buyers = features.filter(~pl.col("cold_start"))
    cold = features.filter(pl.col("cold_start"))
    if champion:
        trained, baseline = registry.load_model(models, champion)
        p, raw, drivers = churn.predict(trained, buyers, with_drivers=True)
        n = risk_list.support_counts(raw, trained.calibration["support"])
        version, how = champion, f"champion {champion}"
    else:
        baseline = registry.load_baseline(models, latest_card["version"]) if latest_card.get("version") else None
        classic = baseline.get("classic") if baseline else None
        no_skill = classic is not None and not churn.classic_has_skill(baseline)
        if no_skill:
            # the classic ranks no better than chance on the holdout: serving its order would be a pretence
            version = NO_SKILL_VERSION
            p = np.full(buyers.height, baseline["overall_rate"])
            drivers = [[churn.no_skill_words(baseline)]] * buyers.height
            n = np.full(buyers.height, float(baseline.get("labelled_customers") or 0))
            how = churn.no_skill_words(baseline)
        else:
            version = f"{BASELINE_PREFIX}{classic}" if classic else "none"
            p = churn.baseline_probability(buyers, baseline) if classic else np.full(buyers.height, np.nan)
            column = churn.CLASSICS[classic][0] if classic else "days_since_last_purchase"
            drivers = churn.baseline_drivers(p, baseline, column)
            if classic == "bgnbd":  # its inputs per customer; the one outlook where a row has none of them
                per_input = churn.bgnbd_drivers(buyers, btyd.fit_to(features)[0])
                drivers = [own or outlook for own, outlook in zip(per_input, drivers)] if per_input else drivers
            n = classic_support(buyers, baseline["classics"][classic]) if classic else np.zeros(buyers.height)
            how = (f"the calibrated classic baseline {classic} (no model has passed the skill gate yet)" if classic
                   else "nothing: not enough history to estimate even the baseline")
    low, high = risk_list.probability_interval(p, n)
    basis = score_basis_words(version, registry.load_card(models, champion) if champion else latest_card, baseline)
    scored_buyers = buyers.select("customer_id", "as_of", "cold_start", *BTYD_SERVED).with_columns(
        score_basis=pl.lit(basis),
        churn_probability=pl.Series(p, dtype=pl.Float64).fill_nan(None),
        churn_probability_low=pl.Series(low, dtype=pl.Float64).fill_nan(None),
        churn_probability_high=pl.Series(high, dtype=pl.Float64).fill_nan(None),
        top_drivers=pl.Series(drivers, dtype=pl.List(pl.String)), cold_start_reason=pl.lit(None, dtype=pl.String))
    never_buyers = cold_start.load(models, champion or latest_card.get("version"), baseline)
    scored_cold = cold.select("customer_id", "as_of", "cold_start", *BTYD_SERVED).hstack(
        cold_start.score(never_buyers, cold).drop("customer_id")).with_columns(  # same rows, same order
        top_drivers=pl.lit(["never purchased"], dtype=pl.List(pl.String)),
        score_basis=pl.lit(cold_start.basis_words(never_buyers)))
    columns = scored_buyers.columns
    # both halves keep the features' id order: merged in one pass, not sorted again
    scored = sorted_by_id(scored_buyers).merge_sorted(sorted_by_id(scored_cold.select(columns)), key="customer_id")
    tier = churn.risk_tier(pl.col("churn_probability"))
    if version == NO_SKILL_VERSION:  # one base rate for every buyer: a tier would claim an order that is not there
        tier = pl.when(pl.col("cold_start")).then(tier).otherwise(pl.lit(NO_SKILL_TIER))
    scored = scored.with_columns(risk_tier=tier, model_version=pl.lit(version))
    return scored.select(list(PREDICTION_COLUMNS)), how


@dg.asset(
    group_name="churn",
    owners=[OWNER],
    kinds={"xgboost", "polars"},
    tags=REFRESH_PER_DROP,
    description=(
        "Calibrated churn probability for every customer in `customer_features`, served by the CHAMPION model "
        "(not necessarily the newest), with its 95 % interval, risk tier and the top-3 drivers (XGBoost approximate "
        "contributions). Without a champion the best classic on the holdout (recency or BG/NBD), calibrated by a "
        "strictly monotone curve, serves. Customers who never purchased are scored from their visits by a model "
        "fitted on the training windows' never-buyers, if it beats a constant out of time; else at those "
        "never-buyers' no-purchase rate, and `cold_start_reason` says which. Each batch is appended to "
        "warehouse/prediction_log/ for realised-performance monitoring."
    ),
    metadata=column_schema(PREDICTION_COLUMNS),
)
def churn_predictions(settings: EcomSettings, customer_features: pl.DataFrame, churn_model: dict) -> dg.Output:
    if customer_features.is_empty():
        empty = pl.DataFrame(schema={c: pl.String for c in PREDICTION_COLUMNS})
        return dg.Output(empty, metadata={"dagster/row_count": 0, "served_by": "no customers yet"})
    scored, how = score_customers(settings, customer_features, churn_model)
    as_of = str(customer_features["as_of"][0])
    version = scored["model_version"][0]
    log = scored.select("customer_id", "churn_probability", "model_version", "as_of", "cold_start").with_columns(
        feature_fingerprint=pl.lit(churn.fingerprint(customer_features)),
        scored_at=pl.lit(datetime.now(timezone.utc)))
    write_parquet_atomic(log, settings.folder("warehouse") / "prediction_log" / f"{as_of}__{version}.parquet")
    tiers = scored.group_by("risk_tier").agg(customers=pl.len(), mean_probability=pl.col("churn_probability").mean())
    return dg.Output(scored, metadata={
        "dagster/row_count": scored.height,
        "served_by": how,
        "model_version": version,
        "latest_model_status": f"{churn_model.get('version')}: {churn_model.get('status')} — {churn_model.get('status_reason')}",
        "as_of": as_of,
        "cold_start": int(scored["cold_start"].sum()),
        "tiers": dg.MetadataValue.md(md_table(tiers.sort("risk_tier"))),
    })


def _tiers_with_holdout(settings: EcomSettings, export: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Customers per risk tier now, beside the churn each tier showed on the serving model's holdout
    (its card), and whether that fell from high to low: what a tier means, in the list's metadata."""
    tiers = export.group_by("risk_tier").agg(customers=pl.len(), share=pl.len() / export.height)
    served = str(export["model_version"][0])
    if served == NO_SKILL_VERSION:
        return tiers.sort("risk_tier"), "withheld: nothing ranks the buyers better than chance (risk tier no_skill)"
    versions = registry.list_versions(settings.models)
    version = served if served in versions else (versions[-1] if versions and served.startswith(BASELINE_PREFIX) else None)
    key = "baseline_tiers" if served.startswith(BASELINE_PREFIX) else "tiers"
    metrics = registry.load_card(settings.models, version).get("metrics", {}) if version else {}
    rows = metrics.get(f"{key}_holdout") or []
    if not rows:
        return tiers.sort("risk_tier"), "unknown: no holdout figures for the serving model"
    holdout = pl.DataFrame(rows).select(risk_tier="tier", holdout_customers="n", holdout_churn_rate="observed_rate")
    order = {name: i for i, (_, name) in enumerate(churn.RISK_TIERS)}
    table = tiers.join(holdout, on="risk_tier", how="full", coalesce=True).sort(
        pl.col("risk_tier").replace_strict(order, default=len(order)))
    return table, "yes" if metrics.get(f"{key}_monotone") else "NO: observed churn does not fall from high to low"


@dg.asset(
    group_name="churn",
    owners=["team:customer-success"],
    kinds={"polars", "csv"},
    tags=REFRESH_PER_DROP,
    ins={"customer_features": columns_in(risk_list.FEATURE_INPUTS),
         "clean_customers": columns_in(["customer_id", "signup_date"])},
    description="exports/churn_risk_list.csv: every known customer (those only in the customers file, never seen "
    "visiting or buying, unscored with the reason) by status (at_risk, the persuadable, first; then active, "
    "lapsed = win-back, never-buyers) and within it by value at risk (churn probability x expected 90-day spend: "
    "BTYD or own purchase rate x Gamma-Gamma spend per order; never-buyers: P(first order) x the mean first order "
    "of one-order buyers, never the population's mean spend), then expected value, then recency; the "
    "churn probability's 95 % interval; drivers in plain words; on every row what scored it and how well it ranked "
    "the holdout, or why it is unscored (score_basis). Money rounded to 2 decimals; cells starting "
    "with = + - @ are neutralised for spreadsheets.",
    metadata=column_schema(RISK_LIST_COLUMNS),
)
def churn_risk_list(settings: EcomSettings, churn_predictions: pl.DataFrame,
                    customer_features: pl.DataFrame, clean_customers: pl.DataFrame) -> dg.Output:
    if churn_predictions.is_empty():  # the header alone: a list exported earlier is never left standing as current
        empty = pl.DataFrame(schema={c: pl.String for c in RISK_LIST_COLUMNS})
        path = write_safe_csv(empty, settings.exports / "churn_risk_list.csv")
        return dg.Output(empty, metadata={"dagster/row_count": 0, "in_words": "no customers yet",
                                          "path": dg.MetadataValue.path(str(path))})
    known = clean_customers.select("customer_id", "signup_date") if clean_customers.width else None
    export, how = risk_list.build_risk_list(churn_predictions, customer_features, known)
    path = write_safe_csv(export, settings.exports / "churn_risk_list.csv")
    by_status = export.group_by("status").agg(
        customers=pl.len(), value_at_risk=pl.col("value_at_risk").sum().round(2),
        mean_probability=pl.col("churn_probability").mean()).sort("value_at_risk", descending=True, nulls_last=True)
    tiers, monotone = _tiers_with_holdout(settings, export)
    return dg.Output(export, metadata={
        "dagster/row_count": export.height, "path": dg.MetadataValue.path(str(path)),
        "value_basis": how["expected_purchases"], "spend_per_order_basis": how["spend_per_order"],
        "never_buyers_spend_basis": how["never_buyers_spend_per_order"],
        "by_status": dg.MetadataValue.md(md_table(by_status)), "tiers": dg.MetadataValue.md(md_table(tiers)),
        "tiers_monotone_on_holdout": monotone,
        "top_10": dg.MetadataValue.md(md_table(export.head(10)))})


churn_retrain_job = dg.define_asset_job(
    "churn_retrain_job",
    selection=[churn_training_set, churn_model, churn_predictions, churn_risk_list],
    description="Retrain the churn model (training windows -> model -> predictions); requested by retrain_sensor.",
)
churn_scoring_job = dg.define_asset_job(
    "churn_scoring_job",
    selection=[customer_features, churn_predictions, churn_risk_list],
    description="Re-score every customer with the serving champion.",
    tags={TRIGGER_TAG: "schedule"},
)
