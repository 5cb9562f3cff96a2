"""The parquet IO manager: round trips, partitions, lazy inputs, atomic writes."""


from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ecom_assets.io import PolarsParquetIOManager, atomic_write_bytes, partition_file_name

files = dg.DynamicPartitionsDefinition(name="test_files")


@dg.asset(partitions_def=files)
def per_file(context: dg.AssetExecutionContext) -> pl.DataFrame:
    return pl.DataFrame({"file": [context.partition_key], "n": [len(context.partition_key)]})


@dg.asset(ins={"per_file": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def all_files(per_file: pl.LazyFrame) -> pl.DataFrame:
    assert isinstance(per_file, pl.LazyFrame)
    return per_file.sort("file").collect()


@dg.asset
def as_dict(all_files: pl.DataFrame) -> dict:
    return {"rows": all_files.height}


def test_partitions_concat_lazily_and_dicts_round_trip(tmp_path: Path, instance) -> None:
    io = PolarsParquetIOManager(base_dir=str(tmp_path))
    instance.add_dynamic_partitions("test_files", ["a.csv", "b/c.csv"])
    for key in ["a.csv", "b/c.csv"]:
        assert dg.materialize([per_file], partition_key=key, instance=instance,
                              resources={"io_manager": io}).success
    result = dg.materialize([per_file, all_files, as_dict], selection=[all_files, as_dict],
                            instance=instance, resources={"io_manager": io})
    assert result.success
    assert result.output_for_node("all_files")["file"].to_list() == ["a.csv", "b/c.csv"]
    assert (tmp_path / "per_file" / f"{partition_file_name('b/c.csv')}.parquet").exists()
    assert (tmp_path / "as_dict.json").read_text().count('"rows": 2') == 1


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(target)

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(target, broken)
    assert pl.read_parquet(target)["x"].to_list() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_partition_file_name_is_filesystem_safe() -> None:
    assert partition_file_name("sessions_2024 01.csv__ab12") == "sessions_2024_01.csv__ab12"
    assert "/" not in partition_file_name("a/b")


def test_an_object_store_table_is_read_lazily_by_range(monkeypatch) -> None:
    """A scan of a table in an object store fetches the footer, then only the columns a query uses;
    counting rows reads the footer alone (fsspec's memory file system, reads counted)."""
    import fsspec.implementations.memory as memory
    from upath import UPath

    from ecom_assets.io import parquet_rows, scan_parquet, write_parquet_atomic

    fetched = []
    read = memory.MemoryFile.read

    def counted_read(self, *args, **kwargs):
        out = read(self, *args, **kwargs)
        fetched.append(len(out))
        return out

    monkeypatch.setattr(memory.MemoryFile, "read", counted_read)
    table = UPath("memory://ecom-io-test/warehouse/t.parquet")
    frame = pl.DataFrame({"n": range(500_000), "text": [f"row {i}" for i in range(500_000)]})
    try:
        write_parquet_atomic(frame, table)
        size = table.stat().st_size
        fetched.clear()
        scan = scan_parquet(table)
        assert 0 < sum(fetched) < size / 10  # the footer
        fetched.clear()
        assert parquet_rows(table) == 500_000 and sum(fetched) < size / 10
        fetched.clear()
        assert scan.select(pl.col("n").sum()).collect().item() == frame["n"].sum()
        assert sum(fetched) < size * 0.6  # the `n` column, not the text
        assert scan.collect().equals(frame)
    finally:
        table.fs.rm("/ecom-io-test", recursive=True)
