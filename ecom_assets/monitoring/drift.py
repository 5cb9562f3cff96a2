"""Pure drift computations: the Evidently feature-drift report and a cheap per-drop profile shift."""

from dataclasses import dataclass, field

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
SHIFT_ALPHA = 0.01  # a drop's PSI counts only when its sampling noise explains it with p < 1 %


@dataclass
class DriftResult:
    """What one Evidently drift run found; `share` and `detected` are read from the report itself."""

    snapshot: object  # evidently Snapshot
    table: pl.DataFrame  # per watched column: column, method, score, threshold, drifted
    share: float  # share of drifted columns (Evidently's DriftedColumnsCount)
    detected: bool  # the report's headline: "Share of Drifted Columns: Less <drift_share>" failed
    left_out: dict[str, str] = field(default_factory=dict)  # column -> why it was not compared


def comparable_columns(current: pl.DataFrame, reference: pl.DataFrame, columns: list[str]) -> tuple[list[str], dict]:
    """(columns both frames can be compared on, {left-out column: reason}). Evidently raises on an
    entirely empty column ("An empty column 'age' was provided for drift calculation"): purchase
    logs have no browsing time, many shops record no age. A column holding one and the same value
    in both frames carries nothing to compare. A watched column absent from a frame is left out and
    named too: the model's reference holds only the features it was trained on, and a feature that
    was empty then (no age, no browsing time) is not among them."""
    kept, left_out = [], {}
    for c in columns:
        absent = [name for name, frame in (("the reference", reference), ("the current snapshot", current))
                  if c not in frame.columns]
        if absent:
            left_out[c] = "not in " + " and ".join(absent) + " (empty when the model was trained, or not computed)"
            continue
        empty = [name for name, frame in (("the reference", reference), ("the current snapshot", current))
                 if frame[c].null_count() == frame.height]
        if empty:
            left_out[c] = "entirely empty in " + " and ".join(empty)
            continue
        values = pl.concat([reference[c].drop_nulls().cast(pl.String), current[c].drop_nulls().cast(pl.String)])
        if values.n_unique() == 1:
            left_out[c] = f"constant ({values[0]}) in both"
            continue
        kept.append(c)
    return kept, left_out


def evidently_drift(current: pl.DataFrame, reference: pl.DataFrame, sample_rows: int, drift_share: float,
                    numeric_method: str, categorical_method: str, column_threshold: float, seed: int = 0) -> DriftResult:
    """Evidently `DataDriftPreset` of `current` against `reference` (both sampled to `sample_rows`),
    configured as the product decides: dataset drift when the share of drifted columns is
    >= `drift_share`; each numeric column tested with `numeric_method`, each categorical one with
    `categorical_method`, drifted above `column_threshold` (Evidently's stattest names, e.g.
    "wasserstein", "jensenshannon"). Columns that cannot be compared are left out (`left_out`)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    def sample(frame: pl.DataFrame) -> pl.DataFrame:
        # bounded size: drift tests on millions of rows flag every tiny shift
        return frame.sample(sample_rows, seed=seed) if frame.height > sample_rows else frame

    watched = DRIFT_NUMERIC + DRIFT_CATEGORICAL
    current = sample(current.select(c for c in watched if c in current.columns))
    reference = sample(reference.select(c for c in watched if c in reference.columns))
    columns, left_out = comparable_columns(current, reference, watched)  # on the samples Evidently sees
    numeric = [c for c in DRIFT_NUMERIC if c in columns]
    categorical = [c for c in DRIFT_CATEGORICAL if c in columns]
    if not columns:
        return DriftResult(None, _drift_table([]), 0.0, False, left_out)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    def dataset(frame: pl.DataFrame):
        return Dataset.from_pandas(frame.select(columns).with_columns(pl.col(numeric).cast(pl.Float64)).to_pandas(),
                                   data_definition=definition)

    preset = DataDriftPreset(
        columns=columns, drift_share=drift_share, threshold=column_threshold,
        per_column_method={**{c: numeric_method for c in numeric}, **{c: categorical_method for c in categorical}})
    snapshot = Report([preset], include_tests=True).run(dataset(current), dataset(reference))
    result = snapshot.dict()
    scores, share = {}, 0.0
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = (config.get("method"), float(metric["value"]), config.get("threshold"))
        elif config.get("type", "").endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    failed = {t["name"].rsplit("column ", 1)[-1] for t in result["tests"]
              if t["name"].startswith("Value Drift for column") and t["status"] == "FAIL"}
    detected = any(t["name"].startswith("Share of Drifted Columns") and t["status"] == "FAIL" for t in result["tests"])
    table = _drift_table([{"column": c, "method": m, "score": sc, "threshold": th, "drifted": c in failed}
                          for c, (m, sc, th) in scores.items()])
    return DriftResult(snapshot, table, share, detected, left_out)


def _drift_table(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"column": pl.String, "method": pl.String, "score": pl.Float64,
                                      "threshold": pl.Float64, "drifted": pl.Boolean}).sort("drifted", "score",
                                                                                            descending=True)


def titled_html(snapshot, title: str, notes: list[str]) -> str:
    """The report's self-contained HTML with a title and notes above Evidently's widgets."""
    import html

    page = snapshot.get_html_str(as_iframe=False)
    header = (f"<div style='font-family:system-ui,sans-serif;margin:16px 24px'><h1>{html.escape(title)}</h1>"
              + "".join(f"<p>{html.escape(n)}</p>" for n in notes) + "</div>")
    at = page.find(">", page.find("<body")) + 1 if "<body" in page else 0
    return page[:at] + header + page[at:]


def _psi_of_counts(e_counts: np.ndarray, a_counts: np.ndarray) -> tuple[float, float]:
    """(PSI, p-value of "same distribution") from the two sides' counts per bin.

    Counts get half a count each (Jeffreys smoothing) instead of a fixed floor: an empty bin in a
    small drop then costs what its sampling noise allows, not ln(1e-4). Under the null,
    n·m/(n+m)·PSI is approximately chi-square with bins-1 degrees of freedom (PSI is Jeffreys'
    symmetric divergence; Yurdakul 2018, "Statistical properties of population stability index"),
    which gives the p-value that keeps a small drop's noise from reading as a shift."""
    from scipy.stats import chi2

    n, m = e_counts.sum(), a_counts.sum()
    e = (e_counts + 0.5) / (n + 0.5 * e_counts.size)
    a = (a_counts + 0.5) / (m + 0.5 * a_counts.size)
    value = float(((a - e) * np.log(a / e)).sum())
    dof = max(int((e_counts + a_counts > 0).sum()) - 1, 1)
    return value, float(chi2.sf(value * n * m / (n + m), dof))


def psi(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(PSI, p-value) of `actual` against `expected` over the expected deciles; (nan, nan) when a
    side has fewer than 20 finite values."""
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if expected.size < 20 or actual.size < 20:
        return float("nan"), float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    return _psi_of_counts(np.bincount(np.searchsorted(edges, expected), minlength=edges.size + 1),
                          np.bincount(np.searchsorted(edges, actual), minlength=edges.size + 1))


def category_psi(expected: pl.Series, actual: pl.Series) -> tuple[float, float]:
    """(PSI, p-value) over the levels of either series (nulls left out)."""
    both = (expected.drop_nulls().rename("level").value_counts(name="e")
            .join(actual.drop_nulls().rename("level").value_counts(name="a"), on="level", how="full", coalesce=True)
            .fill_null(0))
    if both["e"].sum() == 0 or both["a"].sum() == 0:
        return float("nan"), float("nan")
    return _psi_of_counts(both["e"].to_numpy().astype(float), both["a"].to_numpy().astype(float))


def drop_profile_shift(new: pl.DataFrame, previous: pl.DataFrame, watch: float = 0.1, shifted: float = 0.25) -> pl.DataFrame:
    """How one sessions drop differs from all earlier drops: one row per measure with its PSI and a
    verdict: PSI > `shifted` = shifted, > `watch` = watch, else stable — unless a PSI that large is
    within the drop's sampling noise (p >= SHIFT_ALPHA: "within sampling noise"; a 60-purchase drop of
    unchanged data reaches PSI 0.25 by chance); fewer than 20 values on a side
    (e.g. a purchase log without browsing time) gives a null PSI and "too few values", never a verdict
    (polars orders NaN above every number, so a NaN PSI would otherwise read as shifted)."""
    rows = []
    if previous.is_empty() or new.is_empty():
        return pl.DataFrame(schema={"measure": pl.String, "previous": pl.Float64, "this_drop": pl.Float64,
                                    "psi": pl.Float64, "p_value": pl.Float64, "verdict": pl.String})
    buys_new = new.filter(pl.col("purchase_made"))
    buys_old = previous.filter(pl.col("purchase_made"))
    for name, old, cur in [
        ("purchase_amount", buys_old["purchase_amount"], buys_new["purchase_amount"]),
        ("browsing_time_sec", previous["browsing_time_sec"], new["browsing_time_sec"]),
    ]:
        value, p_value = psi(old.cast(pl.Float64).to_numpy(), cur.cast(pl.Float64).to_numpy())
        rows.append({"measure": name, "previous": old.median(), "this_drop": cur.median(), "psi": value,
                     "p_value": p_value})
    value, p_value = category_psi(previous["product_viewed"], new["product_viewed"])
    rows.append({"measure": "category_mix", "previous": None, "this_drop": None, "psi": value, "p_value": p_value})
    conv_old, conv_new = previous["purchase_made"].mean(), new["purchase_made"].mean()
    value, p_value = category_psi(previous["purchase_made"].cast(pl.String), new["purchase_made"].cast(pl.String))
    rows.append({"measure": "conversion", "previous": conv_old, "this_drop": conv_new, "psi": value, "p_value": p_value})
    table = pl.DataFrame(rows, schema={"measure": pl.String, "previous": pl.Float64, "this_drop": pl.Float64,
                                       "psi": pl.Float64, "p_value": pl.Float64})
    table = table.with_columns(pl.col("psi", "p_value").fill_nan(None))
    # a PSI above a threshold that the drop's sampling noise explains (p >= SHIFT_ALPHA) is no verdict
    noise = pl.col("p_value") >= SHIFT_ALPHA
    return table.with_columns(verdict=pl.when(pl.col("psi").is_null()).then(pl.lit("too few values"))
                              .when((pl.col("psi") > watch) & noise).then(pl.lit("within sampling noise"))
                              .when(pl.col("psi") > shifted).then(pl.lit("shifted"))
                              .when(pl.col("psi") > watch).then(pl.lit("watch")).otherwise(pl.lit("stable")))
