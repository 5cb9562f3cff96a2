"""Spreadsheet formula cells in text columns: an export passed through a spreadsheet (or a product feed built
in one) holds `=HYPERLINK("https://shop/x","Shoes")` where the category or product name should be. A
category is never named after a formula: a hyperlink with literal display text is read as that text (what
the cell shows), any other formula is quarantined ("formula cell"), in every input kind."""

import csv
import io
from datetime import date

import polars as pl

from ecom_assets.ingest.parse import parse_drop

TODAY = date(2026, 11, 24)


def csv_text(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_event_categories_read_a_hyperlink_s_display_text_and_quarantine_other_formulas() -> None:
    rows = [["event_time", "event_type", "customer_id", "product_id", "category", "brand", "price"],
            ["2024-01-01T10:00:00Z", "view_item", "U1", "P1", '=HYPERLINK("https://shop.example/c/shoes","Shoes")',
             "acme", "50"],
            # a German-locale sheet separates arguments with `;`; `""` is a quote inside the text
            ["2024-01-01T10:01:00Z", "view_item", "U1", "P2",
             '=hyperlink("https://shop.example/c/b";"Bags ""Premium""")', "acme", "80"],
            ["2024-01-01T10:02:00Z", "view_item", "U1", "P3", "=VLOOKUP(D4,Categories!A:B,2,FALSE)", "acme", "5"],
            ["2024-01-01T10:03:00Z", "view_item", "U1", "P4", "Hats", '=HYPERLINK("https://acme.example")', "9"],
            ["2024-01-01T10:04:00Z", "view_item", "U1", "P5", "Hats", "acme", "9"]]
    parsed = parse_drop(csv_text(rows), "events", "events_x.csv__abc", TODAY)
    assert parsed.clean.sort("line")["category"].to_list() == ["Shoes", 'Bags "Premium"', "Hats"]
    reasons = dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))
    assert reasons == {
        4: "category is a formula cell (a spreadsheet formula, not its value: export the sheet's values): "
           "'=VLOOKUP(D4,Categories!A:B,2,F'",  # the value's first 30 characters
        5: "brand is a formula cell (a spreadsheet formula, not its value: export the sheet's values): "
           "'=HYPERLINK(\"https://acme.examp'"}
    assert any("read as their display text" in note and "category (2)" in note for note in parsed.notes), parsed.notes


def test_order_lines_product_names_and_categories_are_checked_too() -> None:
    rows = [["order_id", "customer_id", "order_time", "product_id", "product_name", "category", "quantity",
             "unit_price"],
            ["1001", "c1", "2024-02-01 10:00", "SKU-1", '=HYPERLINK("https://shop.example/p/1","Trail Shoe")',
             "Shoes", "1", "89.90"],
            # an order of its own: a quarantined line quarantines its whole order (never a smaller purchase)
            ["1003", "c1", "2024-02-01 10:05", "SKU-2", "Sock", "=B2&\" extra\"", "2", "4.50"],
            ["1002", "c2", "2024-02-02 11:00", '=HYPERLINK("https://shop.example/p/3","SKU-3")', "Cap",
             "Hats", "1", "15.00"]]
    parsed = parse_drop(csv_text(rows), "orders", "orders_x.csv__abc", TODAY)
    clean = parsed.clean.sort("line")
    assert clean.select("product_id", "product_name", "category").rows() == [
        ("SKU-1", "Trail Shoe", "Shoes"), ("SKU-3", "Cap", "Hats")]
    assert parsed.quarantine["reason"].to_list() == [
        "category is a formula cell (a spreadsheet formula, not its value: export the sheet's values): "
        "'=B2&\" extra\"'"]


def test_a_sessions_product_viewed_formula_never_becomes_a_category() -> None:
    rows = [["session_id", "customer_id", "session_date", "product_viewed", "browsing_time_sec", "purchase_made",
             "purchase_amount"],
            ["S1", "c1", "2024-03-01", '=HYPERLINK("https://shop.example/c/books","Books")', "60", "1", "12.5"],
            ["S2", "c2", "2024-03-01", "=INDEX(Cats!A:A,7)", "60", "0", ""]]
    parsed = parse_drop(csv_text(rows), "sessions", "sessions_x.csv__abc", TODAY)
    assert parsed.clean["product_viewed"].to_list() == ["Books"]
    assert parsed.quarantine["reason"][0].startswith("product_viewed is a formula cell")
    assert not parsed.clean.select(pl.col(pl.String).str.starts_with("=").any()).row(0).count(True)
