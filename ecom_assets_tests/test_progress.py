"""The CLI's step printer on real (tiny) runs: a line per step as it ends, a heartbeat during a long
step, Dagster's DEBUG lines only when verbose."""

import io
import re
import time

import dagster as dg

from ecom_assets.progress import RunLogging, fmt, key_figure


@dg.asset(check_specs=[dg.AssetCheckSpec("looks_fine", asset="slow_table")])
def slow_table():
    time.sleep(1.6)  # a long step, as raw_sessions on 10M rows is
    yield dg.Output(1, metadata={"dagster/row_count": 1234567, "auc": 0.8792239124676883})
    yield dg.AssetCheckResult(check_name="looks_fine", passed=False, severity=dg.AssetCheckSeverity.WARN,
                              description="browsing_time_sec PSI 0.457")


def _job():
    return dg.Definitions(assets=[slow_table], jobs=[dg.define_asset_job("slow_job")]).resolve_job_def("slow_job")


def test_one_line_per_step_and_a_heartbeat(capfd) -> None:
    out = io.StringIO()
    logging = RunLogging(out=out)
    logging.printer.heartbeat_s = 0.5
    result = logging.execute(_job(), instance=dg.DagsterInstance.ephemeral())
    logging.close()
    assert result.success
    lines = out.getvalue().splitlines()
    assert any("slow_table still running" in line for line in lines), lines
    (done,) = [line for line in lines if line.startswith("  slow_table ")]
    assert "rows 1,234,567" in done and "check looks_fine FAILED (WARN): browsing_time_sec PSI 0.457" in done
    assert logging.printer.steps[0][0] == "slow_table" and logging.printer.steps[0][2]
    assert "DEBUG" not in capfd.readouterr().err


def test_verbose_adds_dagsters_event_lines(capfd) -> None:
    logging = RunLogging(verbose=True, out=io.StringIO())
    logging.execute(_job(), instance=dg.DagsterInstance.ephemeral())
    logging.close()
    captured = capfd.readouterr()
    assert "STEP_SUCCESS" in captured.err + captured.out


def test_figures_are_rounded() -> None:
    assert fmt(0.8792239124676883) == "0.879" and fmt(1234567) == "1,234,567" and fmt(65432.1) == "65,432"
    assert key_figure({"status": dg.MetadataValue.text("champion"), "dagster/row_count": 3}) == "status champion"


def test_an_assets_own_account_wins_over_the_generic_no_data_status() -> None:
    """An events export whose every row was quarantined (epoch timestamps, undeclared) and the first
    sessions drop (nothing earlier to profile against) are not "no data yet" situations."""
    no_data = dg.MetadataValue.text("no data yet")
    all_quarantined = {"status": no_data, "rows_in": 7_251, "clean": dg.MetadataValue.int(0),
                       "quarantined": dg.MetadataValue.int(7_250), "duplicate": dg.MetadataValue.int(1)}
    assert key_figure(all_quarantined) == "0 clean rows, 7,250 quarantined, 1 duplicate (rows in 7,251)"
    first = {"status": no_data, "state": dg.MetadataValue.text("first drop: nothing to compare with")}
    assert key_figure(first) == "state first drop: nothing to compare with"
    assert key_figure({"status": no_data, "dagster/row_count": 0}) == "status no data yet"
    header_only = {"status": no_data, "rows_in": 0, "clean": dg.MetadataValue.int(0),
                   "quarantined": dg.MetadataValue.int(0), "duplicate": dg.MetadataValue.int(0)}
    assert key_figure(header_only) == "header only: 0 rows"  # was "0 clean rows, 0 quarantined (rows in 0)"


def test_a_merged_tables_line_adds_up_to_the_rows_from_the_drops() -> None:
    """clean_sessions after a re-delivery: 1,553 clean rows from three drops, 50 of them the same rows
    again and 9 an earlier version of a session a later drop changed. The line used to say only
    "rows 1,494", which matched none of the ingest lines' figures."""
    merged = {"rows_from_drops": dg.MetadataValue.int(1_553), "duplicates_across_files": dg.MetadataValue.int(50),
              "superseded_by_later_drop": dg.MetadataValue.int(9), "dagster/row_count": dg.MetadataValue.int(1_494)}
    line = key_figure(merged)
    assert line == "rows from drops 1,553 = 1,494 kept + 50 duplicate across files + 9 superseded"
    total, *parts = (int(n.replace(",", "")) for n in re.findall(r"[\d,]+\d|\d", line))
    assert total == sum(parts)


def test_session_parts_merged_across_files_are_a_term_of_the_line() -> None:
    """clean_sessions after an events export cut at midnight into two daily files: 4,175 session parts
    from the drops, 175 of them the second half of a session begun in the other file (merged into it).
    The line used to stop at "+ 0 superseded", 175 short of the rows from the drops."""
    merged = {"rows_from_drops": dg.MetadataValue.int(4_175), "duplicates_across_files": dg.MetadataValue.int(0),
              "superseded_by_later_drop": dg.MetadataValue.int(0), "merged_across_files": dg.MetadataValue.int(175),
              "dagster/row_count": dg.MetadataValue.int(4_000)}
    line = key_figure(merged)
    assert line == ("rows from drops 4,175 = 4,000 kept + 0 duplicate across files + 0 superseded "
                    "+ 175 session parts merged across files")
    total, *parts = (int(n.replace(",", "")) for n in re.findall(r"[\d,]+\d|\d", line))
    assert total == sum(parts)
    # order lines are never merged: no zero term for them
    assert "merged" not in key_figure({**merged, "merged_across_files": dg.MetadataValue.int(0),
                                       "dagster/row_count": dg.MetadataValue.int(4_175)})
