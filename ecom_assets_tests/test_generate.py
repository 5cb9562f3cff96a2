"""The generator writes the seed format and the structure it claims to plant is really there."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from ecom_assets.cli import main
from ecom_assets.generate import DefectRates, generate, simulate, write_sample

SEED_SESSIONS_HEADER = "session_id,customer_id,session_date,product_viewed,browsing_time_sec,purchase_made,purchase_amount"


@pytest.fixture(scope="module")
def sample():
    return simulate(customers=4000, days=730, seed=11)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(tmp_path / name, customers=800, days=400, seed=seed, files=2, truth_out=tmp_path / f"{name}_truth")
    for f in ("customers.csv", "sessions_001.csv", "sessions_002.csv", "campaigns.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "sessions_001.csv").read_bytes() != (tmp_path / "c" / "sessions_001.csv").read_bytes()


def test_files_use_the_seed_export_format(tmp_path: Path, seed_data_dir: Path) -> None:
    generate(tmp_path, customers=500, days=200, seed=1)
    header = (tmp_path / "sessions.csv").read_text().splitlines()[0]
    assert header.startswith(SEED_SESSIONS_HEADER)  # plus the optional added_to_cart column
    assert (tmp_path / "customers.csv").read_text().splitlines()[0] == (
        seed_data_dir / "customers.csv").read_text().splitlines()[0]
    row = pl.read_csv(tmp_path / "sessions.csv", infer_schema=False).row(0, named=True)
    assert row["session_id"].startswith("SESS") and row["customer_id"].startswith("CUST")
    assert len(row["session_date"]) == 10 and row["purchase_made"] in {"0", "1"}


def test_leaky_category_has_lowest_conversion(sample) -> None:
    known = sample.sessions.filter(pl.col("product_viewed").is_in(list(sample.truth["categories"])))
    conv = known.group_by("product_viewed").agg(pl.len().alias("views"), pl.col("purchase_made").mean().alias("cr"))
    conv = conv.sort("cr")
    assert conv["product_viewed"][0] == sample.truth["leaky_category"]
    assert conv["cr"][0] < 0.5 * conv["cr"][1]  # by a wide margin
    assert conv.sort("views", descending=True)["product_viewed"][0] == sample.truth["leaky_category"]


def test_december_peak_and_weekend_pattern(sample) -> None:
    daily = sample.sessions.group_by("session_date").len()
    by_month = daily.group_by(pl.col("session_date").dt.month().alias("m")).agg(pl.col("len").mean()).sort("len")
    assert by_month["m"][-1] == 12
    by_weekday = daily.group_by(pl.col("session_date").dt.weekday().alias("wd")).agg(pl.col("len").mean()).sort("len")
    assert by_weekday["wd"][-1] == 1 + int(np.argmax(sample.truth["weekday_multiplier"]))


def test_planted_pairs_are_co_purchased_beyond_chance(sample) -> None:
    from ecom_assets.insights.analyses import cross_sell_rules

    rules, _ = cross_sell_rules(sample.sessions.with_columns(purchase_made=pl.col("purchase_made") == 1))
    found = {frozenset((a, b)) for a, b in rules.filter(pl.col("significant")).select("antecedent", "consequent").iter_rows()}
    assert found == {frozenset(p) for p in sample.truth["planted_pairs"]}


def test_true_churn_probability_is_calibrated_and_informative(sample) -> None:
    truth = sample.customer_truth.filter(pl.col("purchased_by_as_of"))
    assert abs(truth["churned_90d"].mean() - truth["p_no_purchase_90d"].mean()) < 0.03
    assert 0.75 < roc_auc_score(truth["churned_90d"], truth["p_no_purchase_90d"]) < 0.97


def test_top5_group_differs_in_first_30_days(sample) -> None:
    truth = sample.customer_truth
    top = truth.filter(pl.col("top5"))["sessions_first_30d"].mean()
    rest = truth.filter(~pl.col("top5"))["sessions_first_30d"].mean()
    assert top > 1.5 * rest


def test_defect_counts_match_the_truth(sample) -> None:
    counts = sample.truth["defects"]["counts"]
    assert sample.sessions.height - sample.sessions.unique().height == counts["duplicate_rows"] > 0
    s = sample.sessions.unique()  # the other defects are counted once, before duplication
    assert (s["customer_id"] == "").sum() == counts["empty_customer_id"] > 0
    assert s["product_viewed"].is_in(["", "Unknown"]).sum() + s["product_viewed"].is_null().sum() == counts["unknown_product"]
    assert sample.customers["gender"].null_count() == counts["missing_gender"]
    assert sample.customers["location"].null_count() == counts["missing_location"]
    joined = s.join(sample.customers, on="customer_id")
    assert (joined["session_date"] < joined["signup_date"]).sum() == counts["before_signup"] > 0
    clean = simulate(customers=300, days=200, seed=1, defects=DefectRates.none())
    assert sum(clean.truth["defects"]["counts"].values()) == 0


def test_split_files_are_chronological_and_add_up(tmp_path: Path, sample) -> None:
    paths = write_sample(sample, tmp_path, files=3)
    parts = [pl.read_csv(p, try_parse_dates=True) for p in sorted(tmp_path.glob("sessions_*.csv"))]
    assert len(parts) == 3 and len(paths) == 5
    for earlier, later in zip(parts, parts[1:]):
        assert earlier["session_date"].max() < later["session_date"].min()
    assert sum(p.height for p in parts) == sample.sessions.height


def test_drift_drop_sorts_last_and_is_shifted(tmp_path: Path) -> None:
    summary = generate(tmp_path, customers=1500, days=400, seed=2, drift=True, truth_out=tmp_path / "truth")
    names = sorted(p.name for p in tmp_path.glob("sessions*.csv"))
    assert names[-1] == "sessions_zz_drift.csv" and summary["drift_sessions"] > 0
    base = pl.read_csv(tmp_path / "sessions.csv")
    drifted = pl.read_csv(tmp_path / "sessions_zz_drift.csv", try_parse_dates=True)
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert str(drifted["session_date"].min()) > truth["as_of"]
    assert drifted["browsing_time_sec"].median() > 1.3 * base["browsing_time_sec"].median()
    assert drifted["purchase_made"].mean() < 0.8 * base["purchase_made"].mean()


def test_cli_generate(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--out", str(tmp_path / "l"), "--customers", "300", "--days", "120",
                 "--truth-out", str(tmp_path / "t")]) == 0
    assert "wrote 300 customers" in capsys.readouterr().out
    assert (tmp_path / "t" / "customer_truth.parquet").exists()
