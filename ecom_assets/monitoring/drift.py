"""Pure drift computations: the Evidently feature-drift report and a cheap per-drop profile shift."""

import numpy as np
import polars as pl

# Watched columns: per-visit rates (recent and lifetime) and demographics. Lifetime sums (tenure,
# revenue, number of sessions) grow as the customer base ages, and recent visit counts follow the
# season; both would report "drift" without anything having changed in how customers behave.
DRIFT_NUMERIC = [
    "browsing_mean_30d", "purchase_rate_30d", "aov_30d", "weekend_share", "browsing_mean_sec", "aov",
    "purchase_rate", "views_per_purchase", "age",
]
DRIFT_CATEGORICAL = ["gender", "location", "favourite_category"]
PSI_BINS = 10


def evidently_drift(current: pl.DataFrame, reference: pl.DataFrame, sample_rows: int, seed: int = 0):
    """(snapshot, per-column table, drift share) comparing the current snapshot with the reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in DRIFT_NUMERIC if c in current.columns and c in reference.columns]
    categorical = [c for c in DRIFT_CATEGORICAL if c in current.columns and c in reference.columns]
    columns = numeric + categorical
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def sample(frame: pl.DataFrame):
        frame = frame.select(columns)
        if frame.height > sample_rows:  # bounded size: drift tests on millions of rows flag every tiny shift
            frame = frame.sample(sample_rows, seed=seed)
        return Dataset.from_pandas(frame.with_columns(pl.col(numeric).cast(pl.Float64)).to_pandas(),
                                   data_definition=definition)

    snapshot = Report([DataDriftPreset()], include_tests=True).run(sample(current), sample(reference))
    result = snapshot.dict()
    scores = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = (config.get("method"), float(metric["value"]), config.get("threshold"))
    failed = {t["name"].rsplit("column ", 1)[-1] for t in result["tests"]
              if t["name"].startswith("Value Drift for column") and t["status"] == "FAIL"}
    table = pl.DataFrame(
        [{"column": c, "method": m, "score": s, "threshold": th, "drifted": c in failed} for c, (m, s, th) in scores.items()],
        schema={"column": pl.String, "method": pl.String, "score": pl.Float64, "threshold": pl.Float64,
                "drifted": pl.Boolean},
    ).sort("drifted", "score", descending=True)
    share = float(table["drifted"].mean()) if table.height else 0.0
    return snapshot, table, share


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of `actual` against `expected` over the expected deciles."""
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if expected.size < 20 or actual.size < 20:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected), minlength=edges.size + 1) / expected.size
    a = np.bincount(np.searchsorted(edges, actual), minlength=edges.size + 1) / actual.size
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(((a - e) * np.log(a / e)).sum())


def category_psi(expected: pl.Series, actual: pl.Series) -> float:
    """PSI over the levels of either series (shares of all rows; nulls count only in the total)."""
    def shares(values: pl.Series, name: str) -> pl.DataFrame:
        counts = values.drop_nulls().rename("level").value_counts(name="n")
        return counts.select("level", (pl.col("n") / max(values.len(), 1)).alias(name))

    both = shares(expected, "e").join(shares(actual, "a"), on="level", how="full", coalesce=True).fill_null(0.0)
    e, a = np.clip(both["e"].to_numpy(), 1e-4, None), np.clip(both["a"].to_numpy(), 1e-4, None)
    return float(((a - e) * np.log(a / e)).sum())


def drop_profile_shift(new: pl.DataFrame, previous: pl.DataFrame, watch: float = 0.1, shifted: float = 0.25) -> pl.DataFrame:
    """How one sessions drop differs from all earlier drops: one row per measure with its PSI and a
    verdict: PSI > `shifted` = shifted, > `watch` = watch, else stable; fewer than 20 values on a side
    (e.g. a purchase log without browsing time) gives a null PSI and "too few values", never a verdict
    (polars orders NaN above every number, so a NaN PSI would otherwise read as shifted)."""
    rows = []
    if previous.is_empty() or new.is_empty():
        return pl.DataFrame(schema={"measure": pl.String, "previous": pl.Float64, "this_drop": pl.Float64,
                                    "psi": pl.Float64, "verdict": pl.String})
    buys_new = new.filter(pl.col("purchase_made"))
    buys_old = previous.filter(pl.col("purchase_made"))
    for name, old, cur in [
        ("purchase_amount", buys_old["purchase_amount"], buys_new["purchase_amount"]),
        ("browsing_time_sec", previous["browsing_time_sec"], new["browsing_time_sec"]),
    ]:
        rows.append({"measure": name, "previous": old.median(), "this_drop": cur.median(),
                     "psi": psi(old.cast(pl.Float64).to_numpy(), cur.cast(pl.Float64).to_numpy())})
    rows.append({"measure": "category_mix", "previous": None, "this_drop": None,
                 "psi": category_psi(previous["product_viewed"], new["product_viewed"])})
    conv_old, conv_new = previous["purchase_made"].mean(), new["purchase_made"].mean()
    rows.append({"measure": "conversion", "previous": conv_old, "this_drop": conv_new,
                 "psi": category_psi(previous["purchase_made"].cast(pl.String), new["purchase_made"].cast(pl.String))})
    table = pl.DataFrame(rows, schema={"measure": pl.String, "previous": pl.Float64, "this_drop": pl.Float64,
                                       "psi": pl.Float64})
    table = table.with_columns(pl.col("psi").fill_nan(None))
    return table.with_columns(verdict=pl.when(pl.col("psi").is_null()).then(pl.lit("too few values"))
                              .when(pl.col("psi") > shifted).then(pl.lit("shifted"))
                              .when(pl.col("psi") > watch).then(pl.lit("watch")).otherwise(pl.lit("stable")))
