"""`ecom-assets latency`: drop -> fresh churn list, measured in a real `dagster dev` on 127.0.0.1.

Generates a sample (reused under `--out`), builds it once with `ecom-assets run`, starts
`dagster dev` (webserver + daemon: landing_zone_sensor, drop_refresh_sensor, the run queue), then
moves `--drops` exports of 1 % of the history each into `landing/` one after another and times each
from the move to the `churn_risk_list` materialization of the `drop_refresh_job` run that took it
in. The drops are written before the clock starts and moved in, as a finished export is; prints
each drop's timeline (sensor pick-up, ingest run, refresh run, each run's start-up) and the median,
and with `--readme` rewrites the figures between the latency markers of that README.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK_START, MARK_END = "<!-- latency:start -->", "<!-- latency:end -->"
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


def _idle(instance) -> bool:
    from ecom_assets.jobs import IN_PROGRESS

    import dagster as dg

    return not instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=1)


def _one_drop(instance, staged: Path, landing: Path, timeout: float) -> dict:
    """Move one staged export into landing; wait for the churn list built from it. The runs are found
    by what they did (the run tagged with the file; the run that materialized `churn_risk_list`), not
    by job name, so the same script times a checkout whose jobs are named otherwise."""
    import dagster as dg

    start = time.time()
    os.rename(staged, landing / staged.name)  # one rename: the file appears complete

    def published():
        records = instance.fetch_materializations(dg.AssetKey("churn_risk_list"), limit=1).records
        if records and records[0].timestamp > start:
            return records[0]
        failed = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=1)
        if failed and failed[0].create_timestamp.timestamp() > start:
            raise RuntimeError(f"run {failed[0].dagster_run.run_id} ({failed[0].dagster_run.job_name}) failed")
        return None

    risk_list = _wait(published, timeout, f"the churn list after {staged.name}")
    refresh = instance.get_run_record_by_id(risk_list.run_id)
    (ingest,) = [r for r in instance.get_run_records(dg.RunsFilter(tags={"ecom/source_file": staged.name}))]

    def first_step(run) -> float:
        steps = instance.get_records_for_run(run.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START).records
        return min(s.event_log_entry.timestamp for s in steps)

    ts = {
        "ingest_requested": ingest.create_timestamp.timestamp(),
        "ingest_first_step": first_step(ingest),
        "ingest_end": ingest.end_time,
        "refresh_requested": refresh.create_timestamp.timestamp(),
        "refresh_first_step": first_step(refresh),
        "churn_list": risk_list.timestamp,
    }
    return {"drop": staged.name, "load_1min": round(os.getloadavg()[0], 1), "refresh_job": refresh.dagster_run.job_name,
            "seconds": ts["churn_list"] - start, **{k: round(v - start, 2) for k, v in ts.items()}}


def measure(out: Path, customers: int, days: int, drops: int, timeout: float = 300, code: Path = REPO) -> dict:
    from ecom_assets.bench import _incremental_drops
    from ecom_assets.generate import generate

    source = out / f"source_{customers}_{days}"
    if not (source / "sessions.csv").exists():
        generate(source, customers=customers, days=days, seed=11)
    data_dir = (out / "run").resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    (data_dir / "landing").mkdir(parents=True)
    for name in ("customers.csv", "sessions.csv", "campaigns.csv"):
        shutil.copyfile(source / name, data_dir / "landing" / name)
    staged = _incremental_drops(source, out / "staged", drops)
    env = {**os.environ, "ECOM_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / ".dagster"),
           "DO_NOT_TRACK": "1", "DAGSTER_TELEMETRY_DISABLED": "1", "PYTHONPATH": str(code)}
    os.environ.update({k: env[k] for k in ("ECOM_DATA_DIR", "DAGSTER_HOME")})
    subprocess.run([sys.executable, "-m", "ecom_assets.cli", "prepare-home", "--data-dir", str(data_dir)], env=env,
                   cwd=code, check=True, stdout=subprocess.DEVNULL)  # that checkout's instance config
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "ecom-assets"), "run", "--data-dir", str(data_dir), "--no-automation"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    time.sleep(11)  # let the staged drops' last write age past landing_settle_seconds, as a finished export's has

    import dagster as dg
    import requests

    port = _free_port()
    log = (data_dir / "dagster_dev.log").open("w")
    dev = subprocess.Popen([str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                           cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    results = []
    try:
        _wait(lambda: _answers(requests, port), 180, "dagster dev", poll=1)
        with dg.DagsterInstance.get() as instance:
            # the sensors' first ticks (the refresh sensor's first one refreshes what `run` built once)
            time.sleep(15)
            _wait(lambda: _idle(instance), 300, "the first ticks' runs", poll=1)
            for path in staged:
                results.append(_one_drop(instance, path, data_dir / "landing", timeout))
                print(json.dumps(results[-1]), flush=True)
                _wait(lambda: _idle(instance), 300, "the runs to finish", poll=1)
    finally:
        os.killpg(dev.pid, 15)
        dev.wait(timeout=60)
        log.close()
    seconds = [r["seconds"] for r in results]
    return {"customers": customers, "days": days, "drops": results, "median_s": statistics.median(seconds),
            "median_load_1min": statistics.median(r["load_1min"] for r in results), "code": str(code),
            "python": sys.version.split()[0], "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}


def _answers(requests, port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
    except requests.ConnectionError:
        return False


def markdown(results: dict) -> str:
    rows = "\n".join(
        f"| {r['drop']} | {r['seconds']:.1f} s | {r['load_1min']} | {r['ingest_requested']:.1f} | "
        f"{r['ingest_first_step']:.1f} | {r['ingest_end']:.1f} | {r['refresh_requested']:.1f} | "
        f"{r['refresh_first_step']:.1f} |" for r in results["drops"])
    return (f"Drop -> fresh churn list in `dagster dev` ({results['customers']:,} customers, {results['days']} days; "
            f"each drop 1 % of the history moved into `landing/`; {results['cores']} cores, Python "
            f"{results['python']}, {results['date']}, median 1-minute load average {results['median_load_1min']}): "
            f"**median {results['median_s']:.1f} s**.\n\n"
            "| drop | to churn list | load | ingest requested | its first step | ingest done | refresh requested "
            "| its first step |\n|---|---|---|---|---|---|---|---|\n" + rows +
            "\n\n(seconds after the file was moved in)")


STAGES = [  # label, (from, to) timestamps of a drop's timeline (0 = the file was moved in)
    ("landing sensor picks the file up", (None, "ingest_requested")),
    ("ingest run start-up (queue, new process, code location)", ("ingest_requested", "ingest_first_step")),
    ("ingest (raw partition + drop profile)", ("ingest_first_step", "ingest_end")),
    ("refresh requested after the ingest run", ("ingest_end", "refresh_requested")),
    ("refresh run start-up", ("refresh_requested", "refresh_first_step")),
    ("refresh up to `churn_risk_list`", ("refresh_first_step", "churn_list")),
]


def comparison(before: dict, after: dict) -> str:
    """Median seconds per stage of two measurements (e.g. an older checkout via --code, and this one)."""
    def stage(results, start, end):
        return statistics.median(d[end] - (d[start] if start else 0.0) for d in results["drops"])

    rows = [f"| {label} | {stage(before, *span):.1f} s | {stage(after, *span):.1f} s |" for label, span in STAGES]
    total = (f"| **drop -> fresh churn list** | **{before['median_s']:.1f} s** (load {before['median_load_1min']}) | "
             f"**{after['median_s']:.1f} s** (load {after['median_load_1min']}) |")
    return "| stage (median over the drops) | before | now |\n|---|---|---|\n" + "\n".join([*rows, total])


def update_readme(readme: Path, text: str) -> None:
    content = readme.read_text()
    head, rest = content.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    readme.write_text(f"{head}{MARK_START}\n{text}\n{MARK_END}{tail}")


def cli_latency(args) -> int:
    results = measure(Path(args.out), args.customers, args.days, args.drops, code=Path(args.code).resolve())
    (Path(args.out) / "latency.json").write_text(json.dumps(results, indent=2))
    text = markdown(results)
    if args.before:
        text += "\n\nThe same script on another checkout (`--before`):\n\n" + comparison(
            json.loads(Path(args.before).read_text()), results)
    print(text)
    if args.readme:
        update_readme(Path(args.readme), text)
    return 0
