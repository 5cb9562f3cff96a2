"""Hostile input: every case gets a clear fate and a readable reason; nothing crashes."""

from datetime import date

import pytest
import polars as pl

from ecom_assets.ingest import parse as parse_module
from ecom_assets.ingest.parse import FileRejected, parse_drop
from ecom_assets_tests.ingest_helpers import (CUSTOMERS_HEADER, SESSIONS_HEADER, drop, ingest_and_clean, quarantine,
                                              rejected_reasons)

TODAY = date(2026, 11, 24)
GOOD = "S1,C1,2024-01-02,Books,120,1,19.99"


def parse(text: str | bytes, kind: str = "sessions"):
    raw = text.encode() if isinstance(text, str) else text
    return parse_drop(raw, kind, "f.csv__abc", today=TODAY)


def reasons(parsed) -> dict[int, str]:
    return dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))


def assert_accounted(parsed) -> None:
    a = parsed.accounting
    assert a["rows_in"] == a["clean"] + a["quarantined"] + a["duplicate"]


def test_bom_and_crlf_are_read_transparently() -> None:
    parsed = parse(("\ufeff" + SESSIONS_HEADER + "\r\n" + GOOD + "\r\n").encode("utf-8"))
    assert parsed.clean.height == 1 and parsed.clean["purchase_amount"][0] == 19.99
    assert "byte-order mark" in " ".join(parsed.notes)


def test_semicolon_delimiter_is_detected() -> None:
    parsed = parse(SESSIONS_HEADER.replace(",", ";") + "\n" + GOOD.replace(",", ";") + "\n")
    assert parsed.clean.height == 1 and "delimiter ';'" in parsed.notes


def test_single_byte_export_is_decoded_as_windows_1252_and_noted() -> None:
    """Excel's "CSV" on Windows writes cp1252: accented letters and smart quotes (0x92) are read as
    text, never as C1 control characters (latin-1 would split `Kid’s Toys` from itself)."""
    parsed = parse((CUSTOMERS_HEADER + "\nC1,30,Female,Curaçao,2024-01-01\nC2,31,Female,Kid’s Toys,\n").encode("cp1252"),
                   "customers")
    assert parsed.clean["location"].to_list() == ["Curaçao", "Kid’s Toys"]
    assert any("decoded as Windows-1252" in n for n in parsed.notes) and parsed.encoding == "cp1252"


def test_reordered_and_extra_columns() -> None:
    parsed = parse("purchase_amount,session_id,extra,customer_id,session_date,product_viewed,browsing_time_sec,"
                   "purchase_made\n19.99,S1,zzz,C1,2024-01-02,Books,120,1\n")
    row = parsed.clean.row(0, named=True)
    assert row["session_id"] == "S1" and row["purchase_amount"] == 19.99
    assert any("extra column(s) ignored: extra" in n for n in parsed.notes)


def test_missing_required_column_rejects_the_file_naming_it() -> None:
    with pytest.raises(FileRejected, match="purchase_made"):
        parse(SESSIONS_HEADER.replace(",purchase_made", "") + "\nS1,C1,2024-01-02,Books,120,19.99\n")


def test_header_only_is_an_empty_drop_and_zero_bytes_is_rejected() -> None:
    parsed = parse(SESSIONS_HEADER + "\n")
    assert parsed.rows_in == 0 and "header only: 0 rows" in parsed.notes
    with pytest.raises(FileRejected, match="empty file"):
        parse(b"")


def test_truncated_last_line_is_quarantined() -> None:
    parsed = parse(SESSIONS_HEADER + "\n" + GOOD + "\nS2,C1,2024-0")
    assert parsed.clean.height == 1
    assert reasons(parsed)[3].startswith("truncated last line")
    assert_accounted(parsed)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("S1,C1,2024-01-02,Books,120,1,-5", "negative purchase_amount: '-5'"),
        ("S1,C1,2024-01-02,Books,120,2,5", "purchase_made must be 0 or 1 (or true/false, yes/no): '2'"),
        ("S1,C1,16/06/2021,Books,120,0,0", "session_date is not an ISO 8601 date or date-time"),
        ("S1,C1,2099-01-01,Books,120,0,0", "session_date is in the future (after"),
        ("S1,C1,2024-01-02,Books,120,0,5", "purchase_amount > 0 with purchase_made=0"),
        ("S1,C1,2024-01-02,Books,-1,0,0", "negative browsing_time_sec: '-1'"),
        ("S1,,2024-01-02,Books,120,0,0", "empty customer_id"),
        ("S1,C1,2024-01-02,Books,abc,0,0", "browsing_time_sec is not a number"),
    ],
)
def test_bad_rows_are_quarantined_with_the_rule(row: str, reason: str) -> None:
    parsed = parse(SESSIONS_HEADER + "\n" + GOOD.replace("S1", "S0") + "\n" + row + "\n")
    assert parsed.clean.height == 1
    assert reason in reasons(parsed)[3]
    assert_accounted(parsed)


def test_formula_cells_are_never_categories_and_other_formula_like_text_is_data() -> None:
    """A `=` cell is a spreadsheet formula: without literal display text its value is not in the export
    (quarantined, see test_ingest_formula_cells.py); `+`, `-`, `@` starting a text are data (neutralised in
    CSV exports)."""
    parsed = parse(SESSIONS_HEADER + "\nS1,C1,2024-01-02,=HYPERLINK(\"x\"),120,0,0\nS2,C1,2024-01-02,+1 Books,120,0,0"
                   "\nS3,C1,2024-01-02,@home,120,0,0\n")
    assert parsed.clean["product_viewed"].to_list() == ["+1 Books", "@home"]
    assert reasons(parsed)[2].startswith("product_viewed is a formula cell")


def test_empty_amount_without_purchase_is_zero_and_free_orders_are_kept() -> None:
    parsed = parse(SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,0,\nS2,C1,2024-01-02,Books,,1,0\n")
    assert parsed.clean["purchase_amount"].to_list() == [0.0, 0.0]
    assert parsed.clean["browsing_time_sec"].null_count() == 1


def test_same_file_twice_and_same_id_with_new_content_across_files(data_dir, instance, resources) -> None:
    drop(data_dir, "customers.csv", CUSTOMERS_HEADER + "\nC1,30,Female,Ghana,2023-01-01\n")
    drop(data_dir, "sessions_a.csv", SESSIONS_HEADER + "\n" + GOOD + "\nS2,C1,2024-01-03,Home,60,0,0\n")
    first = ingest_and_clean(data_dir, instance, resources)
    assert first["sessions"].height == 2
    # the same bytes again: rejected with a reason, never ingested twice
    drop(data_dir, "sessions_a.csv", SESSIONS_HEADER + "\n" + GOOD + "\nS2,C1,2024-01-03,Home,60,0,0\n")
    # a later file repeats S2 unchanged and corrects S1
    drop(data_dir, "sessions_b.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,24.99\nS2,C1,2024-01-03,Home,60,0,0\n")
    second = ingest_and_clean(data_dir, instance, resources)
    sessions = second["sessions"]
    assert sessions.height == 2
    assert sessions.filter(sessions["session_id"] == "S1")["purchase_amount"][0] == 24.99
    assert "already ingested" in rejected_reasons(data_dir)["sessions_a.csv"]
    meta = second["result"].asset_materializations_for_node("clean_sessions")[0].metadata
    assert meta["rows_from_drops"].value == 4
    assert meta["duplicates_across_files"].value == 1 and meta["superseded_by_later_drop"].value == 1


def test_unreadable_file_is_rejected_without_crashing(data_dir, instance, resources) -> None:
    drop(data_dir, "sessions_bad.csv", "no,header,here\n1,2,3\n")
    drop(data_dir, "notes.txt", "not an export")
    drop(data_dir, "sessions_empty.csv", b"")
    out = ingest_and_clean(data_dir, instance, resources)
    assert out["sessions"].height == 0
    rejected = rejected_reasons(data_dir)
    assert set(rejected) == {"sessions_bad.csv", "notes.txt", "sessions_empty.csv"}
    assert "missing required column(s) session_id" in rejected["sessions_bad.csv"]
    assert quarantine(data_dir).height == 0


def test_batched_judging_gives_the_same_fates_as_one_batch() -> None:
    """Duplicates and bad rows spread over several batches are found exactly as in one pass."""
    rows = [GOOD, "S2,C1,2024-01-02,Books,-1,0,0", GOOD, "S3,C2,2024-01-05,Home,60,0,0", "S2,C1,2024-01-02,Books,-1,0,0",
            "S3,C2,2024-01-05,Home,60,0,0", "S3,C2,2024-01-05,Home,61,0,0", "S4,,2024-01-02,Books,1,0,0", GOOD]
    raw = (SESSIONS_HEADER + "\n" + "\n".join(rows) + "\n").encode()
    kind = parse_module.KINDS["sessions"]
    table = parse_module.read_text_table(raw, kind, "sessions.csv__x").table
    whole = parse_module.split_rows(table, kind, date(2026, 1, 1))
    batched = parse_module.split_rows(table, kind, date(2026, 1, 1), batch_rows=2)
    assert whole[0].equals(batched[0]) and whole[1].equals(batched[1]) and whole[2] == batched[2] == 2
    # S3 comes in two versions (60 and 61 s): all three of its lines are quarantined, none is chosen
    assert whole[0]["line"].to_list() == [2] and whole[1].height == 6
    assert whole[1].filter(pl.col("session_id") == "S3")["reason"].to_list() == [
        "session_id repeated in this file with different content (every version quarantined): 'S3'"] * 3


@pytest.mark.parametrize(
    ("prefix", "tail", "note"),
    [
        (b"\xef\xbb\xbf", b"", "byte-order mark"),  # BOM: polars skips it, the note still says so
        (b"", "S9,C9,2024-01-02,Caf\u00e9,120,0,0\n".encode("cp1252"), "Windows-1252"),  # bad UTF-8 deep in the file
        (b"", b"S9,C9,2024-0", None),  # no newline at the end: the last line is truncated
    ],
)
def test_a_large_file_read_from_its_path_gets_the_same_fates_as_its_bytes(tmp_path, prefix, tail, note) -> None:
    """Files above HEAD_BYTES are parsed by polars from the path (no Python copy or decode):
    BOM, latin-1 fallback, truncated last line, quarantine and duplicates as on the bytes route."""
    rows = [f"S{i},C{i % 97},2024-01-{1 + i % 28:02d},Books,{i % 300},{i % 2},{(i % 2) * 9.5}" for i in range(3000)]
    rows[10] = "S10,C1,2024-01-02,Books,-1,0,0"  # quarantined
    rows[20] = rows[19]  # an in-file duplicate
    raw = prefix + (SESSIONS_HEADER + "\n" + "\n".join(rows) + "\n").encode() + tail
    assert len(raw) > parse_module.HEAD_BYTES
    path = tmp_path / "sessions.csv"
    path.write_bytes(raw)
    from_path = parse_drop(path, "sessions", "f.csv__abc", today=TODAY)
    from_bytes = parse(raw)
    assert from_path.clean.equals(from_bytes.clean) and from_path.quarantine.equals(from_bytes.quarantine)
    assert from_path.notes == from_bytes.notes and from_path.duplicates == from_bytes.duplicates == 1
    assert reasons(from_path)[12] == "negative browsing_time_sec: '-1'"
    if note:
        assert any(note in n for n in from_path.notes)
    else:
        assert reasons(from_path)[3002].startswith("truncated last line")
    assert_accounted(from_path)


def test_a_mostly_quarantined_drop_fails_the_share_check_and_hints_an_order_line_export() -> None:
    """UCI Online Retail dropped as `sessions_*.csv`: one row per line item, so InvoiceNo (read as
    session_id) repeats with other content on nearly every row, and 96 % of the file is quarantined."""
    from ecom_assets.ingest.assets import quarantine_share
    lines = [SESSIONS_HEADER]
    for invoice in range(25):
        lines += [f"53{invoice:04d},178{invoice % 7},2010-12-01,8512{item}A,,1,{item + 2}.55" for item in range(4)]
    lines += [f"S{n},C{n},2024-01-02,Books,120,0,0" for n in range(4)]  # four ordinary sessions
    parsed = parse("\n".join(lines) + "\n")
    assert parsed.quarantine.height == 100 and parsed.clean.height == 4
    passed, text, figures = quarantine_share(parsed.quarantine, parsed.rows_in, "sessions", limit=0.2)
    assert not passed and figures["quarantined_share"] == round(100 / 104, 4)
    assert text.startswith("100 of 104 rows (96%) quarantined, above 20%")
    # 25 different invoices are one rule, counted once with all their rows
    assert "session_id repeated in this file with different content (every version quarantined) (100 rows)" in text
    assert "kind: orders" in text
    # the same file declared as orders gets no order hint; a clean-enough file passes
    assert "kind: orders" not in quarantine_share(parsed.quarantine, parsed.rows_in, "orders", 0.2)[1]
    assert quarantine_share(parsed.quarantine.head(10), 104, "sessions", 0.2)[0]


def test_a_missing_value_marker_is_kept_as_written_in_the_quarantine_and_named_in_the_reason() -> None:
    """pandas' `to_csv` writes a missing amount as `NaN`, databases `NULL`: both are read as missing,
    and a row quarantined because of it keeps the text as written, not a null."""
    parsed = parse(SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,NaN\nS2, NULL ,2024-01-02,Books,120,0,0\n"
                   + GOOD.replace("S1", "S3") + "\n")
    rows = {r["line"]: r for r in parsed.quarantine.to_dicts()}
    assert rows[2]["purchase_amount"] == "NaN" and rows[3]["customer_id"] == " NULL "
    assert rows[2]["reason"] == ("purchase_made=1 without purchase_amount; "
                                 "purchase_amount is a missing-value marker, read as missing: 'NaN'")
    assert rows[3]["reason"].startswith("empty customer_id; customer_id is a missing-value marker, read as missing: ' NULL '")
    assert parsed.clean["session_id"].to_list() == ["S3"]
    assert_accounted(parsed)


@pytest.mark.parametrize("kind, text", [
    # a CRM export typed by hand, and the shop's own sessions / orders / events keyed by the same address
    ("customers", "customer_id,age,gender,location,signup_date\nAnn.Lee@Shop.COM,34,F,Berlin,2024-01-05\n"
                  "bo@shop.com,41,M,Paris,2024-02-01\n"),
    ("sessions", f"{SESSIONS_HEADER}\nS1,Ann.Lee@Shop.COM,2024-01-02,Books,120,1,19.99\n"
                 "S2,ann.lee@shop.com,2024-01-09,Books,80,0,\nS3,C-77,2024-01-09,Books,80,0,\n"),
    ("orders", "order_id,customer_id,order_time,product_id,quantity,unit_price\n"
               "#1001,Ann.Lee@Shop.COM,2024-01-02 10:00,SKU-1,1,9.50\n#1002,ann.lee@shop.com,2024-01-09 11:00,SKU-2,2,4.00\n"
               "#1003,C-77,2024-01-09 12:00,SKU-2,1,4.00\n"),
    ("events", "event_time,event_type,customer_id,product_id\n2024-01-02 10:00:00,view,Ann.Lee@Shop.COM,SKU-1\n"
               "2024-01-02 10:01:00,purchase,ann.lee@shop.com,SKU-1\n2024-01-02 10:03:00,view,C-77,SKU-1\n"),
])
def test_an_email_customer_id_in_any_case_is_one_customer(kind: str, text: str) -> None:
    """`Ann.Lee@Shop.COM` and `ann.lee@shop.com` are one person in every input kind (they counted as two
    customers, so a repeat buyer looked like two one-time buyers); ids that are not e-mail addresses keep
    their case, and the file's notes say how many addresses were compared lower-cased."""
    parsed = parse(text, kind)
    assert parsed.quarantine.is_empty()
    ids = parsed.clean["customer_id"].unique().sort().to_list()
    assert "ann.lee@shop.com" in ids and "Ann.Lee@Shop.COM" not in ids
    assert [i for i in ids if "@" not in i] in ([], ["C-77"])
    assert any(note.startswith("customer_id: 1 e-mail address(es) with capitals (e.g. 'Ann.Lee@Shop.COM')")
               for note in parsed.notes)
