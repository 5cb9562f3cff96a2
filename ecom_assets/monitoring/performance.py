"""Realised model performance: prediction batches joined with what customers actually did."""

from datetime import timedelta

import numpy as np
import polars as pl

from ecom_assets.churn import evaluate
from ecom_assets.features.build import HORIZON_DAYS


def read_prediction_log(folder) -> pl.DataFrame:
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def latest_feature_fingerprint(folder) -> str | None:
    """`feature_fingerprint` of the newest batch in the prediction log (the fingerprint of the
    `customer_features` it scored): what the data looks like now. None without a batch."""
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        return None
    # one row per batch file is enough: both columns are constant within a batch
    heads = pl.concat([pl.read_parquet(f, columns=["scored_at", "feature_fingerprint"], n_rows=1) for f in files])
    return heads.sort("scored_at")["feature_fingerprint"][-1]


def realised_performance(log: pl.DataFrame, sessions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per matured batch: AUC, Brier, top-decile precision …; batches still waiting for outcomes)."""
    empty = pl.DataFrame(schema={"as_of": pl.Date, "model_version": pl.String, "matures_on": pl.Date})
    if log.is_empty() or sessions.is_empty():
        return pl.DataFrame(), empty
    last_date = sessions["session_date"].max()
    scored = log.filter(~pl.col("cold_start") & pl.col("churn_probability").is_not_null())
    batches = scored.select("as_of", "model_version").unique().sort("as_of", "model_version")
    rows, waiting = [], []
    for as_of, version in batches.iter_rows():
        matures = as_of + timedelta(days=HORIZON_DAYS)
        if last_date < matures:
            waiting.append({"as_of": as_of, "model_version": version, "matures_on": matures})
            continue
        batch = scored.filter((pl.col("as_of") == as_of) & (pl.col("model_version") == version))
        bought = (
            sessions.filter((pl.col("session_date") > as_of) & (pl.col("session_date") <= matures) & pl.col("purchase_made"))
            .select("customer_id").unique().with_columns(bought=pl.lit(True))
        )
        joined = batch.join(bought, on="customer_id", how="left")
        y = joined["bought"].is_null().to_numpy().astype(float)
        p = joined["churn_probability"].to_numpy()
        if 0 < y.sum() < y.size:
            precision, _ = evaluate.top_decile(y, p)
            rows.append({"as_of": as_of, "model_version": version, "customers": int(y.size),
                         "realised_churn_rate": float(y.mean()), "mean_predicted": float(np.mean(p)),
                         "realised_auc": evaluate.auc(y, p), "brier": evaluate.brier(y, p),
                         "top_decile_precision": precision})
    return pl.DataFrame(rows), pl.DataFrame(waiting, schema=empty.schema)
