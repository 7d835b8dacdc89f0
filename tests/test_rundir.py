"""RunDir's checks: upstream schemas, shard verification on resume, unusable run directories."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from teduo_ray.errors import DataError, SchemaError
from teduo_ray.rundir import RunDir, StageManifest, TableSpec

SPEC = TableSpec("part", "make", pa.schema([("id", pa.int32()), ("xs", pa.list_(pa.int8()))]))


def table(n: int, id_type: pa.DataType = pa.int32()) -> pa.Table:
    return pa.table({"id": pa.array(range(n), id_type), "xs": pa.array([[1, 2]] * n, pa.list_(pa.int8())),
                     "extra": ["x"] * n})


def finished(run: RunDir, *tables: pa.Table) -> StageManifest:
    manifest = StageManifest("part", "h", len(tables))
    for i, t in enumerate(tables):
        manifest.shards[f"s{i}"] = {"name": f"s{i}", **run.write_shard(t, "part", f"s{i}.parquet")}
    manifest.complete = True
    manifest.save(run)
    return manifest


def test_read_checks_columns_and_allows_extra_ones(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    finished(run, table(3), table(2))
    assert run.read(SPEC, ["id"]).column("id").to_pylist() == [0, 1, 2, 0, 1]
    assert len(run.check(SPEC)["shards"]) == 2


def test_wrong_type_names_file_expected_found_and_producer(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    finished(run, table(3), table(2, pa.int64()))
    with pytest.raises(SchemaError) as err:
        run.read(SPEC)
    text = str(err.value)
    assert "s1.parquet" in text and "expected id: int32" in text and "found id: int64" in text
    assert "mismatched: id" in text and "`teduo make`" in text
    with pytest.raises(SchemaError):
        run.check(SPEC)


def test_unfinished_upstream_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run `teduo make` first"):
        RunDir(str(tmp_path)).read(SPEC)


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda p: p.unlink(), "missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:-30]), "bytes on disk"),
    (lambda p: p.write_bytes(p.read_bytes()[:-4] + b"XXXX"), "footer"),
])
def test_verified_drops_damaged_shards_with_a_warning(tmp_path: Path, damage, problem: str, caplog) -> None:  # type: ignore[no-untyped-def]
    run = RunDir(str(tmp_path))
    finished(run, table(3), table(4))
    damage(tmp_path / "part" / "s1.parquet")
    manifest = StageManifest.load_or_create(run, "part", "h", 2)
    assert manifest.verified(run) == ["s1"]
    assert set(manifest.shards) == {"s0"} and not manifest.complete
    assert "s1.parquet is damaged" in caplog.text and problem in caplog.text
    assert set(StageManifest.load_or_create(run, "part", "h", 2).shards) == {"s0"}  # saved


def test_sha256_catches_same_size_changes(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    manifest = finished(run, table(3))
    record = manifest.shards["s0"]
    assert run.verify_shard("part", record) is None
    assert run.verify_shard("part", {**record, "sha256": "0" * 64}) == "sha256 differs from the one written"


def test_run_dir_that_is_a_file_or_below_one(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is a file, not a directory"):
        RunDir(str(tmp_path / "f"))
    with pytest.raises(DataError, match="cannot create run_dir"):
        RunDir(str(tmp_path / "f" / "run"))
