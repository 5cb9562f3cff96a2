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
