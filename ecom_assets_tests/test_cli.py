"""The CLI contract other tools rely on (DESIGN.md "CLI contract"), end to end through a real
instance on disk: generate -> run -> the documented files exist with the documented columns."""

import json
import re
import shutil
from pathlib import Path

import polars as pl

from ecom_assets.cli import main
from ecom_assets.generate import generate

PREDICTION_COLUMNS = {
    "customer_id", "churn_probability", "top_drivers", "risk_tier", "model_version", "as_of", "cold_start",
}
STATUSES = {"champion", "no_skill", "leakage_suspected", "insufficient_history", "not_promoted"}


def _model_card(data_dir: Path) -> dict:
    cards = sorted((data_dir / "models").glob("*/model_card.json"))
    assert cards, "no model card written"
    return json.loads(cards[-1].read_text())


def test_generate_then_run_fulfils_the_cli_contract(cli_env: Path, capsys) -> None:
    landing = cli_env / "landing"
    assert main(["generate", "--out", str(landing), "--customers", "3000", "--days", "540",
                 "--files", "2", "--seed", "3"]) == 0
    assert main(["run", "--data-dir", str(cli_env)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "serving model" in out or "baseline" in out
    # one line per step with its seconds and key figure; Dagster's own event lines only with --verbose
    assert "DEBUG" not in out + captured.err
    assert re.search(r"^  raw_sessions +\d+\.\d s  \[sessions_001\.csv\] rows in [\d,]+ = [\d,]+ clean", out, re.M), out
    assert re.search(r"^  churn_risk_list +\d+\.\d s  rows [\d,]+$", out, re.M), out
    # every accounting line adds up: ingest (clean + quarantined + duplicate) and merged tables (kept +
    # duplicates across files + superseded)
    sums = re.findall(r"rows (?:in|from drops) ([\d,]+) = ((?:[\d,]+ [a-z ]+?(?: \+ |$))+)", out, re.M)
    assert len(sums) >= 5, out  # 4 drops, the ingest total, clean_customers and clean_sessions
    for total, parts in sums:
        assert int(total.replace(",", "")) == sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) [a-z]", parts))
    assert re.search(r"^  clean_sessions +\d+\.\d s  rows from drops [\d,]+ = [\d,]+ kept \+ 0 duplicate across files "
                     r"\+ 0 superseded$", out, re.M), out
    assert re.search(r"^\d+ steps in \d+\.\d s; build run \w+: success$", out, re.M), out
    assert "(trigger initial)" in out  # the first model is nobody's manual request
    # plenty of data: empty tables (no events, no order lines) are listed neutrally, never "drop files"
    assert "drop customers*/sessions*/orders*/events*.csv" not in out and not re.search(r"^no data yet", out, re.M), out
    assert not re.search(r"\d\.\d{5,}", out), "unrounded figures"  # e.g. auc_out_of_time=0.8792239124676883

    predictions = pl.read_parquet(cli_env / "warehouse" / "churn_predictions.parquet")
    assert PREDICTION_COLUMNS <= set(predictions.columns)
    assert predictions.height > 0
    assert predictions["churn_probability"].is_between(0, 1).all()
    card = _model_card(cli_env)
    assert card["status"] in STATUSES
    assert {"auc_out_of_time", "auc_baseline_recency"} <= set(card["metrics"])
    # every drop was ingested and archived byte-identically; nothing is left in landing
    assert not list(landing.glob("*.csv"))
    assert len(list((cli_env / "archive").glob("*.csv"))) == 4  # customers, 2 x sessions, campaigns
    assert (cli_env / "exports" / "churn_risk_list.csv").exists()
    assert (cli_env / "reports" / "dashboard.html").exists()


def test_seed_export_runs_and_says_no_skill(cli_env: Path, seed_data_dir: Path, capsys) -> None:
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    for name in ("customers.csv", "sessions.csv"):
        shutil.copyfile(seed_data_dir / name, landing / name)
    assert main(["run", "--data-dir", str(cli_env), "--no-automation"]) == 0
    card = _model_card(cli_env)
    assert card["status"] == "no_skill", card.get("status_reason")
    assert 0.45 <= card["metrics"]["auc_out_of_time"] <= 0.55
    assert not (cli_env / "models" / "champion.json").exists()
    assert "no_skill" in capsys.readouterr().out


def test_short_purchase_log_exits_zero_with_insufficient_history(cli_env: Path, capsys) -> None:
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    rows = ["session_id,customer_id,session_date,product_viewed,browsing_time_sec,purchase_made,purchase_amount"]
    for i in range(600):  # three weeks of a purchase-only log: one category, no browsing times
        rows.append(f"S{i},C{i % 150},2024-03-{1 + i % 21:02d},Retail,,1,{10 + i % 37}.50")
    (landing / "sessions.csv").write_text("\n".join(rows) + "\n")
    assert main(["run", "--data-dir", str(cli_env)]) == 0
    assert _model_card(cli_env)["status"] == "insufficient_history"
    served = pl.read_parquet(cli_env / "warehouse" / "churn_predictions.parquet")
    # too little history for even the classic: nothing is scored, and the summary says so (it said
    # "the calibrated classic baseline scores" while every row was unscored)
    assert served["churn_probability"].is_null().all() and (served["model_version"] == "none").all()
    out = capsys.readouterr().out
    assert "serving model: nothing: not enough history" in out
    # every row was clean: quarantine_summary counted 600 rows and has no rule to list, which is not "no data yet"
    # (the summary listed it among the empty tables)
    empty_line = next((line for line in out.splitlines() if line.startswith(("empty tables", "no data yet"))), "")
    assert "quarantine_summary" not in empty_line


def test_a_failed_build_writes_an_alert_line(cli_env: Path, monkeypatch, capsys) -> None:
    """`ecom-assets run` executes its runs in process, where no daemon evaluates alert_on_run_failure:
    a step that fails (here sales_trends, as if its disk were full) still leaves the one JSON line
    on-call tooling tails, and the exit code is 1 (before: exit 1 and no alerts.jsonl at all)."""
    from ecom_assets.insights import analyses

    def disk_full(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(analyses, "daily_sales", disk_full)
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    rows = ["session_id,customer_id,session_date,product_viewed,browsing_time_sec,purchase_made,purchase_amount"]
    rows += [f"S{i},C{i % 40},2024-03-{1 + i % 21:02d},Retail,,1,{10 + i % 37}.50" for i in range(200)]
    (landing / "sessions.csv").write_text("\n".join(rows) + "\n")
    assert main(["run", "--data-dir", str(cli_env)]) == 1
    assert "FAILED in sales_trends" in capsys.readouterr().out
    alerts = [json.loads(line) for line in (cli_env / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert [(a["job"], a["failed_steps"]) for a in alerts] == [("build_all_job", ["sales_trends"])]
    assert "No space left on device" in alerts[0]["step_errors"]["sales_trends"] and alerts[0]["run_id"]


def _versions(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "models").glob("v*"))


def test_a_model_that_could_not_be_trained_is_tried_again_once_more_history_arrives(cli_env: Path, tmp_path: Path,
                                                                                    capsys) -> None:
    """Tryout s7/s7b: a shop sends only its order log (no customers file), first nothing, then 6 months, then
    the following 12. The first run saved v0001 `insufficient_history`, and because `ecom-assets run` trained
    only while no version existed, the churn list stayed unscored for good (only `--retrain` helped)."""
    staged = tmp_path / "staged"
    generate(staged, customers=1500, days=540, files=3, seed=4, shape="orders")
    for name in ("customers.csv", "campaigns.csv"):
        (staged / name).unlink()
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    run = ["run", "--data-dir", str(cli_env)]

    assert main(run) == 0  # before any export arrived
    first = _model_card(cli_env)
    assert (first["version"], first["status"], first["trigger"]) == ("v0001", "insufficient_history", "initial")
    assert first["status_reason"].startswith("no data yet: only 0 labelled 90-day window(s)")
    capsys.readouterr()

    shutil.move(staged / "orders_001.csv", landing)  # the first 180 days: still too short for a model
    assert main(run) == 0
    short = _model_card(cli_env)
    # still no labelled window, so the same (empty) training data: v0001 stands, its verdict about the data of
    # its own day; the recheck against today's data is said beside it
    assert short["version"] == "v0001" and short["status_reason"] == first["status_reason"]
    recheck = short["last_recheck"]
    assert recheck["data_as_of"] and recheck["outcome"].startswith("training data unchanged")
    assert f"rechecked {recheck['at'][:10]}" in capsys.readouterr().out

    for name in ("orders_002.csv", "orders_003.csv"):  # the next 12 months
        shutil.move(staged / name, landing)
    assert main(run) == 0
    out = capsys.readouterr().out
    trained = _model_card(cli_env)
    assert trained["trigger"] == "more_history" and trained["status"] != "insufficient_history", trained
    assert re.search(rf"^latest model {trained['version']}: {trained['status']} \(trigger more_history\), created "
                     rf".* on data as of {trained['data_as_of']}", out, re.M), out
    assert "only 0 labelled" not in out  # the old verdict is not shown as today's
    risk = pl.read_csv(cli_env / "exports" / "churn_risk_list.csv")
    assert risk["churn_probability"].drop_nulls().len() > 0
    assert set(risk["status"]) - {"unscored", "lapsed"}, risk["status"].value_counts()

    versions = _versions(cli_env)
    assert main(run) == 0  # nothing new: no retrain loop on unchanged data
    assert _versions(cli_env) == versions


def test_the_currency_shown_for_exports_without_one_is_set_from_the_cli_or_the_environment(monkeypatch) -> None:
    """A sessions export carries no currency: `--currency` (or $ECOM_CURRENCY for `make dev`) says what the
    dashboard shows beside money; a code that is not ISO 4217-shaped is refused, never shown."""
    import pytest

    from ecom_assets.cli import _parser
    from ecom_assets.resources import build_resources
    from ecom_assets.settings import CURRENCY_ENV

    assert _parser().parse_args(["run", "--currency", " gbp"]).currency == "GBP"
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--currency", "pounds"])
    monkeypatch.setenv(CURRENCY_ENV, "chf")
    assert build_resources("/tmp/unused")["settings"].currency == "CHF"
    monkeypatch.setenv(CURRENCY_ENV, "Fr.")
    with pytest.raises(ValueError, match="three-letter ISO 4217"):
        build_resources("/tmp/unused")
