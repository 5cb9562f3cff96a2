"""Drops, rows and builds never block or lose anything: what reaches a clean table already satisfies
the clean schema; a drop is its partition key; an id repeated in one file with other content is never
resolved by last-wins; sub-folders are drops; a rejected file is an on-call signal."""

import gzip
import json
import re
from datetime import date

import dagster as dg
import polars as pl
import pytest

from ecom_assets.clean import clean_customers, clean_sessions
from ecom_assets.ingest import landing_rejects, raw_customers, raw_sessions
from ecom_assets.ingest.landing import is_ignored, kind_of
from ecom_assets.ingest.parse import parse_drop
from ecom_assets.ingest.sensor import landing_zone_sensor
from ecom_assets.schemas import CleanCustomers, CleanSessions, row_checks
from ecom_assets_tests.ingest_helpers import (CUSTOMERS_HEADER, SESSIONS_HEADER, drop, ingest_and_clean, quarantine,
                                              rejected_reasons)

TODAY = date(2026, 11, 24)


def tick(instance, resources, cursor=None) -> dg.SensorResult:
    return landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))


def parse(text: str, kind: str = "sessions"):
    return parse_drop(text.encode(), kind, f"{kind}.csv__abc", today=TODAY)


def reasons(parsed) -> dict[int, str]:
    return dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"], strict=True))


def test_the_clean_schemas_row_rules_are_what_ingest_applies() -> None:
    """Every nullability and value check of the clean schemas is a row rule; only uniqueness (table-wide)
    is left to the table-level validation."""
    for model in (CleanSessions, CleanCustomers):
        schema = model.to_schema()
        rules = {(r.column, r.name) for r in row_checks(model)}
        assert {(name, "not null") for name, col in schema.columns.items() if not col.nullable} <= rules
        value_checks = {(name, check.name) for name, col in schema.columns.items() for check in col.checks}
        assert {(c, n.split("(")[0]) for c, n in rules if n != "not null"} == value_checks - {(c, "unique") for c, _ in
                                                                                            value_checks}


def test_nan_and_infinite_amounts_are_quarantined_naming_the_schema_rule() -> None:
    """A spreadsheet export writes `NaN` for an empty formula result and `inf` for a division by zero;
    both parse as floats, so only the clean schema's rules catch them."""
    parsed = parse(SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,NaN\nS2,C1,2024-01-03,Books,inf,0,0\n"
                   "S3,C1,2024-01-04,Books,60,1,19.99\n")
    found = reasons(parsed)
    # the values helper may catch these earlier with its own reason; either way they never reach a clean table
    assert set(found) == {2, 3}
    assert "purchase_amount" in found[2] and "browsing_time_sec" in found[3]
    assert parsed.clean["session_id"].to_list() == ["S3"]
    assert parsed.rows_in == parsed.clean.height + parsed.quarantine.height + parsed.duplicates


def test_every_clean_row_satisfies_the_clean_schema_whatever_the_cells() -> None:
    """Fuzz: cells taken from what real exports contain (NaN, inf, 1e309, -0, blanks, text); whatever
    ingest keeps passes CleanSessions row by row."""
    cells = ["NaN", "nan", "inf", "-inf", "1e309", "-0", "0", "", "12.5", "-3", "abc", "1e-3", " 7 "]
    lines = [f"S{i},C{i % 7},2024-01-{1 + i % 28:02d},Books,{cells[i % len(cells)]},{i % 2},"
             f"{cells[(i * 5) % len(cells)] if i % 2 else '0'}" for i in range(len(cells) ** 2)]
    parsed = parse(SESSIONS_HEADER + "\n" + "\n".join(lines) + "\n")
    added_later = {name: col for name, col in CleanSessions.to_schema().columns.items() if name not in parsed.clean.columns}
    clean = parsed.clean.with_columns(  # the columns clean_sessions adds (flags, event counts) at a valid value
        pl.lit(None if col.nullable else 0).cast(col.dtype.type).alias(name) for name, col in added_later.items()
    ).select(list(CleanSessions.to_schema().columns))
    CleanSessions.validate(clean)
    assert clean["purchase_amount"].is_finite().all()
    assert parsed.clean.height and parsed.quarantine.height
    assert parsed.rows_in == len(lines) == parsed.clean.height + parsed.quarantine.height + parsed.duplicates


def test_one_bad_cell_never_blocks_the_clean_table_nor_later_builds(data_dir, instance, resources) -> None:
    """Reproduced: one `NaN` purchase_amount used to pass ingest and fail clean_sessions' pandera
    validation, in that build and every later one."""
    drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,NaN\nS2,C1,2024-01-03,Home,60,1,5\n")
    first = ingest_and_clean(data_dir, instance, resources)
    assert first["sessions"]["session_id"].to_list() == ["S2"]
    assert "purchase_amount" in quarantine(data_dir)["reason"][0]  # NaN as a missing marker or a broken schema rule
    drop(data_dir, "sessions_2.csv", SESSIONS_HEADER + "\nS3,C1,2024-01-04,Home,60,1,7\n")
    assert ingest_and_clean(data_dir, instance, resources)["sessions"].height == 2


ROUNDED = ("session_id was rounded by a spreadsheet into scientific notation (the real id is lost; export the column "
           "as text): '1.23457E+11'")
ROUNDED_REPEATED = f"session_id repeated in this file with different content (every version quarantined): '1.23457E+11'; {ROUNDED}"


def test_ids_a_spreadsheet_rounded_are_quarantined_in_every_id_column() -> None:
    """Excel saves 12-digit ids as `1.23457E+11`: sixty customers of a sessions export became one
    customer (ranked first on the churn list). Such an id can never be read back, in any id column."""
    parsed = parse(SESSIONS_HEADER + "\nS1,1.23457E+11,2024-01-02,Home,,1,15.30\nS2,1.23457E+11,2024-01-03,Home,,0,\n"
                   "S3,123456789012,2024-01-03,Home,,1,5\n1.23457E+11,C4,2024-01-04,Books,,1,6\n")
    customer = ("customer_id was rounded by a spreadsheet into scientific notation (the real id is lost; export the "
                "column as text): '1.23457E+11'")
    assert reasons(parsed) == {2: customer, 3: customer, 5: ROUNDED}
    assert parsed.clean["customer_id"].to_list() == ["123456789012"]
    orders = parse_drop(b"order_id,customer_id,order_time,product_id,quantity,unit_price\n"
                        b"3.02112E+11,K15,2024-01-02,P1,1,5\n302112000001,K16,2024-01-02,2.5E+12,1,5\n",
                        "orders", "orders_x.csv__abc", today=date(2024, 6, 1))
    assert orders.clean.height == 0 and orders.quarantine["reason"].str.contains("rounded by a spreadsheet").all()


def test_repeated_session_id_with_other_content_quarantines_every_version() -> None:
    """An order-line export saved as sessions: invoice 536365 has three lines (three amounts), and an
    id Excel rounded to `1.23457E+11` now names two different sessions. Last-wins would keep one line
    and silently drop the rest of the order's revenue. An identical repeated line stays a duplicate."""
    parsed = parse(SESSIONS_HEADER + "\n536365,C1,2024-01-02,Home,,1,15.30\n536365,C1,2024-01-02,Home,,1,22.00\n"
                   "536365,C1,2024-01-02,Gifts,,1,20.34\n1.23457E+11,C2,2024-01-03,Books,,1,5\n"
                   "1.23457E+11,C3,2024-01-04,Books,,1,6\nS9,C4,2024-01-05,Toys,,1,9\nS9,C4,2024-01-05,Toys,,1,9\n")
    found = reasons(parsed)
    assert found == {2: "session_id repeated in this file with different content (every version quarantined): '536365'",
                     3: "session_id repeated in this file with different content (every version quarantined): '536365'",
                     4: "session_id repeated in this file with different content (every version quarantined): '536365'",
                     5: ROUNDED_REPEATED, 6: ROUNDED_REPEATED}
    assert parsed.clean["session_id"].to_list() == ["S9"] and parsed.duplicates == 1
    assert parsed.rows_in == parsed.clean.height + parsed.quarantine.height + parsed.duplicates


def test_repeated_customer_id_with_other_content_in_one_customers_file() -> None:
    """A CRM export with one row per address: the same customer twice with two locations."""
    parsed = parse(CUSTOMERS_HEADER + "\nC1,30,Female,Leeds,2023-01-01\nC1,30,Female,York,2023-01-01\n"
                   "C2,41,Male,Bath,2023-02-01\n", kind="customers")
    assert reasons(parsed) == {2: "customer_id repeated in this file with different content (every version quarantined): 'C1'",
                               3: "customer_id repeated in this file with different content (every version quarantined): 'C1'"}
    assert parsed.clean["customer_id"].to_list() == ["C2"]


def test_a_reused_file_name_is_a_new_drop_and_keeps_the_earlier_one(data_dir, instance, resources) -> None:
    """A shop exports `sessions_daily.csv` every day under the same name (and once re-sends a corrected
    file under it): each is its own drop; nothing of an earlier drop is overwritten."""
    drop(data_dir, "sessions_daily.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\nS2,,2024-01-02,Books,1,0,0\n")
    first = ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "sessions_daily.csv", SESSIONS_HEADER + "\nS3,C1,2024-01-03,Books,120,1,9.99\nS4,C1,2024-13-03,Books,1,0,0\n")
    second = ingest_and_clean(data_dir, instance, resources)
    assert first["sessions"].height == 1 and sorted(second["sessions"]["session_id"]) == ["S1", "S3"]
    keys = instance.get_dynamic_partitions("sessions_files")
    assert len(keys) == 2 and all(k.startswith("sessions_daily.csv__") for k in keys)
    records = sorted((data_dir / "quarantine" / "sessions").glob("*.json"))
    assert {json.loads(p.read_text())["source_file"] for p in records} == set(keys)
    assert sorted(quarantine(data_dir)["session_id"]) == ["S2", "S4"]  # both drops' quarantined rows kept
    assert len(list((data_dir / "archive").glob("sessions_daily__*.csv"))) == 2
    assert len(list((data_dir / "warehouse" / "clean_sessions").glob("part-*.parquet"))) == 2
    checks = {(c.asset_key.path[-1], c.check_name): c.passed for c in second["result"].get_asset_check_evaluations()}
    assert checks[("clean_sessions", "every_drop_accounted")] and checks[("clean_sessions", "rows_accounted_for")]


def test_a_reused_name_rejected_twice_keeps_both_rejects(data_dir, instance, resources) -> None:
    drop(data_dir, "sessions_daily.csv", "no,header\n1,2\n")
    ingest_and_clean(data_dir, instance, resources)
    drop(data_dir, "sessions_daily.csv", "still,no,header\n1,2,3\n")
    ingest_and_clean(data_dir, instance, resources)
    assert len(list((data_dir / "rejected").glob("sessions_daily__*.csv.reason.txt"))) == 2


def test_names_below_landing_hidden_and_temporary_components() -> None:
    assert kind_of("2024-05/Sessions_May.CSV.gz") == "sessions" and kind_of("sessions.csv.zip") is None
    assert kind_of("customers/export.csv") is None  # the folder's name is no kind
    assert is_ignored(".staging/sessions.csv") and is_ignored("2024-05/.sessions.csv")
    assert is_ignored("upload.part/sessions.csv") and is_ignored("~$sessions.csv")
    assert not is_ignored("2024-05/sessions.csv")


def test_files_in_sub_folders_are_drops(data_dir, instance, resources) -> None:
    """A team sorts exports into one folder per month, the same file name in each; a sync tool stages
    files in `.sync/`; one export arrives gzipped (its header is checked through gzip; parse reads it)."""
    drop(data_dir, "2024-01/sessions.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\n")
    drop(data_dir, "2024-02/sessions.csv", SESSIONS_HEADER + "\nS2,C1,2024-02-02,Books,120,1,9.99\n")
    drop(data_dir, "2024-03/deep/sessions_march.csv.gz",
         gzip.compress((SESSIONS_HEADER + "\nS3,C1,2024-03-02,Books,120,1,5.00\n").encode()))
    drop(data_dir, ".sync/sessions_partial.csv", "half a file")
    second = tick(instance, resources, tick(instance, resources).cursor)
    assert sorted(r.tags["ecom/source_file"] for r in second.run_requests) == [
        "2024-01/sessions.csv", "2024-02/sessions.csv", "2024-03/deep/sessions_march.csv.gz"]
    assert not second.asset_events  # nothing rejected
    (data_dir / "landing" / "2024-03" / "deep" / "sessions_march.csv.gz").unlink()
    out = ingest_and_clean(data_dir, instance, resources)
    assert sorted(out["sessions"]["session_id"]) == ["S1", "S2"]
    assert (data_dir / "landing" / ".sync" / "sessions_partial.csv").exists()
    assert not list((data_dir / "landing").rglob("sessions.csv"))
    assert len(list((data_dir / "archive").glob("sessions__*.csv"))) == 2


def test_a_rejected_file_is_an_alert_a_warning_and_a_failing_check(data_dir, instance, resources, capsys) -> None:
    """An export from the wrong report (no session columns) arrives: on-call sees it in the sensor's
    result (an observation and a failing WARN check on landing_rejects), in the log and in alerts."""
    drop(data_dir, "exports/sessions_wrong_report.csv", "order,total\n1,2\n")
    result = tick(instance, resources, tick(instance, resources).cursor)
    observation, check = result.asset_events
    assert observation.asset_key == landing_rejects.key
    assert observation.metadata["file"].value == "exports/sessions_wrong_report.csv"
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "missing required column(s) session_id" in check.description
    # the sensor's logger (dagster's, shown with the tick in the UI) writes it as a WARNING
    assert re.search(r"WARNING - file rejected: exports/sessions_wrong_report.csv: missing required",
                     capsys.readouterr().err)
    (alert,) = [json.loads(line) for line in (data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert alert["alert"] == "file_rejected" and alert["file"] == "exports/sessions_wrong_report.csv"
    assert "missing required column(s)" in rejected_reasons(data_dir)["exports/sessions_wrong_report.csv"]
    built = dg.materialize([landing_rejects], instance=instance, resources=resources)
    table = built.output_for_node("landing_rejects")
    assert table["file"].to_list() == ["exports/sessions_wrong_report.csv"] and table.schema["time"] == pl.Datetime(
        "us", "UTC")
    (evaluation,) = built.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN


@pytest.mark.parametrize(("cell", "flagged"), [("NaN", False), ("1e309", True)])
def test_customers_age_beyond_float_range_stays_a_flag(cell: str, flagged: bool) -> None:
    """An age column with a missing marker or a spreadsheet's overflow: the customer is kept, age null
    (the clean schema's age range applies to the typed value), an overflow flagged as out of range."""
    parsed = parse(CUSTOMERS_HEADER + f"\nC1,{cell},Female,Leeds,2023-01-01\n", kind="customers")
    assert parsed.clean.height == 1 and parsed.clean["age"][0] is None
    assert parsed.clean["age_out_of_range"][0] is flagged


def test_clean_tables_build_from_raw_partitions_with_the_schema_rules(data_dir, instance, resources) -> None:
    drop(data_dir, "customers.csv", CUSTOMERS_HEADER + "\nC1,30,Female,Leeds,2023-01-01\n")
    drop(data_dir, "sessions.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,-inf,0,0\n")
    out = ingest_and_clean(data_dir, instance, resources)
    assert out["customers"].height == 1 and out["sessions"].height == 0
    assert dg.materialize([raw_customers, raw_sessions, clean_customers, clean_sessions], instance=instance,
                          resources=resources, selection=[clean_sessions]).success


def test_campaigns_have_no_clean_schema_rules_but_the_same_repeated_id_rule() -> None:
    """A campaign calendar pasted twice with the end date edited in the second copy."""
    parsed = parse("campaign_id,name,start_date,end_date\nK1,Spring,2024-03-01,2024-03-10\n"
                   "K1,Spring,2024-03-01,2024-03-17\nK2,Summer,2024-06-01,2024-06-10\n", kind="campaigns")
    assert reasons(parsed) == {2: "campaign_id repeated in this file with different content (every version quarantined): 'K1'",
                               3: "campaign_id repeated in this file with different content (every version quarantined): 'K1'"}
    assert parsed.clean["campaign_id"].to_list() == ["K2"]


def test_a_drop_stored_before_the_schema_rules_is_held_back_not_blocking(data_dir, instance, resources) -> None:
    """An installation upgraded with a drop ingested by the old rules, one `NaN` amount in its stored
    rows: that drop is held back (named by every_drop_accounted), every other drop is built."""
    drop(data_dir, "sessions_old.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\nS2,C1,2024-01-03,Home,60,1,5\n")
    drop(data_dir, "sessions_new.csv", SESSIONS_HEADER + "\nS3,C1,2024-01-04,Home,60,1,7\n")
    ingest_and_clean(data_dir, instance, resources)
    old = next(k for k in instance.get_dynamic_partitions("sessions_files") if k.startswith("sessions_old"))
    stored = next((data_dir / "warehouse" / "raw_sessions").glob("sessions_old*.parquet"))
    rows = pl.read_parquet(stored)
    rows.with_columns(purchase_amount=pl.when(pl.col("line") == 2).then(float("nan")).otherwise(
        pl.col("purchase_amount"))).write_parquet(stored)  # what the old ingest let through
    record = next((data_dir / "quarantine" / "sessions").glob("sessions_old*.json"))
    accounting = json.loads(record.read_text())
    record.write_text(json.dumps({k: v for k, v in accounting.items() if k != "clean_schema_rules"}))
    (data_dir / "warehouse" / "clean_sessions" / "_manifest.json").unlink()  # a fresh rebuild of the table
    for part in (data_dir / "warehouse" / "clean_sessions").glob("part-*.parquet"):
        part.unlink()
    built = dg.materialize([raw_customers, raw_sessions, clean_customers, clean_sessions], instance=instance,
                           resources=resources, selection=[clean_customers, clean_sessions])
    assert built.success
    assert built.output_for_node("clean_sessions").scan().collect()["session_id"].to_list() == ["S3"]
    held = next(c for c in built.get_asset_check_evaluations()
                if c.asset_key.path[-1] == "clean_sessions" and c.check_name == "every_drop_accounted")
    assert not held.passed and old in held.description and "purchase_amount not null: 1 rows" in held.description
