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
