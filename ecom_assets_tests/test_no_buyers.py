"""A shop export without any purchase (browsing-only sessions) finishes: the analyses that need
buyers say why they have no result, the build exits 0."""

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from ecom_assets.cli import main
from ecom_assets.insights import analyses
from ecom_assets.insights.assets import high_value_early_signals
from ecom_assets_tests.ingest_helpers import SESSIONS_HEADER


def _sessions(n: int, buyers: int = 0, customers: int = 300) -> pl.DataFrame:
    """n sessions of `customers` customers over 300 days; the first `buyers` customers buy once each."""
    rng = np.random.default_rng(3)
    ids = [f"C{i % customers:04d}" for i in range(n)]
    bought = [i < buyers for i in range(n)]
    return pl.DataFrame({
        "session_id": [f"S{i}" for i in range(n)], "customer_id": ids,
        "session_date": [date(2024, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 300, n)],
        "product_viewed": ["Books"] * n, "browsing_time_sec": rng.integers(5, 500, n).astype(float),
        "purchase_made": bought, "purchase_amount": [50.0 if b else 0.0 for b in bought],
    })


def test_early_signals_without_any_buyer_say_so() -> None:
    output = high_value_early_signals(clean_sessions=_sessions(1500).lazy())
    assert output.value.is_empty()
    assert output.metadata["state"].value.startswith("too few top-5 % spenders")
    # no revenue, no top spender (the 95th percentile of all-zero revenue used to mark everyone)
    assert not analyses.early_signals_frame(_sessions(1500))["top5"].any()


def test_early_signals_with_buyers_in_only_one_part_say_so() -> None:
    # 12 buyers overall, but the hash split leaves the held-out or fitting part with fewer than 10
    signals, model = analyses.high_value_early_signals(_sessions(1500, buyers=12))
    assert signals.is_empty() and "of each are needed" in model["state"]


def test_a_sessions_export_without_purchases_builds(cli_env: Path, capsys, recwarn) -> None:
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    frame = _sessions(1500).with_columns(pl.col("purchase_made").cast(pl.Int8))
    (landing / "sessions.csv").write_text(frame.write_csv())
    assert frame.columns == SESSIONS_HEADER.split(",")
    assert main(["run", "--data-dir", str(cli_env)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("high_value_early_signals"))
    assert "too few top-5 % spenders" in line
    # customer_segments compared revenue with the 80th percentile of no purchaser (None)
    assert not [w for w in recwarn if "Comparisons with None" in str(w.message)]
