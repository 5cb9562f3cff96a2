"""Quarantine reasons: every rule writes its rule text first and the offending value last, so the
quarantine summary groups one rule broken by many different values into one row."""

import json
from datetime import date

import polars as pl

from ecom_assets.clean.assets import read_quarantine_accounting
from ecom_assets.ingest.parse import parse_drop, reason_rule
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.ingest_helpers import SESSIONS_HEADER

TODAY = date(2026, 11, 24)

# A hand-edited sessions export: each broken rule appears twice, with two different values.
SESSIONS = "\n".join([
    SESSIONS_HEADER,
    "S1,C1,2024-01-02,Books,120,1,abc",  # amount typed as text
    "S2,C1,2024-01-02,Books,120,1,n.a.",
    "S3,C2,2024-01-02,Books,120,2,5",  # purchase flag outside 0/1
    "S4,C2,2024-01-02,Books,120,maybe,5",
    "S5,C3,2024-01-02,Books,120,1,-5",  # refunds typed as negative amounts
    "S6,C3,2024-01-02,Books,120,1,-7.5",
    "S7,C4,2024-01-02,Books,inf,0,0",  # spreadsheet division by zero
    "S8,C4,2024-01-02,Books,Infinity,0,0",
    "S9,C5,02/01/2024,Books,120,0,0",  # a local date format
    "S10,C5,01.02.2024,Books,120,0,0",
    "S11,C6,2024-01-02,Books,120,0,0,extra",  # one field too many
    "S12,C6,2024-01-02,Books,120,0,0,x,y",  # two too many
    "S13,C7,2024-01-02,Books,120,0,0",  # the same session id with other content
    "S13,C7,2024-01-03,Books,120,0,0",
    "S14,C8,2024-01-02,Books,120,1,NaN",  # a missing-value marker where a value is needed
    "S15,C8,2024-01-02,Books,120,1,NULL",
]) + "\n"

ORDERS = "\n".join([
    "order_id,customer_id,order_time,product_id,quantity,unit_price",
    "#1,C1,2024-03-01T10:00:00Z,SKU-1,0,9.00",  # a zero-quantity line
    "#2,C1,2024-03-01T10:00:00Z,SKU-2,0,4.00",
    "#3,C2,2024-03-01T10:00:00Z,SKU-1,1,-3.00",  # discount lines as negative prices
    "#4,C2,2024-03-01T10:00:00Z,SKU-2,1,-1.50",
]) + "\n"

EVENTS = "\n".join([
    "event_time,event_type,product_id,price,customer_id",
    "2024-03-01T10:00:00Z,purchase,,9.00,C1",  # a purchase event without its product
    "2024-03-01T10:01:00Z,add_to_cart,,9.00,C1",
    "2024-03-01T10:02:00Z,view,SKU-1,-2,C2",  # negative prices
    "2024-03-01T10:03:00Z,view,SKU-1,-3.5,C2",
]) + "\n"


def _rules(parsed) -> dict[str, list[str]]:
    """rule -> the full reasons grouped under it."""
    frame = parsed.quarantine.select("reason", rule=reason_rule(pl.col("reason")))
    return {rule: group["reason"].to_list() for (rule,), group in frame.group_by("rule", maintain_order=True)}


def test_every_rule_names_the_rule_first_and_the_value_last() -> None:
    parsed = parse_drop(SESSIONS.encode(), "sessions", "s.csv__abc", today=TODAY)
    assert parsed.clean.height == 0 and parsed.quarantine.height == 16
    by_line = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert by_line[2].startswith("purchase_amount is not a number") and by_line[2].endswith(": 'abc'")
    assert by_line[4] == "purchase_made must be 0 or 1 (or true/false, yes/no): '2'"
    assert by_line[6] == "negative purchase_amount: '-5'"
    assert by_line[8] == "browsing_time_sec is not a finite number: 'inf'"
    assert by_line[10].startswith("session_date is not an ISO 8601 date") and by_line[10].endswith(": '02/01/2024'")
    assert by_line[12] == "field count differs from the header (7 fields): 8"
    assert by_line[14] == "session_id repeated in this file with different content (every version quarantined): 'S13'"
    assert by_line[16] == ("purchase_made=1 without purchase_amount; "
                           "purchase_amount is a missing-value marker, read as missing: 'NaN'")
    # each broken rule is one group holding both of its rows, and no value leaks into a rule
    rules = _rules(parsed)
    assert len(rules) == 8 and all(len(reasons) == 2 for reasons in rules.values())
    for value in ("abc", "n.a.", "maybe", "-7.5", "Infinity", "01.02.2024", "S13", "NULL"):
        assert not any(value in rule for rule in rules), value
    assert "purchase_made=1 without purchase_amount; purchase_amount is a missing-value marker, read as missing" in rules


def test_order_and_event_rules_group_by_rule() -> None:
    orders = parse_drop(ORDERS.encode(), "orders", "orders.csv__abc", today=TODAY)
    assert _rules(orders) == {"quantity 0": ["quantity 0: '0'"] * 2,
                              "negative unit_price (an adjustment, not a product line)": [
                                  "negative unit_price (an adjustment, not a product line): '-3.00'",
                                  "negative unit_price (an adjustment, not a product line): '-1.50'"]}
    events = parse_drop(EVENTS.encode(), "events", "events.csv__abc", today=TODAY)
    no_amount = ("purchase event without product_id or order_amount (its value is unknown: map the order's revenue "
                 "or total to order_amount in sources.yaml)")
    assert _rules(events) == {"event without product_id": ["event without product_id: 'add_to_cart'"],
                              no_amount: [f"{no_amount}: 'purchase'"],
                              "negative price": ["negative price: '-2'", "negative price: '-3.5'"]}


def test_quarantine_summary_counts_rows_per_rule(tmp_path) -> None:
    """What `quarantine_summary` publishes: one row per (kind, file, rule) with an example reason."""
    settings = EcomSettings(data_dir=str(tmp_path))
    parsed = parse_drop(SESSIONS.encode(), "sessions", "s.csv__abc", today=TODAY)
    folder = settings.folder("quarantine") / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    parsed.quarantine.write_parquet(folder / "s.csv__abc.parquet")
    (folder / "s.csv__abc.json").write_text(json.dumps(parsed.accounting))
    per_file, summary = read_quarantine_accounting(settings)
    assert per_file["quarantined"].to_list() == [16]
    assert summary.columns == ["kind", "source_file", "rule", "rows", "example"]
    assert summary.height == 8 and summary["rows"].to_list() == [2] * 8
    negative = summary.row(by_predicate=pl.col("rule") == "negative purchase_amount", named=True)
    assert negative["example"] == "negative purchase_amount: '-5'"


def test_an_unreadable_amount_gets_the_hint_that_fits_what_it_looks_like() -> None:
    """Tryout: "declare decimal: ','" was suggested for 'abc', '$89.90' and '1,234.50' alike, where declaring a
    decimal comma would fix none of them (and would break the file's other amounts)."""
    rows = ["S1,C1,2024-01-02,Books,120,1,abc", "S2,C1,2024-01-02,Books,120,1,$89.90",
            'S3,C1,2024-01-02,Books,120,1,"1,234"', 'S4,C1,2024-01-02,Books,120,1,"12,50"',
            "S5,C1,2024-01-02,Books,120,1,12 EUR", "S6,C1,2024-01-02,Books,120,1,7.50",
            'S7,C1,2024-01-02,Books,120,1,"1,234.50"']  # a thousands separator beside a decimal point: read
    parsed = parse_drop("\n".join([SESSIONS_HEADER, *rows]).encode(), "sessions", "s.csv__hint", today=TODAY)
    by_line = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert by_line[2] == "purchase_amount is not a number: 'abc'"
    assert "currency sign" in by_line[3] and "currency sign" in by_line[6]
    assert "ambiguous: one comma before 3 digits" in by_line[4] and "declare" not in by_line[4]
    assert 'declare decimal: ","' in by_line[5]  # the one shape a declared decimal comma reads
    assert sum('declare decimal' in r for r in by_line.values()) == 1
    assert parsed.clean["purchase_amount"].to_list() == [7.5, 1234.5]
