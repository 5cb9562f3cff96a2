"""`kpi_dashboard`: one self-contained HTML page (plotly inlined, opens offline)."""

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

from ecom_assets.churn import registry
from ecom_assets.insights.assets import insight
from ecom_assets.io import atomic_write_bytes, columns_in
from ecom_assets.metadata import column_schema
from ecom_assets.settings import EcomSettings

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
.tiles{display:flex;flex-wrap:wrap;gap:12px}.tile{background:#fff;border:1px solid #ddd;border-radius:8px;
padding:12px 16px;min-width:150px}.tile b{display:block;font-size:22px}.tile span{color:#666;font-size:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px;margin-top:16px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 8px;text-align:left}
.warn{color:#a15c00}.ok{color:#1b7a2e}
"""


KPI_SESSION_COLUMNS = ["customer_id", "purchase_made", "purchase_amount"]


def kpis(sessions: pl.LazyFrame | pl.DataFrame, predictions: pl.DataFrame, returned: float = 0.0) -> list[tuple[str, str]]:
    """The KPI tiles, from a lazy scan of the sessions (three columns of the 10M-row table, not all twelve).
    `returned`: the amount of return / cancellation lines (clean_returns), netted in `net revenue`."""
    buy, amount = pl.col("purchase_made"), pl.col("purchase_amount")
    sessions = sessions.lazy().select(KPI_SESSION_COLUMNS)
    totals = sessions.select(sessions=pl.len(), conversion=buy.mean(), revenue=amount.filter(buy).sum(),
                             aov=amount.filter(buy).mean()).collect().row(0, named=True)
    per_buyer = sessions.filter(buy).group_by("customer_id").len().collect()
    tiers = dict(predictions.group_by("risk_tier").len().iter_rows()) if predictions.height else {}
    return [
        ("revenue", f"{totals['revenue'] or 0:,.0f}"),
        ("returns", f"{returned:,.0f}"),
        ("net revenue", f"{(totals['revenue'] or 0) - returned:,.0f}"),
        ("buyers", f"{per_buyer.height:,}"),
        ("conversion", f"{totals['conversion']:.1%}" if totals["sessions"] else "–"),
        ("AOV", f"{totals['aov']:,.2f}" if per_buyer.height else "–"),
        ("repeat rate", f"{(per_buyer['len'] >= 2).mean():.1%}" if per_buyer.height else "–"),
        ("high churn risk", f"{tiers.get('high', 0):,}"),
        ("medium churn risk", f"{tiers.get('medium', 0):,}"),
    ]


def model_status(settings: EcomSettings) -> str:
    champion = registry.champion_version(settings.models)
    versions = registry.list_versions(settings.models)
    if not versions:
        return "<p>No churn model trained yet.</p>"
    latest = registry.load_card(settings.models, versions[-1])
    m = latest.get("metrics", {})
    lines = [f"<p><b>Serving:</b> {html.escape(champion or 'the recency baseline (no model passed the skill gate)')}</p>",
             f"<p><b>Latest model {latest['version']}</b> ({html.escape(latest['trigger'])}): "
             f"<span class='{'ok' if latest['status'] == 'champion' else 'warn'}'>{latest['status']}</span> — "
             f"{html.escape(latest['status_reason'])}</p>"]
    if "auc_out_of_time" in m:
        lines.append(f"<p>Holdout AUC {m['auc_out_of_time']:.3f} vs recency baseline {m['auc_baseline_recency']:.3f}; "
                     f"Brier {m['brier']:.3f}; top-decile precision {m['top_decile_precision']:.1%}</p>")
    performance = settings.reports / "model_performance_latest.json"
    if performance.exists():
        p = json.loads(performance.read_text())
        lines.append(f"<p>Realised AUC of {p['model_version']} on batch {p['as_of']}: {p['realised_auc']:.3f}</p>")
    else:
        lines.append("<p>Realised performance: waiting for the first prediction batch to mature (90 days).</p>")
    return "".join(lines)


def drift_status(settings: EcomSettings) -> str:
    path = settings.reports / "feature_drift_latest.json"
    if not path.exists():
        return "<p>Drift: not available yet (no champion reference).</p>"
    d = json.loads(path.read_text())
    css = "warn" if d["drift_share"] >= d["threshold"] else "ok"
    return (f"<p>Drift vs {d['reference_version']}: <span class='{css}'>{d['drift_share']:.0%} of {d['n_columns']} "
            f"columns</span> (threshold {d['threshold']:.0%}) {html.escape(', '.join(d['drifted_columns']))} — "
            f"<a href='{Path(d['report_html']).name}'>Evidently report</a></p>")


def table_html(frame: pl.DataFrame, rows: int = 10) -> str:
    if frame.is_empty():
        return "<p>(nothing to show)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in frame.head(rows).iter_rows())
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def figures(trends, funnel, segments, cohorts, campaigns) -> list:
    import plotly.graph_objects as go

    figs = []
    daily = trends.filter(pl.col("grain") == "week")
    fig = go.Figure(go.Scatter(x=daily["session_date"].to_list(), y=daily["revenue"].to_list(), name="revenue / week"))
    for row in campaigns.iter_rows(named=True) if campaigns.height else []:
        fig.add_vrect(x0=row["start_date"], x1=row["end_date"], fillcolor="orange", opacity=0.2, line_width=0,
                      annotation_text=row["campaign_id"])
    figs.append(fig.update_layout(title="Weekly revenue (campaign windows shaded)", height=320))
    if funnel.height:
        figs.append(go.Figure(go.Bar(x=funnel["category"].to_list(), y=funnel["conversion"].to_list(),
                                     error_y={"type": "data", "symmetric": False,
                                              "array": (funnel["conversion_high"] - funnel["conversion"]).to_list(),
                                              "arrayminus": (funnel["conversion"] - funnel["conversion_low"]).to_list()}))
                    .update_layout(title="View → purchase conversion by category (95 % CI)", height=320))
    if segments.height:
        summary = segments.group_by("segment").agg(customers=pl.len(), revenue=pl.col("revenue").sum()).sort("revenue")
        figs.append(go.Figure(go.Bar(y=summary["segment"].to_list(), x=summary["revenue"].to_list(), orientation="h"))
                    .update_layout(title="Revenue by segment", height=320))
    retention = cohorts.filter((pl.col("kind") == "retention") & pl.col("months_since").is_between(1, 12))
    if retention.height:
        pivot = retention.pivot(on="months_since", index="cohort", values="retention").sort("cohort")
        figs.append(go.Figure(go.Heatmap(z=pivot.drop("cohort").to_numpy(), x=pivot.columns[1:],
                                         y=[str(c) for c in pivot["cohort"]], colorscale="Blues"))
                    .update_layout(title="Retention by first-purchase cohort (months since)", height=420))
    return figs


def render(settings, tiles: list[tuple[str, str]], trends, funnel, segments, cohorts, rules, campaigns) -> str:
    import plotly.io as pio

    tiles = "".join(f"<div class='tile'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>" for k, v in tiles)
    plots = "".join(
        f"<div class='card'>{pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0))}</div>"
        for i, fig in enumerate(figures(trends, funnel, segments, cohorts, campaigns)))
    significant = rules.filter(pl.col("significant")) if rules.height else rules
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ecom_assets dashboard</title>
<style>{STYLE}</style></head><body><h1>E-commerce KPIs and churn</h1><p>Built {stamp}</p>
<div class="tiles">{tiles}</div>
<div class="card"><h2>Churn model</h2>{model_status(settings)}{drift_status(settings)}</div>
{plots}
<div class="card"><h2>Cross-sell pairs (significant after basket-size control)</h2>{table_html(significant.select(
        'antecedent', 'consequent', 'customers', 'lift', 'adjusted_lift', 'q_value') if significant.height else significant)}</div>
</body></html>"""


@insight(
    kinds={"plotly", "html"},
    ins={"clean_sessions": columns_in(KPI_SESSION_COLUMNS), "clean_returns": columns_in(["line_amount"])},
    description="reports/dashboard.html: KPI tiles (revenue, returns, net revenue, buyers, conversion, AOV, repeat rate, churn-risk counts), "
    "model status with holdout and realised performance, drift status, segments, funnel, weekly revenue with campaign "
    "windows, retention cohorts and significant cross-sell pairs. Self-contained (plotly inlined), opens offline.",
    metadata=column_schema({"kpi": "string", "value": "string"}),
)
def kpi_dashboard(settings: EcomSettings, clean_sessions: pl.LazyFrame, clean_returns: pl.LazyFrame,
                  churn_predictions: pl.DataFrame,
                  sales_trends: pl.DataFrame, product_funnel: pl.DataFrame, customer_segments: pl.DataFrame,
                  cohort_metrics: pl.DataFrame, cross_sell_rules: pl.DataFrame, campaign_lift: pl.DataFrame) -> dg.Output:
    returned = clean_returns.select(pl.col("line_amount").abs().sum()).collect().item() or 0.0
    tiles = kpis(clean_sessions, churn_predictions, returned)
    page = render(settings, tiles, sales_trends, product_funnel, customer_segments, cohort_metrics, cross_sell_rules,
                  campaign_lift)
    path = settings.reports / "dashboard.html"
    atomic_write_bytes(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    table = pl.DataFrame(tiles, schema=["kpi", "value"], orient="row")
    return dg.Output(table, metadata={"dashboard": dg.MetadataValue.path(str(path)), "bytes": len(page),
                                      "dagster/row_count": table.height})
