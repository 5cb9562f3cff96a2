"""What `ecom-assets run` prints while runs execute: one line per step (asset, seconds, key figure),
a "still running" line every `HEARTBEAT_S` seconds of a long step, and Dagster's own event lines
only when asked (`--verbose`).

It is a Dagster logger: every run of the CLI gets it through `RunLogging.apply`, so the lines appear
as the events happen, not after the run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time

import dagster as dg

HEARTBEAT_S = 15
INTERRUPTED_ERROR = "DagsterExecutionInterruptedError"  # what Dagster raises in a step a signal interrupts
STOP_GRACE_S = 5.0  # after SIGINT/SIGTERM, the longest a step may take to stop before the process exits anyway
LOGGER = "ecom_progress"
# the first of these a step's materialization carries is its key figure
KEY_FIGURES = ("status", "state", "rows_in", "rows_from_drops", "shifted", "drift_share", "dagster/row_count", "served_by", "rows")


def fmt(value) -> str:
    """Figures for people: thousands separators, floats to 3 significant digits."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


def key_figure(metadata: dict) -> str:
    """`name value` of the first KEY_FIGURES entry in a materialization's metadata ('' if none)."""
    from ecom_assets.metadata import NO_DATA

    def plain(name):
        return getattr(metadata[name], "value", metadata[name])

    for name in KEY_FIGURES:
        if name in metadata:
            value = plain(name)
            # the IO manager's generic "no data yet" gives way to the asset's own account of why
            if name == "status" and value == NO_DATA and ("state" in metadata or "rows_in" in metadata):
                continue
            extra = ""
            if name == "rows_in" and "clean" in metadata:
                if value == 0:
                    return "header only: 0 rows"
                if plain("clean") == 0:
                    duplicate = f", {fmt(plain('duplicate'))} duplicate" if plain("duplicate") else ""
                    return f"0 clean rows, {fmt(plain('quarantined'))} quarantined{duplicate} (rows in {fmt(value)})"
                extra = (f" = {fmt(plain('clean'))} clean + {fmt(plain('quarantined'))} quarantined"
                         f" + {fmt(plain('duplicate'))} duplicate")
            if name == "rows_from_drops" and {"duplicates_across_files", "superseded_by_later_drop"} <= metadata.keys():
                # a merged table: the drops' clean rows end kept, a duplicate of another drop's, or superseded
                extra = (f" = {fmt(plain('dagster/row_count'))} kept + {fmt(plain('duplicates_across_files'))} duplicate "
                         f"across files + {fmt(plain('superseded_by_later_drop'))} superseded")
                # clean_sessions: parts of one session cut across events drops end as one row
                if "merged_across_files" in metadata and plain("merged_across_files"):
                    extra += f" + {fmt(plain('merged_across_files'))} session parts merged across files"
            return f"{'rows' if name == 'dagster/row_count' else name.replace('_', ' ')} {fmt(value)}{extra}"
    return ""


class StepPrinter(logging.Handler):
    """Turns Dagster step events into console lines (thread-safe; one printer for every run)."""

    def __init__(self, out=None, heartbeat_s: float = HEARTBEAT_S) -> None:
        super().__init__(level=logging.DEBUG)
        self.out = out or sys.stdout
        self.heartbeat_s = heartbeat_s
        self.steps: list[tuple[str, float, bool]] = []  # (step, seconds, succeeded)
        self._lock = threading.Lock()
        self._running: dict[str, list] = {}  # step -> [started, next heartbeat]
        self._notes: dict[str, list[str]] = {}
        self.interrupted: list[str] = []  # steps a signal stopped (Dagster raised INTERRUPTED_ERROR in them)
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat_s)):
            now = time.monotonic()
            with self._lock:
                for step, timing in self._running.items():
                    if now >= timing[1]:
                        timing[1] += self.heartbeat_s
                        self._print(f"  ... {step} still running ({now - timing[0]:.0f} s)")

    def close(self) -> None:
        self._stop.set()
        super().close()

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is None or not event.step_key:
            return
        step, kind = event.step_key, event.event_type_value
        with self._lock:
            if kind == "STEP_START":
                now = time.monotonic()
                self._running[step] = [now, now + self.heartbeat_s]
                self._notes[step] = []
            elif kind == "ASSET_MATERIALIZATION":
                materialization = event.event_specific_data.materialization
                part = f"[{materialization.partition.split('__')[0]}] " if materialization.partition else ""
                self._notes.setdefault(step, []).append(part + key_figure(materialization.metadata))
            elif kind == "ASSET_CHECK_EVALUATION":
                check = event.event_specific_data
                if not check.passed:
                    self._notes.setdefault(step, []).append(
                        f"check {check.check_name} FAILED ({check.severity.value}): {fmt(check.description or '')}")
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                started = self._running.pop(step, [time.monotonic()])[0]
                seconds = time.monotonic() - started
                ok = kind == "STEP_SUCCESS"
                notes = [n for n in self._notes.pop(step, []) if n]
                error = None if ok else event.event_specific_data.error
                if error is not None and error.cls_name == INTERRUPTED_ERROR:
                    self.interrupted.append(step)
                    notes.append("INTERRUPTED")
                elif not ok:
                    notes.append("FAILED: " + fmt((error.message if error else "").strip().splitlines()[0]
                                                 if error and error.message.strip() else "see the run in the UI"))
                self.steps.append((step, seconds, ok))
                self._print(f"  {step:<26} {seconds:6.1f} s  {'; '.join(notes)}".rstrip())


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached `ecom-assets run`: the CLI stops and exits with `exit_code`."""

    def __init__(self, signum: int, steps: list[str] | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.steps = steps or []

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopOnSignals:
    """Make SIGINT (Ctrl-C) and SIGTERM stop `ecom-assets run` within `grace_s` seconds.

    Dagster's in-process execution defers a SIGINT between steps and turns one inside a step into a
    failed step, after which the CLI went on with its next run — so a Ctrl-C was ignored for as long
    as the remaining runs took. Here: the signal number is written to a socket at C level
    (`signal.set_wakeup_fd`, whoever's Python handler is installed) and a watcher thread notes it and
    the steps running; every run then ends as Dagster stops it and `check` raises `RunInterrupted`
    after it. Outside a run the handler raises it at once. If the process is still going `grace_s`
    after the signal (a step inside one long native call, or Dagster deferring the signal), the
    watcher exits with 128 + signal number: every stored table is written to a temporary file and
    renamed (io.atomic_write_bytes), so a table is either the new complete one or the previous one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, printer: StepPrinter | None = None, grace_s: float = STOP_GRACE_S, out=None) -> None:
        self.printer, self.grace_s, self.out = printer, grace_s, out or sys.stdout
        self.signum: int | None = None
        self.steps: list[str] = []
        self._done = threading.Event()
        self._previous: dict = {}
        self._previous_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set signal handlers: a caller's thread keeps its own
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._handler)
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(reader,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._sockets is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        for sock in self._sockets or ():
            sock.close()

    def _handler(self, signum: int, _frame) -> None:
        # no lock here: the main thread may hold the printer's lock when the handler runs
        self.signum = self.signum or signum
        raise RunInterrupted(self.signum, self.steps)

    def _watch(self, reader: socket.socket) -> None:
        while not self._done.is_set():
            try:
                data = reader.recv(64)
            except OSError:
                return
            received = [n for n in data if n in self.SIGNALS]
            if not data or self._done.is_set():
                return
            if not received:
                continue
            if self.signum is None or not self.steps:
                self.steps = self.printer.running() if self.printer else []
            self.signum = self.signum or received[0]
            if self._done.wait(self.grace_s):
                return
            print(f"{', '.join(self.steps) or 'the run'} did not stop within {self.grace_s:.0f} s: exiting now; "
                  "stored tables are the last complete ones (atomic writes); its Dagster run stays 'started' in the UI",
                  file=self.out, flush=True)
            os._exit(128 + self.signum)

    def check(self) -> None:
        """Raise RunInterrupted when a signal arrived (during a run that Dagster then stopped)."""
        if self.signum is not None:
            raise RunInterrupted(self.signum, self.steps or (self.printer.interrupted if self.printer else []))


class RunLogging:
    """The loggers every CLI run gets: the step printer, plus Dagster's console lines if verbose."""

    def __init__(self, verbose: bool = False, out=None, on_failure=None) -> None:
        self.printer = StepPrinter(out)
        # called as on_failure(result, instance) after a failed run: no daemon alerts for in-process runs
        self.on_failure = on_failure
        self.stop: StopOnSignals | None = None  # set by `stop_on_signals`
        printer = self.printer

        @dg.logger
        def ecom_progress(_init_context):
            logger = logging.Logger(LOGGER, level=logging.DEBUG)
            logger.addHandler(printer)
            return logger

        self.logger_defs = {LOGGER: ecom_progress}
        self.run_config = {"loggers": {LOGGER: {}}}
        if verbose:
            self.logger_defs["console"] = dg.colored_console_logger
            self.run_config["loggers"]["console"] = {"config": {"log_level": "DEBUG"}}

    def apply(self, job: dg.JobDefinition) -> dg.JobDefinition:
        return job.with_logger_defs(self.logger_defs)

    def stop_on_signals(self, grace_s: float = STOP_GRACE_S) -> StopOnSignals:
        """A context in which SIGINT/SIGTERM stop the CLI (`RunInterrupted`, see StopOnSignals)."""
        self.stop = StopOnSignals(self.printer, grace_s, self.printer.out)
        return self.stop

    def execute(self, job: dg.JobDefinition, run_config: dict | None = None, **kwargs):
        """`job.execute_in_process` with these loggers (never raises on a failed step; raises
        RunInterrupted after a run that a signal stopped)."""
        if self.stop is not None:
            self.stop.check()
        result = self.apply(job).execute_in_process(run_config={**(run_config or {}), **self.run_config},
                                                     raise_on_error=False, **kwargs)
        if not result.success and self.on_failure is not None:
            self.on_failure(result, kwargs.get("instance"))
        if self.stop is not None:
            self.stop.check()
        return result

    def close(self) -> None:
        self.printer.close()
