import polars as pl

from ecom_assets.exports import write_safe_csv


def test_formula_cells_are_neutralised_and_numbers_untouched(tmp_path) -> None:
    frame = pl.DataFrame({
        "name": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "plain", None],
        "drivers": [["=cmd"], ["ok"], [], ["a", "b"], ["x"], ["y"]],
        "amount": [-5.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    })
    path = write_safe_csv(frame, tmp_path / "out.csv")
    back = pl.read_csv(path, infer_schema=False)
    assert back["name"].to_list() == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "plain", None]
    assert back["drivers"][0] == "'=cmd" and back["drivers"][3] == "a; b"
    assert back["amount"][0] == "-5.0"  # a number, not text: left alone


def test_figures_are_rounded_and_counts_are_integers(tmp_path) -> None:
    # a segments-like export: revenue summed in floating point, counts stored as float64 by the features
    frame = pl.DataFrame({
        "customer_id": ["C1", "C2"],
        "revenue": [1234.5678901, 0.1 + 0.2],
        "churn_probability": [0.123456789, None],
        "n_purchases": [3.0, 12.0],
        "days_since_last_purchase": [41.0, None],
        "sessions_per_week": [1.23456, 2.5],  # named like a count but a rate: keeps (4) decimals
        "lift": [1.99999, float("nan")],
        "q_value": [0.000123456, 0.5],  # a probability, not money, despite "value"
        "p_value": [4.123e-140, 0.04567],  # a planted pair's: 4 decimals would print 0
        "first_order_value": [19.999, 5.0],
        "value_at_risk": [12.3456, 0.0],  # the risk list's money at stake
    })
    back = pl.read_csv(write_safe_csv(frame, tmp_path / "out.csv"))
    assert back["revenue"].to_list() == [1234.57, 0.3]
    assert back["churn_probability"].to_list() == [0.1235, None]
    assert back["n_purchases"].dtype == pl.Int64 and back["n_purchases"].to_list() == [3, 12]
    assert back["days_since_last_purchase"].to_list() == [41, None]
    assert back["sessions_per_week"].to_list() == [1.2346, 2.5]
    assert back["q_value"].to_list() == [0.000123, 0.5] and back["p_value"].to_list() == [4.12e-140, 0.0457]
    assert back["first_order_value"].to_list() == [20.0, 5.0]
    assert back["value_at_risk"].to_list() == [12.35, 0.0]
    text = (tmp_path / "out.csv").read_text()
    assert "1234.5678901" not in text and "3.0," not in text
