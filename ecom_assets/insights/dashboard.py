"""`kpi_dashboard`: one self-contained HTML page (plotly inlined, opens offline)."""

import html
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import polars as pl

from ecom_assets.churn import registry
from ecom_assets.ingest.orders import (REFUND_INPUT_COLUMNS, currency_problem, file_currencies, order_refunds,
                                       shown_currency, unnamed_currency_note)
from ecom_assets.insights.analyses import segment_summary
from ecom_assets.insights.assets import insight
from ecom_assets.io import atomic_write_bytes, columns_in
from ecom_assets.metadata import column_schema
from ecom_assets.schemas import CONVERSION_COLUMNS, browsing_session, converted
from ecom_assets.settings import EcomSettings

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
.tiles{display:flex;flex-wrap:wrap;gap:12px}.tile{background:#fff;border:1px solid #ddd;border-radius:8px;
padding:12px 16px;min-width:150px}.tile b{display:block;font-size:22px}.tile span{color:#666;font-size:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px;margin-top:16px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 8px;text-align:left}
.warn{color:#a15c00}.ok{color:#1b7a2e}.tile .change{display:block;color:#555}
"""


KPI_SESSION_COLUMNS = ["customer_id", "session_date", "purchase_made", "purchase_amount"]
NO_BROWSING = "n/a — orders-only data (no browsing sessions)"
PERIOD_DAYS = 28  # the comparison period: four whole weeks, so both periods hold the same weekdays


def money_rows(sessions: pl.LazyFrame, order_lines: pl.LazyFrame, returns: pl.LazyFrame,
               events: pl.LazyFrame) -> pl.DataFrame:
    """Distinct (source_file, currency) of the files behind the page's money, as `ingest.orders.money_currencies`
    reads them (`one_currency` reads the same from the raw drops): order and return lines, purchase events (a
    clean_events stored before it had a currency names none; one not built yet, without columns, holds nothing),
    and the purchased sessions of files that are none of those (a sessions export: no currency)."""
    built = [(frame, rows) for frame, rows in ((order_lines, pl.lit(True)), (returns, pl.lit(True)),
                                               (events, pl.col("event_type") == "purchase"))
             if "source_file" in frame.collect_schema().names()]
    parts = [file_currencies(frame, rows) for frame, rows in built]
    line_files = [frame.select("source_file").unique() for frame, _ in built]
    exported = sessions.filter("purchase_made").select("source_file").unique()
    if line_files:
        exported = exported.join(pl.concat(line_files), on="source_file", how="anti")
    parts.append(exported.with_columns(currency=pl.lit(None, pl.String)))
    return pl.concat(pl.collect_all(parts)).unique()


def currency_warnings(money: pl.DataFrame) -> list[str]:
    """What the page says above its figures about `money_rows`: amounts in several currencies added unconverted
    (`currency_problem`, the words of the `one_currency` check), money-carrying files naming no currency beside
    files naming one (`unnamed_currency_note`). [] when the money is in one currency, or none is named at all."""
    problem, note = currency_problem(money), unnamed_currency_note(money)
    mixed = problem and ("Money in several currencies, added unconverted (check one_currency on clean_sessions "
                         f"fails): {problem}")
    return [w for w in (mixed, note) if w]


class Tile(NamedTuple):
    label: str
    value: str
    change: str  # vs the previous period, or "" when there is none


def period_figures(sessions: pl.LazyFrame | pl.DataFrame) -> tuple[date | None, dict, dict, dict]:
    """(as-of date = last session date, all-time, last PERIOD_DAYS, the PERIOD_DAYS before) figures:
    sessions, browsing_sessions (`browsing_session`), converted (browsing sessions that ended in a purchase:
    `converted`, so an order also in the tracker converts its visit once), purchases, revenue, buyers (+ repeat_buyers
    all-time).
    Two lazy passes: sessions per day (a few hundred rows), then the purchase rows only (orders per
    customer, in which period)."""
    buy, day = pl.col("purchase_made"), pl.col("session_date")
    sessions = sessions.lazy()
    columns = sessions.collect_schema().names()
    sessions = sessions.select(KPI_SESSION_COLUMNS + [c for c in CONVERSION_COLUMNS if c in columns])
    browsing = browsing_session(columns)
    daily = sessions.group_by("session_date").agg(sessions=pl.len(), browsing_sessions=browsing.sum(),
                                                  converted=(browsing & converted(columns)).sum(), purchases=buy.sum(),
                                                  revenue=pl.col("purchase_amount").filter(buy).sum()).collect()
    if daily.is_empty():
        return None, {}, {}, {}
    as_of, first = daily["session_date"].max(), daily["session_date"].min()
    start = as_of - timedelta(days=PERIOD_DAYS - 1)
    windows = {"current": (start, as_of), "previous": (start - timedelta(days=PERIOD_DAYS), start - timedelta(days=1))}
    orders = sessions.filter(buy).group_by("customer_id").agg(
        orders=pl.len(), **{name: day.is_between(*w).any() for name, w in windows.items()}).collect()
    sums = ["sessions", "browsing_sessions", "converted", "purchases", "revenue"]
    total = {**daily.select(pl.col(sums).sum()).row(0, named=True), "buyers": orders.height,
             "repeat_buyers": int((orders["orders"] >= 2).sum())}
    periods = {name: {**daily.filter(pl.col("session_date").is_between(*w)).select(pl.col(sums).sum()).row(0, named=True),
                      "buyers": int(orders[name].sum())} for name, w in windows.items()}
    # history starting inside the previous period: not a whole period to compare with
    return as_of, total, periods["current"], periods["previous"] if first <= windows["previous"][0] else {}


def _figure(name: str, figures: dict) -> float | None:
    """revenue, buyers, conversion (converted browsing sessions per browsing session: an order is no visit) or
    AOV (revenue per purchase) of one period."""
    if not figures:
        return None
    if name == "conversion":
        return figures["converted"] / figures["browsing_sessions"] if figures["browsing_sessions"] else None
    if name == "aov":
        return figures["revenue"] / figures["purchases"] if figures["purchases"] else None
    return figures[name]


def money(value: float, currency: str = "") -> str:
    """43512.5 -> "43,512.50" (+ " GBP"): thousands separators and 2 decimals, never "4.35e+04"."""
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def kpis(sessions: pl.LazyFrame | pl.DataFrame, predictions: pl.DataFrame, currency: str,
         refunded: float = 0.0, never_revenue: float = 0.0) -> tuple[date | None, list[Tile]]:
    """(data as-of date, KPI tiles): the last PERIOD_DAYS against the PERIOD_DAYS before, then all-time figures.
    `refunded`: the money given back on bought orders (`ingest.orders.order_refunds`), subtracted in `net revenue`;
    `never_revenue`: the amount of its lines of cancelled/refunded orders, shown but not subtracted (they never
    were revenue: sessions count no purchase for them), as sales_trends does.
    Conversion says NO_BROWSING when the data has no browsing session (orders only), not 100 %."""
    as_of, total, current, previous = period_figures(sessions)
    tiers = dict(predictions.group_by("risk_tier").len().iter_rows()) if predictions.height else {}
    formats = {"revenue": lambda v: f"{v:,.0f} {currency}", "buyers": lambda v: f"{v:,}",
               "conversion": lambda v: f"{v:.1%}", "aov": lambda v: money(v, currency)}
    tiles = []
    for name, fmt in formats.items():
        if name == "conversion" and as_of is not None and not total["browsing_sessions"]:
            tiles.append(Tile(f"conversion, last {PERIOD_DAYS} days", NO_BROWSING, ""))
            continue
        now, before = _figure(name, current), _figure(name, previous)
        # a rate moves in percentage points (2.0 % -> 5.6 % is "+3.6 pp", not "+179 %"); amounts in per cent
        moved = (f"{(now - before) * 100:+.1f} pp" if name == "conversion" else f"{now / before - 1:+.1%}") \
            if now is not None and before else None
        change = ("no whole previous period yet" if not previous else
                  f"{moved} vs the previous {PERIOD_DAYS} days" if moved else "")
        label = "AOV" if name == "aov" else name
        tiles.append(Tile(f"{label}, last {PERIOD_DAYS} days", fmt(now) if now is not None else "–", change))
    buyers = total.get("buyers", 0)
    return as_of, tiles + [
        Tile("revenue, all time", formats["revenue"](total.get("revenue", 0.0)), ""),
        *([Tile("refunds, all time", formats["revenue"](refunded), "money given back on bought orders"),
           Tile("net revenue, all time", formats["revenue"](total.get("revenue", 0.0) - refunded), "revenue - refunds")]
          if refunded else []),
        *([Tile("cancelled / refunded orders, all time", formats["revenue"](never_revenue),
                "never counted as revenue")] if never_revenue else []),
        Tile("buyers, all time", f"{buyers:,}", ""),
        Tile("repeat rate (buyers with 2+ orders)", f"{total['repeat_buyers'] / buyers:.1%}" if buyers else "–", ""),
        Tile("high churn risk", f"{tiers.get('high', 0):,}", ""),
        Tile("medium churn risk", f"{tiers.get('medium', 0):,}", ""),
    ]


def model_status(settings: EcomSettings) -> str:
    """The churn model card: what serves (`registry.serving_in_words`, the CLI's words), the latest version's status,
    holdout and realised performance."""
    latest = registry.latest_card(settings.models)
    if latest is None:
        return "<p>No churn model trained yet.</p>"
    m = latest.get("metrics", {})
    lines = [f"<p><b>Serving:</b> {html.escape(registry.serving_in_words(settings.models))}</p>",
             f"<p><b>Latest model {latest['version']}</b> ({html.escape(latest['trigger'])}): "
             f"<span class='{'ok' if latest['status'] == 'champion' else 'warn'}'>{latest['status']}</span> — "
             f"{html.escape(latest['status_reason'])}</p>"]
    if "auc_out_of_time" in m:
        best = f"best classic {m['best_classic']} {m['auc_best_classic']:.3f}; " if "auc_best_classic" in m else ""
        lines.append(f"<p>Holdout AUC {m['auc_out_of_time']:.3f} vs {best}recency {m['auc_baseline_recency']:.3f}; "
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


def table_html(frame: pl.DataFrame, rows: int = 10, money_columns=(), share_columns=()) -> str:
    """The first `rows` rows as an HTML table: `money_columns` as money (`money`), `share_columns` as
    percentages, integers with thousands separators, other floats to 3 significant digits (lift, q-value)."""
    if frame.is_empty():
        return "<p>(nothing to show)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    kinds = ["money" if c in money_columns else "share" if c in share_columns else "" for c in frame.columns]
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v, k))}</td>" for v, k in zip(r, kinds)) + "</tr>"
                   for r in frame.head(rows).iter_rows())
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v, kind: str = "") -> str:
    if v is None:
        return "–"
    if kind == "money":
        return money(v)
    if kind == "share":
        return f"{v:.1%}"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def week_coverage(weeks: pl.DataFrame, first: date | None, last: date | None) -> pl.DataFrame:
    """`weeks` (session_date = week start) with `days_covered` (days of the week inside the data's span)
    and `partial` (fewer than 7): a week the data only starts or ends in is not a revenue collapse."""
    if first is None or last is None or weeks.is_empty():
        return weeks.with_columns(days_covered=pl.lit(7), partial=pl.lit(False))
    start, end = pl.max_horizontal(pl.col("session_date"), pl.lit(first)), pl.min_horizontal(
        pl.col("session_date") + timedelta(days=6), pl.lit(last))
    return weeks.with_columns(days_covered=(end - start).dt.total_days() + 1).with_columns(
        partial=pl.col("days_covered") < 7)


def figures(weeks, funnel, segments, cohorts, campaigns, currency: str, browsing: bool = True) -> list:
    """The page's plotly figures; money axes and hovers with thousands separators. Without browsing
    sessions (`browsing` False: orders only) no conversion chart: every category would show 100 %."""
    import plotly.graph_objects as go

    money_axis = {"tickformat": ",.0f"}
    money_hover = ",.2f"

    figs = []
    whole, partial = weeks.filter(~pl.col("partial")), weeks.filter(pl.col("partial"))
    fig = go.Figure(go.Scatter(x=whole["session_date"].to_list(), y=whole["revenue"].to_list(), mode="lines+markers",
                               name="revenue / week", hovertemplate=f"%{{x}}: %{{y:{money_hover}}} {currency}<extra></extra>"))
    if partial.height:
        fig.add_trace(go.Scatter(x=partial["session_date"].to_list(), y=partial["revenue"].to_list(), mode="markers",
                                 marker={"symbol": "circle-open", "size": 10, "color": "grey"},
                                 text=[f"partial week: {d} of 7 days of data" for d in partial["days_covered"]],
                                 hovertemplate=f"%{{x}}: %{{y:{money_hover}}} {currency} (%{{text}})<extra></extra>",
                                 name="partial week (not comparable)"))
    for row in campaigns.iter_rows(named=True) if campaigns.height else []:
        fig.add_vrect(x0=row["start_date"], x1=row["end_date"], fillcolor="orange", opacity=0.2, line_width=0,
                      annotation_text=row["campaign_id"])
    figs.append(fig.update_layout(title=f"Weekly revenue ({currency}; campaign windows shaded, partial weeks hollow)",
                                  height=320, yaxis=money_axis))
    ranked = funnel.filter(pl.col("leakage_rank").is_not_null()) if funnel.height and browsing else funnel.clear()
    if ranked.height:
        figs.append(go.Figure(go.Bar(x=ranked["category"].to_list(), y=ranked["conversion"].to_list(),
                                     error_y={"type": "data", "symmetric": False,
                                              "array": (ranked["conversion_high"] - ranked["conversion"]).to_list(),
                                              "arrayminus": (ranked["conversion"] - ranked["conversion_low"]).to_list()}))
                    .update_layout(title="View → purchase conversion by category (95 % Wilson interval)", height=320))
    if segments.height:
        summary = segment_table(segments).sort("revenue")
        figs.append(go.Figure(go.Bar(y=summary["segment"].to_list(), x=summary["revenue"].to_list(), orientation="h",
                                     hovertemplate=f"%{{y}}: %{{x:{money_hover}}} {currency}<extra></extra>"))
                    .update_layout(title=f"Revenue by segment ({currency})", height=320, xaxis=money_axis))
    retention = cohorts.filter((pl.col("kind") == "retention") & pl.col("months_since").is_between(1, 12)) \
        if cohorts.height else cohorts
    if retention.height:
        pivot = retention.pivot(on="months_since", index="cohort", values="retention").sort("cohort")
        figs.append(go.Figure(go.Heatmap(z=pivot.drop("cohort").to_numpy(), x=pivot.columns[1:],
                                         y=[str(c) for c in pivot["cohort"]], colorscale="Blues"))
                    .update_layout(title="Retention by first-purchase cohort (months since)", height=420))
    return figs


def segment_table(segments: pl.DataFrame) -> pl.DataFrame:
    """Per segment: customers, share of customers, revenue and share of revenue (largest revenue first)."""
    return segment_summary(segments).select("segment", "customers", "share", "revenue", "revenue_share")


def render(settings: EcomSettings, currency: str, as_of: date | None, tiles: list[Tile], weeks, funnel, segments,
           cohorts, rules, campaigns, browsing: bool = True, warnings: list[str] = ()) -> str:
    """The page; `warnings` (`currency_warnings`) are shown above everything else."""
    import plotly.io as pio

    tiles_html = "".join(f"<div class='tile'><b>{html.escape(t.value)}</b><span>{html.escape(t.label)}</span>"
                         + (f"<span class='change'>{html.escape(t.change)}</span>" if t.change else "") + "</div>"
                         for t in tiles)
    plots = "".join(
        f"<div class='card'>{pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0))}</div>"
        for i, fig in enumerate(figures(weeks, funnel, segments, cohorts, campaigns, currency, browsing)))
    significant = rules.filter(pl.col("significant")) if rules.height else rules
    partial = weeks.filter(pl.col("partial") & (pl.col("session_date") == pl.col("session_date").max()))
    partial_note = (f"<p class='warn'>The last week holds {partial['days_covered'][0]} of 7 days of data: drawn apart, "
                    "not comparable with whole weeks.</p>" if partial.height else "")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    segments_html = (table_html(segment_table(segments).rename({"revenue": f"revenue ({currency})"}),
                                money_columns=[f"revenue ({currency})"], share_columns=["share", "revenue_share"])
                     if segments.height else "<p>(no segments yet)</p>")
    no_funnel = ("" if browsing else f"<p>Conversion by category: {NO_BROWSING}: every order is a purchase, so a "
                 "conversion rate would read 100 %.</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ecom_assets dashboard</title>
<style>{STYLE}</style></head><body><h1>E-commerce KPIs and churn</h1>
{"".join(f"<p class='warn'><b>{html.escape(w)}</b></p>" for w in warnings)}
<p><b>Data as of {as_of or "– (no sessions yet)"}</b> · money in {html.escape(currency)} · built {stamp}</p>
{partial_note}<div class="tiles">{tiles_html}</div>{no_funnel}
<div class="card"><h2>Churn model</h2>{model_status(settings)}{drift_status(settings)}</div>
<div class="card"><h2>Segments</h2>{segments_html}</div>
{plots}
<div class="card"><h2>Cross-sell pairs (significant beyond basket sizes and category popularity)</h2>{table_html(
        significant.select('antecedent', 'consequent', 'customers', 'lift', 'adjusted_lift', 'q_value')
        if significant.height else significant)}</div>
</body></html>"""


@insight(
    kinds={"plotly", "html"},
    ins={"clean_sessions": columns_in(KPI_SESSION_COLUMNS + CONVERSION_COLUMNS + ["source_file"]),
         "clean_returns": columns_in(["order_id", "order_time", "line_amount", "is_refund", "currency", "source_file"]),
         "clean_order_lines": columns_in([*REFUND_INPUT_COLUMNS, "currency", "source_file"]),
         # read whole, lazily: a clean_events stored before it had a currency has none to select
         "clean_events": dg.AssetIn()},
    deps=["feature_drift_report"],
    description="reports/dashboard.html: the data's as-of date; KPI tiles for the last 28 days against the 28 before "
    "(revenue, buyers, conversion, AOV) and all-time figures (revenue; refunds and net revenue = revenue - refunds when "
    "orders carry refunds; cancelled/refunded orders, never revenue, shown apart; buyers, repeat rate, churn-risk counts); money in the one currency the order lines and purchase events name (else settings.currency) with thousands separators in "
    "tiles, tables and charts — labelled 'mixed EUR+USD' under a warning naming the currencies and files when they "
    "name several (the one_currency check's words), and a warning names money-carrying files naming no currency "
    "beside files naming one (their amounts are assumed to be in that currency); model status (what serves, in "
    "the CLI's words) with holdout and realised performance, drift status; segment counts and "
    "revenue share; funnel; weekly revenue with campaign windows (a week the data only partly covers is drawn apart); "
    "retention cohorts and significant cross-sell pairs. Orders-only data (no browsing session: every order is a "
    "purchased session) shows conversion as 'n/a — orders-only data (no browsing sessions)' and no conversion "
    "chart, never 100 %. Rebuilt when the churn list is rescored (each drop, each "
    "promotion) or a drift report lands, and daily. Self-contained (plotly inlined), opens offline.",
    metadata=column_schema({"kpi": "string", "value": "string", "change": "string - vs the previous 28 days"}),
)
def kpi_dashboard(settings: EcomSettings, clean_sessions: pl.LazyFrame, clean_returns: pl.LazyFrame,
                  clean_order_lines: pl.LazyFrame, clean_events: pl.LazyFrame, churn_predictions: pl.DataFrame, sales_trends: pl.DataFrame, product_funnel: pl.DataFrame,
                  customer_segments: pl.DataFrame, cohort_metrics: pl.DataFrame, cross_sell_rules: pl.DataFrame,
                  campaign_lift: pl.DataFrame) -> dg.Output:
    refunded, never_revenue = (frame.item() for frame in pl.collect_all([
        order_refunds(clean_order_lines, clean_returns).select(pl.col("refunds").sum()),
        clean_returns.select(pl.col("line_amount").abs().filter(~pl.col("is_refund")).sum())]))
    money = money_rows(clean_sessions, clean_order_lines, clean_returns, clean_events)
    currency, warnings = shown_currency(money, settings.currency), currency_warnings(money)
    as_of, tiles = kpis(clean_sessions, churn_predictions, currency, refunded or 0.0, never_revenue or 0.0)
    browsing = as_of is None or clean_sessions.select(browsing_session(clean_sessions.collect_schema().names()).any()
                                                      ).collect().item()
    daily = sales_trends.filter(pl.col("grain") == "day") if sales_trends.height else sales_trends
    weeks = week_coverage(sales_trends.filter(pl.col("grain") == "week") if sales_trends.height
                          else pl.DataFrame(schema={"session_date": pl.Date, "revenue": pl.Float64}),
                          daily["session_date"].min() if daily.height else None, as_of)
    page = render(settings, currency, as_of, tiles, weeks, product_funnel, customer_segments, cohort_metrics, cross_sell_rules,
                  campaign_lift, browsing, warnings)
    path = settings.reports / "dashboard.html"
    atomic_write_bytes(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    table = pl.DataFrame([t._asdict() for t in tiles], schema={"label": pl.String, "value": pl.String,
                                                                 "change": pl.String}).rename({"label": "kpi"})
    return dg.Output(table, metadata={"dashboard": dg.MetadataValue.path(str(path)), "bytes": len(page),
                                      "as_of": str(as_of), "currency": currency,
                                      "currency_warnings": "; ".join(warnings) or "none",
                                      "dagster/row_count": table.height})
