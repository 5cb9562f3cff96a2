"""Shared test helpers: drop files and ingest them through the real code path."""

from pathlib import Path

import dagster as dg
import polars as pl

from ecom_assets.clean import (clean_customers, clean_events, clean_order_lines, clean_returns, clean_sessions,
                               quarantine_summary)
from ecom_assets.ingest import RAW_ASSETS, SESSION_ASSETS, ingest_landing
from ecom_assets.ingest.assets import read_rejects
from ecom_assets.settings import EcomSettings

SESSIONS_HEADER = "session_id,customer_id,session_date,product_viewed,browsing_time_sec,purchase_made,purchase_amount"
CUSTOMERS_HEADER = "customer_id,age,gender,location,signup_date"


def drop(data_dir: Path, name: str, content: str | bytes) -> Path:
    path = data_dir / "landing" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def ingest_and_clean(data_dir: Path, instance, resources) -> dict[str, pl.DataFrame]:
    """Ingest everything in landing (CLI path), then build the clean tables; return them."""
    summary = ingest_landing(instance, data_dir)
    cleaning = [clean_customers, clean_sessions, clean_order_lines, clean_returns, clean_events, quarantine_summary]
    result = dg.materialize([*RAW_ASSETS.values(), *SESSION_ASSETS.values(), *cleaning], instance=instance,
                            resources=resources, selection=cleaning)
    assert result.success
    return {
        "summary": summary,
        "customers": result.output_for_node("clean_customers"),
        "sessions": result.output_for_node("clean_sessions").scan().collect(),
        "order_lines": result.output_for_node("clean_order_lines"),
        "returns": result.output_for_node("clean_returns"),
        "events": result.output_for_node("clean_events"),
        "result": result,
    }


def rejected_reasons(data_dir: Path) -> dict[str, str]:
    """file name as dropped -> reason, for every whole-file reject in rejected/."""
    rejects = read_rejects(EcomSettings(data_dir=str(data_dir)))
    return dict(zip(rejects["file"], rejects["reason"], strict=True))


def quarantine(data_dir: Path, kind: str = "sessions") -> pl.DataFrame:
    files = sorted((data_dir / "quarantine" / kind).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()
