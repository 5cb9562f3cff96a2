"""Acceptance: a gift wholesaler's purchase log (shaped like the UCI Online Retail data set: invoice
lines, `C…` cancellations with negative quantities, lines without a CustomerID, timestamps), converted
to the sessions contract the ways a user would, runs `ecom-assets run` with exit 0 in every variant,
with every row accounted for and nothing silently resolved."""

import random
import re
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ecom_assets.cli import main
from ecom_assets_tests.ingest_helpers import CUSTOMERS_HEADER, SESSIONS_HEADER

PRODUCTS = [("Home", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55), ("Home", "WHITE METAL LANTERN", 3.39),
            ("Gifts", "JUMBO BAG RED RETROSPOT", 1.95), ("Kitchen", "SET OF 3 CAKE TINS PANTRY DESIGN", 4.95),
            ("Toys", "SPACEBOY LUNCH BOX", 1.65), ("Party", "PARTY BUNTING", 4.95)]
COUNTRIES = ["United Kingdom", "United Kingdom", "United Kingdom", "France", "Germany", "EIRE"]


def order_lines(seed: int = 11, invoices: int = 120) -> list[dict]:
    """~400 invoice lines over 14 months (Dec 2010 - Jan 2012) from 45 customers; ~6 % of invoices are
    cancellations (`C` + number, negative quantity), ~8 % have no CustomerID (guest checkouts)."""
    rng = random.Random(seed)
    start = datetime(2010, 12, 1, 8, 26)
    lines = []
    for number in range(invoices):
        customer = "" if rng.random() < 0.08 else str(12346 + rng.randrange(45))
        at = start + timedelta(days=rng.randrange(420), minutes=rng.randrange(600))
        cancelled = rng.random() < 0.06
        invoice = f"{'C' if cancelled else ''}{536365 + number}"
        for _ in range(rng.randint(1, 6)):
            category, description, price = rng.choice(PRODUCTS)
            quantity = rng.choice([1, 2, 6, 12, 24]) * (-1 if cancelled else 1)
            lines.append({"invoice": invoice, "customer": customer, "at": at, "category": category,
                          "description": description, "amount": round(quantity * price, 2),
                          "country": COUNTRIES[int(customer or 0) % len(COUNTRIES)]})
    return lines


VARIANTS = {  # how a user converts the log: (a row per line, timestamps, keep cancellations and guest lines)
    "careful": (False, False, False),  # one row per invoice, ISO dates, cancellations and guests left out
    "timestamps": (False, True, False),  # as exported: `2010-12-01 08:26:00` in session_date and signup_date
    "cancellations_and_guests": (False, False, True),  # C-invoices as negative amounts, lines without a customer
    "invoice_lines": (True, True, True),  # every line a row: invoice numbers repeat with different content
}


def sessions_file(lines: list[dict], per_line: bool, timestamps: bool, everything: bool) -> str:
    kept = [r for r in lines if everything or (r["customer"] and not r["invoice"].startswith("C"))]
    if not per_line:
        by_invoice: dict[str, dict] = {}
        for line in kept:
            row = by_invoice.setdefault(line["invoice"], {**line, "amount": 0.0})
            row["amount"] += line["amount"]
        kept = list(by_invoice.values())
    fmt = "%Y-%m-%d %H:%M:%S" if timestamps else "%Y-%m-%d"
    return SESSIONS_HEADER + "\n" + "\n".join(
        f"{r['invoice']},{r['customer']},{r['at']:{fmt}},{r['category']},,1,{r['amount']:.2f}" for r in kept) + "\n"


def customers_file(lines: list[dict], timestamps: bool) -> str:
    first = {}
    for line in sorted(lines, key=lambda r: r["at"]):
        if line["customer"]:
            first.setdefault(line["customer"], line)
    fmt = "%Y-%m-%d %H:%M:%S" if timestamps else "%Y-%m-%d"
    return CUSTOMERS_HEADER + "\n" + "\n".join(f"{c},,,{r['country']},{r['at']:{fmt}}" for c, r in first.items()) + "\n"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_wholesalers_purchase_log_runs_in_every_variant(variant: str, cli_env: Path, capsys) -> None:
    per_line, timestamps, everything = VARIANTS[variant]
    lines = order_lines()
    landing = cli_env / "landing"
    landing.mkdir(parents=True)
    (landing / "sessions_online_retail.csv").write_text(sessions_file(lines, per_line, timestamps, everything))
    (landing / "customers_online_retail.csv").write_text(customers_file(lines, timestamps))
    assert main(["run", "--data-dir", str(cli_env)]) == 0
    out = capsys.readouterr().out
    rows_in, clean, quarantined, duplicate = map(int, re.search(
        r"([\d,]+) rows in = ([\d,]+) clean \+ ([\d,]+) quarantined \+ ([\d,]+) duplicate", out).group(1, 2, 3, 4))
    invoices = {r["invoice"] for r in lines if everything or (r["customer"] and not r["invoice"].startswith("C"))}
    customers = len({r["customer"] for r in lines if r["customer"]})
    assert rows_in == (len(lines) if per_line else len(invoices)) + customers == clean + quarantined + duplicate
    folder = cli_env / "quarantine" / "sessions"
    reasons = pl.concat([pl.read_parquet(p) for p in folder.glob("*.parquet")]) if folder.exists() else pl.DataFrame(
        schema={"session_id": pl.String, "customer_id": pl.String, "reason": pl.String})
    sessions = pl.scan_parquet(cli_env / "warehouse" / "clean_sessions" / "*.parquet").collect()
    assert sessions.is_empty() or sessions["purchase_amount"].min() >= 0
    if not (per_line or everything):  # one row per invoice, ISO dates or ISO date-times: every row is kept
        assert clean == rows_in and reasons.is_empty()
        assert pl.read_parquet(cli_env / "warehouse" / "customer_features.parquet").height == customers
        assert (cli_env / "exports" / "churn_risk_list.csv").exists()
    if everything:
        assert reasons.filter(pl.col("session_id").str.starts_with("C"))["reason"].str.contains(
            "negative purchase_amount|repeated in this file").all()
        assert reasons.filter(pl.col("customer_id").is_null())["reason"].str.contains("empty customer_id").all()
        assert not sessions["session_id"].str.starts_with("C").any()
    if per_line:  # an invoice of several different lines is never collapsed to one of them
        repeated = {i for i in {r["invoice"] for r in lines} if sum(r["invoice"] == i for r in lines) > 1}
        conflicted = reasons.filter(pl.col("reason").str.contains("repeated in this file with different content", literal=True))
        assert conflicted.height and set(conflicted["session_id"]) <= repeated
        assert not set(sessions["session_id"]) & set(conflicted["session_id"])


# A shop's purchase log exported as customer, date, amount — no order id, no quantity (the README's own
# example of a purchase log). It was rejected whole: "missing required column(s) quantity".
AMOUNT_ONLY = """customer,date,amount
cust001@mail.example,20230107,131.59
cust002@mail.example,20230109,18.00
cust001@mail.example,20230301,-20.00
cust003@mail.example,20230302,
"""


def test_a_purchase_log_of_customer_date_amount_is_read_with_unknown_items(data_dir, instance, resources) -> None:
    from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean, quarantine

    (data_dir / "sources.yaml").write_text('- match: "orders_log*.csv"\n  kind: orders\n  date_format: "%Y%m%d"\n'
                                           '  columns: {customer: customer_id, date: order_time, amount: line_amount}\n')
    drop(data_dir, "orders_log.csv", AMOUNT_ONLY)
    tables = ingest_and_clean(data_dir, instance, resources)
    sessions = tables["sessions"].sort("session_date")
    assert sessions["purchase_amount"].to_list() == [131.59, 18.0]  # the -20.00 row is a return, never a purchase
    assert sessions["units_purchased"].null_count() == 2  # items bought are unknown, never counted as 0
    assert tables["order_lines"]["quantity"].null_count() == tables["order_lines"].height == 2
    assert tables["returns"]["return_reason"].to_list() == ["negative line_amount"]
    # the amount-less row: neither quantity x unit_price nor a line_amount, each rule named
    assert quarantine(data_dir, "orders")["reason"].to_list() == [
        "empty quantity (needed for quantity x unit_price without a line_amount); neither unit_price nor line_amount"]
