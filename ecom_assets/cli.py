"""`ecom-assets` command line (the contract other tools drive the project through).

Sub-commands import their module lazily so `ecom-assets --help` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _currency(value: str) -> str:
    from ecom_assets.settings import currency_code

    try:
        return currency_code(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecom-assets", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic sample with planted, known structure")
    g.add_argument("--out", required=True, help="folder for the CSV drops (e.g. data/landing)")
    g.add_argument("--customers", type=int, default=20_000)
    g.add_argument("--days", type=int, default=730, help="days of history")
    g.add_argument("--start", default="2023-01-01", help="first day of history (ISO date)")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--files", type=int, default=1, help="split sessions into K chronological drops")
    g.add_argument("--drift", action="store_true", help="also write one later, drifted sessions drop")
    g.add_argument("--truth-out", default=None, help="folder for what the generator planted")
    g.add_argument("--sessions", type=int, default=None, help="approximate session count target")
    g.add_argument("--shape", choices=("sessions", "orders", "events"), default="sessions",
                   help="write the behaviour as a session export, order lines (orders*.csv) or events (events*.csv)")

    r = sub.add_parser("run", help="ingest everything in DIR/landing, then build the whole graph")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--as-of", default=None, help="as-of date T (default: latest clean session)")
    r.add_argument("--no-automation", action="store_true", help="skip the retrain sensor pass")
    r.add_argument("--retrain", action="store_true", help="train a new churn model even if one exists")
    r.add_argument("--currency", type=_currency, default=None,
                   help="ISO 4217 code shown beside money when neither order lines nor purchase events name one "
                        "(sets $ECOM_CURRENCY)")
    r.add_argument("--verbose", action="store_true", help="also print Dagster's own event lines (DEBUG)")

    h = sub.add_parser("prepare-home", help="create DAGSTER_HOME with the instance config")
    h.add_argument("--data-dir", default=None)

    b = sub.add_parser("bench", help="time the graph on a large generated sample")
    b.add_argument("--sessions", type=int, default=10_000_000)
    b.add_argument("--customers", type=int, default=500_000)
    b.add_argument("--out", default="bench")
    b.add_argument("--baseline-sessions", type=int, default=None)
    b.add_argument("--incremental", action="store_true", help="also time new drops of 1 %% of the history")
    b.add_argument("--drops", type=int, default=3, help="successive 1 %% drops timed with --incremental (median reported)")
    b.add_argument("--sensor-files", type=int, default=10_000, help="small drops for the sensor tick timing")
    b.add_argument("--sensor-only", action="store_true", help="only time the sensor; update results.json")
    b.add_argument("--events", type=int, default=0, help="also time N events through ingest + sessionisation")
    b.add_argument("--events-only", action="store_true", help="only time the events path; update results.json")
    b.add_argument("--readme", default=None, help="rewrite the table between the bench markers of this README")
    lat = sub.add_parser("latency", help="time drop -> fresh churn list in a real `dagster dev` (127.0.0.1)")
    lat.add_argument("--out", default="bench/latency")
    lat.add_argument("--customers", type=int, default=5_000)
    lat.add_argument("--days", type=int, default=540)
    lat.add_argument("--drops", type=int, default=5, help="successive 1 %% drops (median reported)")
    lat.add_argument("--code", default=str(Path(__file__).resolve().parents[1]),
                     help="checkout whose code `dagster dev` loads (default: this one; e.g. an older commit to compare)")
    lat.add_argument("--before", default=None, help="latency.json of an earlier measurement to compare stage by stage")
    lat.add_argument("--readme", default=None, help="rewrite the figures between the latency markers of this README")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "generate":
        from ecom_assets.generate import cli_generate

        return cli_generate(args)
    if args.command == "run":
        from ecom_assets.pipeline import cli_run

        return cli_run(args)
    if args.command == "prepare-home":
        from ecom_assets.instance import prepare_dagster_home
        from ecom_assets.settings import default_data_dir

        print(prepare_dagster_home(args.data_dir or default_data_dir()))
        return 0
    if args.command == "latency":
        from ecom_assets.latency import cli_latency

        return cli_latency(args)
    if args.command == "bench":
        from ecom_assets.bench import cli_bench

        return cli_bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
