"""Where the project keeps its files, and the knobs an operator may turn.

One resource, `EcomSettings`, is the single place for paths and thresholds so that the
UI launchpad, the CLI and the tests all point the graph at the same data directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

DATA_DIR_ENV = "ECOM_DATA_DIR"
CURRENCY_ENV = "ECOM_CURRENCY"  # the `currency` setting where no launchpad sets it (CLI, `make dev`)


def currency_code(value: str) -> str:
    """`value` trimmed and upper-cased if it is a three-letter ISO 4217 code; ValueError otherwise."""
    code = value.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"a currency is a three-letter ISO 4217 code such as EUR or USD, found {value!r}")
    return code


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV, "data")


class EcomSettings(dg.ConfigurableResource):
    """Paths under the data directory plus monitoring thresholds (see README "Configuration")."""

    data_dir: str = default_data_dir()
    # ingestion: runs one sensor tick may request (the rest wait for the next tick)
    max_runs_per_tick: int = 25
    # monitoring / retraining
    drift_share_threshold: float = 0.25  # dataset drift (and a retrain) when this share of watched columns drifts
    # per-column drift test (Evidently stattest names) and the score above which a column has drifted
    drift_numeric_method: str = "wasserstein"
    drift_categorical_method: str = "jensenshannon"
    drift_column_threshold: float = 0.1
    auc_decay_margin: float = 0.05
    drift_sample_rows: int = 50_000
    retrain_cooldown_hours: float = 24.0
    # per-drop profile (sessions_drop_profile): PSI above `psi_shifted` fails its WARN check, above
    # `psi_watch` is marked "watch" (the usual credit-scoring cut-offs, Siddiqi 2006)
    psi_watch: float = 0.1
    psi_shifted: float = 0.25
    # ingest: a drop with more than this share of its rows quarantined fails `quarantine_share_low` (WARN)
    quarantine_share_warn: float = 0.2
    # landing zone: a file whose mtime is at least this old is complete on first sight (no second tick)
    landing_settle_seconds: float = 10.0
    # features: categories with their own visit count in customer_history (the most visited; the rest pooled
    # in `visits_pooled`): an export whose category is a product id must not make thousands of columns
    max_category_columns: int = 20
    # dashboard: ISO 4217 code shown beside money when neither order lines nor purchase events name one (a sessions
    # export carries none); `$ECOM_CURRENCY` when the resources are built (`ecom-assets run --currency`)
    currency: str = "EUR"

    def path(self, *parts: str) -> Path:
        p = Path(self.data_dir).joinpath(*parts)
        return p

    def folder(self, name: str) -> Path:
        """A sub-folder of the data directory, created on first use."""
        p = self.path(name)
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def landing(self) -> Path:
        return self.folder("landing")

    @property
    def archive(self) -> Path:
        return self.folder("archive")

    @property
    def rejected(self) -> Path:
        return self.folder("rejected")

    @property
    def quarantine(self) -> Path:
        return self.folder("quarantine")

    @property
    def warehouse(self) -> Path:
        return self.folder("warehouse")

    @property
    def models(self) -> Path:
        return self.folder("models")

    @property
    def reports(self) -> Path:
        return self.folder("reports")

    @property
    def exports(self) -> Path:
        return self.folder("exports")

    @property
    def alerts(self) -> Path:
        return self.folder("alerts")
