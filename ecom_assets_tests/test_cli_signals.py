"""Ctrl-C / SIGTERM stop `ecom-assets run` within seconds, name where it stopped, exit 130 / 143, and
leave every stored table complete (the tryout's Ctrl-C was ignored for over 40 s: Dagster turned it
into one failed step and the CLI went on with its next run)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl

from ecom_assets.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _signal_on(process: subprocess.Popen, marker: str, signum: int) -> tuple[str, float | None]:
    """(the whole output, seconds from the signal to the exit); the signal goes when `marker` is printed."""
    lines, sent = [], None
    for line in process.stdout:
        lines.append(line)
        if sent is None and marker in line:
            process.send_signal(signum)
            sent = time.monotonic()
    process.wait(timeout=60)
    return "".join(lines), (time.monotonic() - sent) if sent is not None else None


def test_ctrl_c_during_ingest_stops_the_run_and_keeps_stored_tables_whole(cli_env: Path) -> None:
    assert main(["generate", "--out", str(cli_env / "landing"), "--customers", "200", "--days", "200",
                 "--files", "3", "--seed", "5"]) == 0
    run = _start(["-m", "ecom_assets.cli", "run", "--data-dir", str(cli_env)])
    out, stopped_after = _signal_on(run, "raw_sessions", signal.SIGINT)  # the first sessions drop is in
    assert stopped_after is not None, out
    assert run.returncode == 130, out
    assert stopped_after < 10, (stopped_after, out)
    assert "interrupted by SIGINT during " in out, out
    assert "(ingest)" in out or "the ingest stage" in out, out  # the step when one was running
    assert "build: every table" not in out  # nothing after the interrupted stage ran
    # every stored table is a complete parquet file; no temporary file was left where a reader looks
    stored = list((cli_env / "warehouse").rglob("*.parquet"))
    assert stored
    for path in stored:
        pl.read_parquet_schema(path)
    assert not [p for p in (cli_env / "warehouse").rglob("*") if p.name.endswith(".tmp") and not p.name.startswith(".")]


def test_a_step_that_does_not_stop_is_cut_off_after_the_grace_period() -> None:
    """Dagster defers a SIGINT between steps (its handler only sets a flag) and a step inside one long
    native call cannot react at all: the watcher exits 130 after the grace period all the same."""
    script = textwrap.dedent("""
        import signal, time
        from ecom_assets.progress import RunLogging
        logging = RunLogging()
        with logging.stop_on_signals(grace_s=1.0):
            signal.signal(signal.SIGINT, lambda *_: None)  # as dagster's capture_interrupts does
            print("ready", flush=True)
            time.sleep(30)
        print("not stopped", flush=True)
    """)
    process = _start(["-c", script])
    out, stopped_after = _signal_on(process, "ready", signal.SIGINT)
    assert process.returncode == 130, out
    assert stopped_after is not None and stopped_after < 5, (stopped_after, out)
    assert "did not stop within 1 s: exiting now" in out and "not stopped" not in out
