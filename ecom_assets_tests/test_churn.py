"""Churn model end to end on ingested data: planted signal found, no skill said out loud,
leakage named and never served, deterministic, robust to column order and to thin data."""

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from ecom_assets.churn import churn_model, churn_predictions, churn_risk_list
from ecom_assets.churn import assets as churn_assets
from ecom_assets.churn import model as churn
from ecom_assets.churn import registry
from ecom_assets.features import churn_training_set, customer_features, customer_history
from ecom_assets.generate import DefectRates, generate
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.ingest_helpers import SESSIONS_HEADER, drop, ingest_and_clean

MODEL_ASSETS = [customer_history, customer_features, churn_training_set, churn_model, churn_predictions, churn_risk_list]


def build(data_dir, instance, resources, selection=MODEL_ASSETS, raise_on_error=True, tags=None):
    from ecom_assets.clean import clean_customers, clean_sessions
    from ecom_assets.ingest import raw_campaigns, raw_customers, raw_sessions

    everything = [raw_customers, raw_sessions, raw_campaigns, clean_customers, clean_sessions, *MODEL_ASSETS]
    return dg.materialize(everything, selection=selection, instance=instance, resources=resources,
                          raise_on_error=raise_on_error, tags=tags)


def card(data_dir, version="v0001") -> dict:
    return json.loads((data_dir / "models" / version / "model_card.json").read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """20k generated customers ingested and modelled once for the module."""
    data_dir = tmp_path_factory.mktemp("gen") / "data"
    generate(data_dir / "landing", customers=20_000, seed=5, truth_out=data_dir / "truth", files=2)
    from ecom_assets.resources import build_resources

    resources = build_resources(data_dir)
    with dg.instance_for_test() as instance:
        ingest_and_clean(data_dir, instance, resources)
        result = build(data_dir, instance, resources)
        yield data_dir, result, instance, resources


def test_planted_signal_is_found_and_promoted(generated) -> None:
    data_dir, result, _, _ = generated
    c = card(data_dir)
    assert c["status"] == "champion" and c["promoted"], c["status_reason"]
    assert c["metrics"]["auc_diff_ci_low"] > 0
    assert json.loads((data_dir / "models" / "champion.json").read_text())["version"] == "v0001"
    # scored at T against what really happened in the 90 unwritten days
    predictions = pl.read_parquet(data_dir / "warehouse" / "churn_predictions.parquet").filter(~pl.col("cold_start"))
    truth = pl.read_parquet(data_dir / "truth" / "customer_truth.parquet")
    joined = predictions.join(truth, on="customer_id")
    model_auc = roc_auc_score(joined["churned_90d"], joined["churn_probability"])
    oracle_auc = roc_auc_score(joined["churned_90d"], joined["p_no_purchase_90d"])
    assert model_auc >= 0.97 * oracle_auc, (model_auc, oracle_auc)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"churn_model_has_skill": True, "churn_model_no_leakage": True}
    # judged against the best classic on the holdout; calibration out of time is on the card and in the UI
    m = c["metrics"]
    assert m["auc_best_classic"] == max(m["auc_classic_recency"], m["auc_classic_bgnbd"])
    assert len(m["calibration_table"]) == 10 and 0 <= m["ece"] < 0.15 and m["tiers_monotone"]
    meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "churn_model")
    assert "ece_holdout" in meta.materialization.metadata and "reliability_holdout" in meta.materialization.metadata
    # the gated model never trained on a window whose label horizon passes the holdout's cutoff; the refit that
    # serves used every labelled window, the holdout included
    holdout = date.fromisoformat(c["holdout_cutoff"])
    assert all(date.fromisoformat(w) + timedelta(days=90) <= holdout for w in c["gated_model"]["windows"])
    assert c["served_model"]["refit_on_every_labelled_window"] and c["holdout_cutoff"] in c["served_model"]["windows"]
    assert set(c["windows_refit_only"]) <= set(c["served_model"]["windows"]) - set(c["gated_model"]["windows"])


def test_predictions_fulfil_the_contract_and_the_export_is_safe(generated) -> None:
    data_dir, result, _, _ = generated
    predictions = pl.read_parquet(data_dir / "warehouse" / "churn_predictions.parquet")
    features = pl.read_parquet(data_dir / "warehouse" / "customer_features.parquet")
    assert predictions.height == features.height
    assert set(churn_assets.PREDICTION_COLUMNS) == set(predictions.columns)
    assert predictions["churn_probability"].is_between(0, 1).all()
    assert set(predictions["risk_tier"]) <= {"high", "medium", "low"}
    assert predictions.filter(~pl.col("cold_start"))["top_drivers"].list.len().min() == 3
    log = list((data_dir / "warehouse" / "prediction_log").glob("*__v0001.parquet"))
    assert len(log) == 1
    scored = predictions.filter(pl.col("churn_probability_low").is_not_null())
    assert scored.height == predictions.height  # every customer, never-buyers included, has an interval
    assert (scored["churn_probability_low"] <= scored["churn_probability"]).all()
    assert (scored["churn_probability"] <= scored["churn_probability_high"]).all()
    assert predictions.filter(pl.col("cold_start"))["cold_start_reason"].str.starts_with("never purchased: ").all()
    assert predictions.filter(~pl.col("cold_start"))["cold_start_reason"].is_null().all()
    risk = pl.read_csv(data_dir / "exports" / "churn_risk_list.csv", schema_overrides={"customer_id": pl.String})
    # every known customer: the scored ones, and those only in the customers file (never visited), unscored
    customers = pl.read_parquet(data_dir / "warehouse" / "clean_customers.parquet")
    signed_up_only = set(customers["customer_id"]) - set(predictions["customer_id"])
    assert set(risk["customer_id"]) == set(predictions["customer_id"]) | signed_up_only
    assert risk.height == predictions.height + len(signed_up_only)
    unscored = risk.filter(pl.col("customer_id").is_in(list(signed_up_only)))
    assert unscored["churn_probability"].null_count() == unscored.height
    assert unscored["cold_start_reason"].str.starts_with("not scored: known only from the customers file").all()
    assert risk["status"].unique(maintain_order=True).to_list() == ["at_risk", "active", "lapsed", "never_purchased"]
    for status in ("at_risk", "active", "lapsed", "never_purchased"):
        assert risk.filter(pl.col("status") == status)["value_at_risk"].is_sorted(descending=True, nulls_last=True)
    assert "days since" in " ".join(risk["drivers"].head(50).to_list())
    # each row says what scored it and how well it ranked the holdout, with the card's figures (not the CLI's)
    m, gate = card(data_dir)["metrics"], card(data_dir)["cold_start"]["gate"]
    assert set(risk.filter(~pl.col("cold_start"))["score_basis"]) == {
        f"XGBoost model v0001, holdout AUC {m['auc_out_of_time']:.3f} (the best classic, {m['best_classic']}: "
        f"{m['auc_best_classic']:.3f})"}
    visited = risk.filter(pl.col("cold_start") & ~pl.col("customer_id").is_in(list(signed_up_only)))
    assert set(visited["score_basis"]) == {f"never-buyers' visit model, holdout AUC {gate['holdout_auc']:.3f} (a constant: 0.5)"}
    assert unscored["score_basis"].str.starts_with("not scored: no visit and no purchase yet").all()
    # what the tiers mean is shown beside the list: the serving model's holdout churn per tier
    meta = result.asset_materializations_for_node("churn_risk_list")[0].metadata
    assert meta["tiers_monotone_on_holdout"].value in {"yes", "NO: observed churn does not fall from high to low"}
    assert "holdout_churn_rate" in meta["tiers"].value


def test_never_buyers_are_ranked_by_their_visits(generated) -> None:
    """The generator's never-buyers differ in visit rate and recency: the served scores rank their
    real 90-day outcome (the planted truth), not one constant."""
    data_dir, _, _, _ = generated
    assert card(data_dir)["cold_start"]["method"] == "logistic", card(data_dir)["cold_start"]
    cold = pl.read_parquet(data_dir / "warehouse" / "churn_predictions.parquet").filter(pl.col("cold_start"))
    joined = cold.join(pl.read_parquet(data_dir / "truth" / "customer_truth.parquet"), on="customer_id")
    assert cold["churn_probability"].n_unique() > 100
    assert roc_auc_score(joined["churned_90d"], joined["churn_probability"]) > 0.75


def test_shuffled_columns_give_identical_predictions(generated) -> None:
    data_dir, _, _, _ = generated
    trained, _ = registry.load_model(data_dir / "models", "v0001")
    features = pl.read_parquet(data_dir / "warehouse" / "customer_features.parquet").filter(~pl.col("cold_start"))
    shuffled = features.select(list(reversed(features.columns)))
    p1, _, _ = churn.predict(trained, features)
    p2, _, _ = churn.predict(trained, shuffled)
    assert np.array_equal(p1, p2)


def test_same_data_and_seed_give_byte_identical_model(generated, tmp_path) -> None:
    data_dir, _, _, _ = generated
    training = pl.read_parquet(data_dir / "warehouse" / "churn_training_set.parquet")
    train, holdout, _ = churn_assets.split_windows(training)
    baseline = churn.fit_baseline(train, holdout, training.filter(pl.col("cold_start")))
    for name in ("a", "b"):
        registry.save_model(tmp_path / name, "v0001", churn.train_model(train), baseline)
    assert (tmp_path / "a" / "v0001" / "model.json").read_bytes() == (tmp_path / "b" / "v0001" / "model.json").read_bytes()


def _with_training_set(data_dir, tmp_path, change):
    """A copy of the generated warehouse whose churn_training_set went through `change(frame, rng)`."""
    work = tmp_path / "data"
    shutil.copytree(data_dir / "warehouse", work / "warehouse")
    training = pl.read_parquet(work / "warehouse" / "churn_training_set.parquet")
    change(training, np.random.default_rng(0)).write_parquet(work / "warehouse" / "churn_training_set.parquet")
    return work


def test_leaking_feature_is_named_never_serves_and_the_list_is_still_built(generated, tmp_path) -> None:
    data_dir, _, instance, _ = generated
    leaky_dir = _with_training_set(data_dir, tmp_path, lambda t, rng: t.with_columns(
        refund_flag=t["churned"].cast(pl.Float64) + rng.normal(0, 0.05, t.height)))
    from ecom_assets.resources import build_resources

    result = build(leaky_dir, instance, build_resources(leaky_dir), selection=[churn_model, churn_predictions],
                   raise_on_error=False)
    c = card(leaky_dir)
    assert c["status"] == "leakage_suspected" and "refund_flag" in c["status_reason"]
    assert c["leaking_features"] == ["refund_flag"]  # the classics (recency, BG/NBD) stay unsuspected
    assert not (leaky_dir / "models" / "champion.json").exists()
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert {e.check_name for e in failed} >= {"churn_model_no_leakage"}
    # the suspected model never scores: the calibrated classic does, and the run goes on
    assert result.success
    served = pl.read_parquet(leaky_dir / "warehouse" / "churn_predictions.parquet").filter(~pl.col("cold_start"))
    assert served.height and served["model_version"].str.starts_with(churn_assets.BASELINE_PREFIX).all()


def test_a_log_that_recency_alone_separates_is_predictable_not_leaking(generated, tmp_path) -> None:
    """Customers who stop at a fixed age (a subscription box, a short warranty) make recency alone rank
    the holdout at ~0.99: the model can only match the classic, which is no skill, not leakage."""
    data_dir, _, instance, _ = generated

    def by_recency(t: pl.DataFrame, rng) -> pl.DataFrame:
        flipped = pl.Series(rng.random(t.height) < 0.01)  # 1 % of the labels
        by_age = (pl.col("days_since_last_purchase") > 60) ^ pl.lit(flipped)
        return t.with_columns(churned=pl.when(pl.col("days_since_last_purchase").is_null()).then("churned")
                              .otherwise(by_age.cast(t["churned"].dtype)))

    work = _with_training_set(data_dir, tmp_path, by_recency)
    from ecom_assets.resources import build_resources

    result = build(work, instance, build_resources(work), selection=[churn_model, churn_predictions],
                   raise_on_error=False)
    c = card(work)
    assert c["metrics"]["auc_best_classic"] >= 0.97  # as separable as the tryout's purchase log
    assert c["status"] in {"no_skill", "champion"} and not c.get("leaking_features"), c["status_reason"]
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["churn_model_no_leakage"]


def test_worse_challenger_is_not_promoted(generated, tmp_path, monkeypatch) -> None:
    data_dir, _, _, _ = generated
    work = tmp_path / "data"
    shutil.copytree(data_dir / "models", work / "models")
    training = pl.read_parquet(data_dir / "warehouse" / "churn_training_set.parquet")
    real_evaluate = churn.evaluate_holdout

    def passes_gate_with_worse_scores(trained, holdout, baseline):
        evaluation, p = real_evaluate(trained, holdout, baseline)
        noisy = np.clip(p + np.random.default_rng(1).normal(0, 0.4, p.size), 0, 1)  # much worse ranking
        return churn.Evaluation("champion", evaluation.status_reason, evaluation.metrics), noisy

    monkeypatch.setattr(churn, "evaluate_holdout", passes_gate_with_worse_scores)
    settings = EcomSettings(data_dir=str(work))
    new_card, _ = churn_assets.train_and_register(settings, training, "drift", "test")
    assert new_card["version"] == "v0002" and new_card["status"] == "not_promoted"
    assert new_card["champion_comparison"]["ci_high"] < 0
    assert registry.champion_version(work / "models") == "v0001"


def _retrain_without_promotion(generated, tmp_path, monkeypatch, change=None) -> tuple[dict, Path]:
    """Train v0002 beside the generated champion v0001 on its training set (after `change`), the challenger
    judged no_skill whatever it scores (what a log without new signal gives)."""
    data_dir, _, _, _ = generated
    work = tmp_path / "data"
    shutil.copytree(data_dir / "models", work / "models")
    training = pl.read_parquet(data_dir / "warehouse" / "churn_training_set.parquet")
    if change is not None:
        training = change(training, np.random.default_rng(0))
    real_evaluate = churn.evaluate_holdout

    def no_skill(trained, holdout, baseline):
        evaluation, p = real_evaluate(trained, holdout, baseline)
        return churn.Evaluation("no_skill", "test: judged no_skill", evaluation.metrics), p

    monkeypatch.setattr(churn, "evaluate_holdout", no_skill)
    new_card, _ = churn_assets.train_and_register(EcomSettings(data_dir=str(work)), training, "drift", "test")
    return new_card, work


def test_a_champion_kept_after_a_failed_retrain_is_judged_on_the_newest_holdout(generated, tmp_path, monkeypatch) -> None:
    """A tryout saw v0001 keep serving after a no_skill retrain with the card figures of its own, older holdout."""
    new_card, work = _retrain_without_promotion(generated, tmp_path, monkeypatch)
    check = new_card["champion_on_newest_holdout"]
    assert check["champion"] == "v0001" and not check["retire"] and check["ci_high"] >= 0
    assert 0.5 < check["champion_auc"] <= 1 and check["holdout_cutoff"] == new_card["holdout_cutoff"]
    assert "champion v0001 keeps serving: on the newest holdout" in new_card["status_reason"]
    assert registry.champion_version(work / "models") == "v0001"


def test_a_champion_the_classic_beats_on_the_newest_holdout_is_retired(generated, tmp_path, monkeypatch) -> None:
    """Customers now stop at a fixed age: recency ranks the newest holdout at ~0.99 and the champion, trained on
    other signal, significantly worse. It stops serving; the calibrated classic serves, and why is kept."""
    def by_recency(t: pl.DataFrame, rng) -> pl.DataFrame:
        flipped = pl.Series(rng.random(t.height) < 0.01)
        by_age = (pl.col("days_since_last_purchase") > 60) ^ pl.lit(flipped)
        return t.with_columns(churned=pl.when(pl.col("days_since_last_purchase").is_null()).then("churned")
                              .otherwise(by_age.cast(t["churned"].dtype)))

    new_card, work = _retrain_without_promotion(generated, tmp_path, monkeypatch, by_recency)
    check = new_card["champion_on_newest_holdout"]
    assert check["retire"] and check["ci_high"] < 0 and check["best_classic_auc"] > check["champion_auc"]
    assert "champion v0001 retired" in new_card["status_reason"]
    assert registry.champion_version(work / "models") is None
    assert registry.serving(work / "models") == (None, check["best_classic"])
    retired = json.loads((work / "models" / registry.RETIRED_FILE).read_text())
    assert retired[-1]["version"] == "v0001" and "v0002" in retired[-1]["retired_because"]
    assert "champion v0001 was retired on" in registry.serving_in_words(work / "models")
    # the list's rows say it too, with the newest holdout's figures
    basis = churn_assets.score_basis_words(f"{churn_assets.BASELINE_PREFIX}{check['best_classic']}", new_card, None)
    assert basis.endswith(f"champion v0001 was retired, the classic ranking this holdout better (AUC "
                          f"{check['champion_auc']:.3f} vs {check['best_classic_auc']:.3f}))"), basis


def test_seed_export_has_no_skill_and_is_not_promoted(data_dir, seed_data_dir, instance, resources) -> None:
    for name in ("customers.csv", "sessions.csv"):
        shutil.copyfile(seed_data_dir / name, data_dir / "landing" / name)
    ingest_and_clean(data_dir, instance, resources)
    result = build(data_dir, instance, resources)
    c = card(data_dir)
    assert c["status"] == "no_skill" and "no usable churn signal" in c["status_reason"]
    assert 0.45 <= c["metrics"]["auc_out_of_time"] <= 0.55
    assert c["metrics"]["auc_diff_ci_low"] <= 0
    assert not (data_dir / "models" / "champion.json").exists()
    predictions = result.output_for_node("churn_predictions")
    assert len(set(predictions["model_version"])) == 1
    # nor does the best classic rank the seed's holdout better than chance: every buyer gets the base rate, no tier
    assert c["baseline_skill"]["has_skill"] is False and "no skill" in c["status_reason"]
    assert predictions["model_version"][0] == churn_assets.NO_SKILL_VERSION
    buyers = predictions.filter(~pl.col("cold_start"))
    assert buyers["churn_probability"].n_unique() == 1 and set(buyers["risk_tier"]) == {churn_assets.NO_SKILL_TIER}
    # the seed's never-buyers: whatever their visits say out of time, the card and every row say how they were scored
    cold = c["cold_start"]
    reasons = predictions.filter(pl.col("cold_start"))["cold_start_reason"]
    assert reasons.str.contains("scored from their visits" if cold["method"] == "logistic" else "no signal").all()
    # and so does each row's score_basis, beside the buyers' "no skill" with the base rate they all got
    rate = buyers["churn_probability"][0]
    assert set(buyers["score_basis"]) == {next(iter(buyers["score_basis"]))}
    assert buyers["score_basis"][0].startswith(f"no skill: base rate {rate:.2f} for every buyer (nothing ranked better")
    basis = predictions.filter(pl.col("cold_start"))["score_basis"]
    assert basis.str.starts_with("never-buyers' visit model, holdout AUC " if cold["method"] == "logistic"
                                 else "no skill: the never-buyers' rate ").all()
    skill = next(e for e in result.get_asset_check_evaluations() if e.check_name == "churn_model_has_skill")
    assert not skill.passed and skill.severity == dg.AssetCheckSeverity.WARN


def test_a_few_weeks_of_purchases_is_insufficient_history(data_dir, instance, resources) -> None:
    start = date(2024, 3, 1)
    rows = [f"S{i},C{i % 80},{start + timedelta(days=i % 21)},Retail,,1,{10 + i % 37}.5" for i in range(400)]
    drop(data_dir, "sessions.csv", SESSIONS_HEADER + "\n" + "\n".join(rows) + "\n")
    ingest_and_clean(data_dir, instance, resources)
    result = build(data_dir, instance, resources)
    assert result.success
    c = card(data_dir)
    assert c["status"] == "insufficient_history" and "window" in c["status_reason"]
    predictions = result.output_for_node("churn_predictions")
    assert predictions.height == 80 and set(predictions["risk_tier"]) == {"unscored"}
    # the list says on every row why it is unscored (tryout: only the CLI and the card did), and shows no BG/NBD
    # P(alive) that nothing has checked (it was ~1 for everyone)
    assert predictions["p_alive"].drop_nulls().len() > 0  # BG/NBD was fitted on these three weeks
    listed = pl.read_csv(data_dir / "exports" / "churn_risk_list.csv")
    assert listed.height == 80 and listed["churn_probability"].null_count() == 80
    assert set(listed["score_basis"]) == {f"not scored: {c['history_problem']}"}
    assert "~270 days of purchase history (data as of " in c["history_problem"]
    assert listed["p_alive"].null_count() == 80 and listed["value_at_risk"].null_count() == 80


def test_more_history_makes_a_new_version_only_when_the_training_data_changed(data_dir, instance, resources) -> None:
    """A `more_history` run (ecom-assets run, or retrain_sensor's churn_retrain_job, while the latest version
    could not be trained): three weeks of purchases again make no v0002, however often asked; once a year of
    purchases is there (labelled windows), a new version is made."""
    start = date(2024, 3, 1)
    rows = [f"S{i},C{i % 80},{start + timedelta(days=i % 21)},Retail,,1,{10 + i % 37}.5" for i in range(400)]
    drop(data_dir, "sessions.csv", SESSIONS_HEADER + "\n" + "\n".join(rows) + "\n")
    ingest_and_clean(data_dir, instance, resources)
    assert build(data_dir, instance, resources).success
    first = card(data_dir)
    assert first["status"] == "insufficient_history" and first["status_reason"].startswith("data as of 2024-03-21: ")
    more = {"ecom/trigger": "more_history"}
    for _ in range(2):
        result = build(data_dir, instance, resources, tags=more)
        assert result.success and registry.list_versions(data_dir / "models") == ["v0001"]
    kept = card(data_dir)
    assert kept["status_reason"] == first["status_reason"] and kept["trigger"] == "initial"
    assert kept["last_recheck"]["outcome"] == "training data unchanged (still no labelled 90-day window): no new version"
    meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "churn_model")
    assert meta.materialization.metadata["new_version"].value.startswith("no: v0001 stands")

    # a year of weekly-ish purchases by 120 customers, a third of whom stop buying along the way
    rng = np.random.default_rng(11)
    later = []
    for c in range(120):
        stop = 400 if c % 3 else int(rng.integers(60, 330))
        later += [f"L{c}-{d},C{c},{start + timedelta(days=int(d))},Retail,,1,{20 + c % 13}.5"
                  for d in np.unique(rng.integers(0, stop, 12))]
    drop(data_dir, "sessions_later.csv", SESSIONS_HEADER + "\n" + "\n".join(later) + "\n")
    ingest_and_clean(data_dir, instance, resources)
    assert build(data_dir, instance, resources, tags=more).success
    second = card(data_dir, "v0002")
    assert second["trigger"] == "more_history" and second["data_fingerprint"] != first["data_fingerprint"]
    assert second["data_as_of"] > first["data_as_of"]


def test_purchase_only_log_with_one_category_still_trains(data_dir, instance, resources) -> None:
    sample_dir = data_dir / "landing"
    generate(sample_dir, customers=4000, seed=9, defects=DefectRates.none())
    sessions = pl.read_csv(sample_dir / "sessions.csv")
    purchases = sessions.filter(pl.col("purchase_made") == 1).with_columns(
        product_viewed=pl.lit("Retail"), browsing_time_sec=pl.lit(None, pl.Int64)).drop("added_to_cart")
    purchases.write_csv(sample_dir / "sessions.csv")
    (sample_dir / "customers.csv").unlink()  # real purchase logs often come without a customer table
    ingest_and_clean(data_dir, instance, resources)
    result = build(data_dir, instance, resources)
    assert result.success
    c = card(data_dir)
    assert c["status"] in {"champion", "no_skill"}, c["status_reason"]
    assert c["metrics"]["auc_out_of_time"] > 0.5
    # no browsing time, no demographics, one category: left out with a note, never a crash
    assert {"browsing_mean_sec": "all null", "age": "all null", "gender": "all null",
            "favourite_category": "constant"}.items() <= c["dropped_features"].items()
    meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "churn_model")
    assert "browsing_mean_sec (all null)" in meta.materialization.metadata["dropped_features"].value
    predictions = result.output_for_node("churn_predictions").filter(~pl.col("cold_start"))
    assert predictions["churn_probability"].null_count() == 0
    assert predictions["p_alive"].is_between(0, 1).all() and (predictions["expected_purchases_90d"] >= 0).all()


def test_top_drivers_are_the_strongest_contributions_in_order() -> None:
    import numpy as np

    from ecom_assets.churn.model import top_drivers

    contribs = np.random.default_rng(3).normal(size=(500, 6)).astype(np.float32)
    features = [f"f{i}" for i in range(6)]
    expected = [[f"f{j} {'↑' if row[j] > 0 else '↓'}" for j in np.argsort(-np.abs(row))[:3]] for row in contribs]
    assert top_drivers(contribs, features).to_list() == expected
    assert top_drivers(contribs[:, :2], features[:2]).list.len().to_list() == [2] * 500


def test_the_model_does_not_depend_on_the_random_seed(generated, monkeypatch) -> None:
    """No row or column subsampling: which rows a seed happens to draw must not decide the gate on a small log."""
    data_dir, _, _, _ = generated
    training = pl.read_parquet(data_dir / "warehouse" / "churn_training_set.parquet")
    train, holdout, _ = churn_assets.split_windows(training)
    scores = []
    for seed in (churn.SEED, churn.SEED + 1):
        monkeypatch.setitem(churn.PARAMS, "seed", seed)
        scores.append(churn.predict(churn.train_model(train), holdout)[0])
    assert np.array_equal(scores[0], scores[1])
