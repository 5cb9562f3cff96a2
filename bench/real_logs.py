"""Churn skill on real purchase logs that are not in this repository (issues #17, #20).

    PYTHONPATH=. python bench/real_logs.py cdnow PATH/CDNOW_master.txt [--as-of 1997-12-31]
    PYTHONPATH=. python bench/real_logs.py invoices PATH/OnlineRetail.csv [--as-of 2011-09-10]

`cdnow`: the CDNOW music retailer's log (Fader, Hardie & Lee 2005; 23,570 customers, 69,659
transactions, Jan 1997 - Jun 1998; whitespace-separated `customer_id date number_of_cds
dollar_value`; the Lifetimes wheel carries it as `lifetimes/datasets/CDNOW_master.txt`).
`invoices`: the UCI Online Retail gift wholesaler's log, one row per invoice or per invoice line
(`InvoiceNo, InvoiceDate, CustomerID, Quantity, UnitPrice`; `C…` invoices are cancellations).

Each log is cut at the as-of date and written as an `orders_*.csv` export with only its column
names mapped in `sources.yaml` (as a user would drop it), `ecom-assets run` builds the graph in a
scratch data folder, and the served `churn_probability` (`churn_predictions.parquet`, the CLI
contract's table; the risk list's copy, rounded to 4 decimals for people, is scored beside it) of
every customer who bought before the as-of date is scored against the real outcome: no purchase in the 90 days after it. Printed beside
it, on the same customers: recency alone and BG/NBD fitted on the history before the as-of date
(the classics the issue names), the model card's gate decision, and the observed churn per tier.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from ecom_assets.features import btyd

HORIZON = timedelta(days=90)


def cdnow(path: Path) -> pl.DataFrame:
    """CDNOW_master.txt -> order lines: one order per row (a customer's same-day rows stay separate)."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and line.split()[0].isdigit()]
    frame = pl.DataFrame(rows, schema=["customer_id", "date", "cds", "amount"], orient="row")
    return frame.with_row_index("order_id").select(
        pl.col("order_id").cast(pl.String), pl.col("customer_id").str.strip_chars_start("0"),
        pl.col("date").str.to_date("%Y%m%d").alias("day"),
        pl.col("cds").cast(pl.Int64).alias("quantity"), pl.col("amount").cast(pl.Float64))


def invoices(path: Path) -> pl.DataFrame:
    """UCI Online Retail (per line or per invoice) -> order lines; guest lines and cancellations kept
    (the product must handle them), amounts as quantity x unit price."""
    frame = pl.read_csv(path, infer_schema=False)
    return frame.select(
        pl.col("InvoiceNo").alias("order_id"), pl.col("CustomerID").str.replace(r"\.0$", "").alias("customer_id"),
        pl.col("InvoiceDate").str.to_datetime("%m/%d/%Y %H:%M", strict=False).dt.date().alias("day"),
        pl.col("Quantity").cast(pl.Int64).alias("quantity"),
        (pl.col("Quantity").cast(pl.Float64) * pl.col("UnitPrice").cast(pl.Float64)).alias("amount"))


def export(lines: pl.DataFrame, as_of: date, landing: Path) -> None:
    """The history up to `as_of` as a platform-shaped export + the sources.yaml that maps its names."""
    landing.mkdir(parents=True, exist_ok=True)
    history = lines.filter(pl.col("day") <= as_of)
    history.select(
        pl.col("order_id").alias("Order Number"), pl.col("customer_id").alias("Customer"),
        pl.col("day").dt.strftime("%Y-%m-%d").alias("Order Date"), pl.col("quantity").alias("Qty"),
        pl.col("amount").round(2).alias("Total"),
    ).write_csv(landing / "orders_log.csv")
    (landing.parent / "sources.yaml").write_text(
        '- match: "orders_*.csv"\n  kind: orders\n  columns: {"Order Number": order_id, Customer: customer_id,'
        ' "Order Date": order_time, Qty: quantity, Total: line_amount}\n'
        '  return_when: {column: order_id, prefix: "C"}\n')


def classics(lines: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Recency (days) and BG/NBD P(no purchase in 90 days) per customer, from the history before as_of."""
    bought = lines.filter((pl.col("day") <= as_of) & (pl.col("quantity") > 0) & pl.col("customer_id").is_not_null()
                          & (pl.col("customer_id") != ""))
    days = bought.group_by("customer_id").agg(pl.col("day").unique().sort().alias("days"))
    first = days["days"].list.first()
    last = days["days"].list.last()
    x = (days["days"].list.len() - 1).to_numpy().astype(float)
    t_x = ((last - first).dt.total_days()).to_numpy().astype(float)
    today = pl.Series([as_of] * len(days))
    T = (today - first).dt.total_days().to_numpy().astype(float)
    t_x, T = t_x / 7, T / 7  # BG/NBD in weeks, as FHL 2005
    params = btyd.fit(x, t_x, T)
    return days.select("customer_id").with_columns(
        recency=(today - last).dt.total_days().cast(pl.Float64),
        bg_nbd=pl.Series(btyd.p_no_purchase(params, x, t_x, T, HORIZON.days / 7)))


def truth(lines: pl.DataFrame, as_of: date) -> pl.DataFrame:
    later = lines.filter((pl.col("day") > as_of) & (pl.col("day") <= as_of + HORIZON) & (pl.col("quantity") > 0))
    return later.select("customer_id").unique().with_columns(bought_later=pl.lit(True))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=("cdnow", "invoices"))
    ap.add_argument("path", type=Path)
    ap.add_argument("--as-of", default=None, help="default: 1997-12-31 (cdnow), 2011-09-10 (invoices)")
    ap.add_argument("--keep", type=Path, default=None, help="data folder to build in (default: a temporary one)")
    args = ap.parse_args()
    lines = cdnow(args.path) if args.shape == "cdnow" else invoices(args.path)
    as_of = date.fromisoformat(args.as_of or ("1997-12-31" if args.shape == "cdnow" else "2011-09-10"))
    data_dir = args.keep or Path(tempfile.mkdtemp(prefix=f"real_{args.shape}_"))
    export(lines, as_of, data_dir / "landing")
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "ecom_assets.cli", "run", "--data-dir", str(data_dir)],
                         capture_output=True, text=True)
    seconds = time.perf_counter() - started
    print(run.stdout[-4000:])
    if run.returncode:
        print(run.stderr[-4000:])
        print(f"exit {run.returncode}")
        return 1
    # the CLI contract's table (full precision) beside the list a marketer reads (probabilities rounded to 4)
    served = pl.read_parquet(data_dir / "warehouse" / "churn_predictions.parquet")
    listed = pl.read_parquet(data_dir / "warehouse" / "churn_risk_list.parquet").select(
        "customer_id", listed_probability="churn_probability")
    scored = (classics(lines, as_of).join(served.select("customer_id", "churn_probability", "risk_tier"),
                                          on="customer_id", how="left")
              .join(listed, on="customer_id", how="left")
              .join(truth(lines, as_of), on="customer_id", how="left")
              .with_columns(churned=pl.col("bought_later").is_null()))
    missing = scored["churn_probability"].null_count()
    scored = scored.drop_nulls("churn_probability")
    y = scored["churned"].to_numpy()
    print(f"{args.shape}: as-of {as_of}, {len(scored):,} customers who bought before it "
          f"({missing} not in the served list), churn rate {y.mean():.3f}, build {seconds:.0f} s")
    for name, score in (("served churn_probability", scored["churn_probability"]),
                        ("risk list (rounded to 4)", scored["listed_probability"]),
                        ("recency (days)", scored["recency"]), ("BG/NBD P(no purchase 90 d)", scored["bg_nbd"])):
        print(f"  AUC {name:<28} {roc_auc_score(y, score.to_numpy()):.4f}")
    print("  distinct served scores:", scored["churn_probability"].n_unique())
    tiers = scored.group_by("risk_tier").agg(n=pl.len(), predicted=pl.col("churn_probability").mean(),
                                             observed=pl.col("churned").mean()).sort("predicted")
    print(tiers)
    card = json.loads(next((data_dir / "models").glob("**/model_card*.json")).read_text()) \
        if list((data_dir / "models").glob("**/model_card*.json")) else {}
    print(json.dumps({k: card.get(k) for k in ("version", "promoted", "skill", "gate", "holdout") if k in card},
                     indent=1, default=str)[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
