"""A build with zero clean rows finishes: exit 0, typed empty tables, "no data yet" in the assets'
metadata and in the `ecom-assets run` summary. Every way a real first build ends up empty."""

from pathlib import Path

import polars as pl
import pytest

from ecom_assets.churn.assets import RISK_LIST_COLUMNS
from ecom_assets.cli import main
from ecom_assets.features.btyd import BTYD_COLUMNS
from ecom_assets.features.build import FEATURE_ORDER
from ecom_assets.insights.assets import SEGMENT_COLUMNS, TREND_COLUMNS
from ecom_assets_tests.ingest_helpers import CUSTOMERS_HEADER, SESSIONS_HEADER

VARIANTS = {
    # a shop sends its CRM export first; the sessions come next week
    "only_customers": {"customers.csv": CUSTOMERS_HEADER + "\nC1,30,Female,Leeds,2023-01-01\n"},
    # the wrong report exported, and an empty file from a failed export job
    "every_drop_rejected": {"sessions_orders.csv": "order,total\n1,2\n", "customers.csv": ""},
    # every row breaks a rule: a date in US format, a line without customer, a NaN amount
    "every_row_quarantined": {"sessions.csv": SESSIONS_HEADER + "\nS1,C1,12/01/2024,Books,5,1,9\nS2,,2024-01-02,Books,5,1,9"
                                              "\nS3,C1,2024-01-02,Books,5,1,NaN\n"},
    "nothing_dropped": {},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_an_empty_build_exits_zero_and_says_no_data_yet(variant: str, cli_env: Path, capsys) -> None:
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    for name, text in VARIANTS[variant].items():
        (landing / name).write_text(text)
    assert main(["run", "--data-dir", str(cli_env)]) == 0
    out = capsys.readouterr().out
    empty_line = next(line for line in out.splitlines() if line.startswith("no data yet:"))
    assert "drop customers*/sessions*/orders*/events*.csv files" in empty_line  # every input kind ends in clean_sessions
    for table in ("clean_sessions", "customer_features", "customer_segments", "sales_trends", "churn_predictions"):
        assert table in empty_line
    warehouse = cli_env / "warehouse"
    features = pl.read_parquet(warehouse / "customer_features.parquet")
    assert features.is_empty() and set(FEATURE_ORDER + BTYD_COLUMNS) <= set(features.columns)
    segments = pl.read_parquet(warehouse / "customer_segments.parquet")
    assert segments.columns == list(SEGMENT_COLUMNS) and segments.schema["revenue"] == pl.Float64
    assert pl.read_parquet(warehouse / "sales_trends.parquet").columns == list(TREND_COLUMNS)
    assert pl.scan_parquet(warehouse / "clean_sessions" / "_schema.parquet").collect().height == 0
    assert (cli_env / "reports" / "dashboard.html").exists()
    # the marketers' exports exist, header only: a mail merge or BI import reading them finds no customer, not no file
    exports = cli_env / "exports"
    for name, columns in (("churn_risk_list.csv", RISK_LIST_COLUMNS), ("segments.csv", SEGMENT_COLUMNS)):
        assert (exports / name).read_text().splitlines() == [",".join(columns)]
