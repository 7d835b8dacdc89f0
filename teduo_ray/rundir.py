"""The run directory: every stage reads and writes here, atomically.

A run directory is a local path or any URI pyarrow.fs understands (s3://, gs://, ...), so the
same job runs on a laptop and on a cluster with shared storage. Writes go to a hidden
temporary name first and are moved into place, so a killed stage never leaves a half-written
file that the next stage would read. Each stage keeps a manifest (``<stage>/_manifest.json``)
with the hash of the config it was produced from and the shards it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from teduo_ray.errors import DataError, SchemaError

MANIFEST = "_manifest.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSpec:
    """An upstream table a stage reads: where it lives, who writes it, what readers rely on.

    Checking the columns before reading turns a table from another version (or a hand-edited
    one) into one error that names the file and the command that regenerates it, instead of
    a KeyError deep inside a stage.

    Args:
        folder: the folder in the run directory.
        producer: the `teduo` command that writes it (named in errors).
        schema: the columns readers need, with their types (other columns are allowed;
            nullability is not checked).
        file: one file in ``folder``; None = every shard the folder's manifest lists.
    """

    folder: str
    producer: str
    schema: pa.Schema
    file: str | None = None


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    """Equal types, ignoring the names and nullability of list items."""
    if pa.types.is_list(found) and pa.types.is_list(expected):
        return _same_type(found.value_type, expected.value_type)
    return found.equals(expected)


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def check_schema(path: str, found: pa.Schema, spec: TableSpec) -> None:
    """Raise a SchemaError naming the file, the expected and found columns and the fix."""
    bad = [f for f in spec.schema if f.name not in found.names or not _same_type(found.field(f.name).type, f.type)]
    if bad:
        raise SchemaError(
            f"{path} has the wrong columns: expected {_columns(spec.schema)}; found {_columns(found)} "
            f"(mismatched: {', '.join(f.name for f in bad)}); regenerate it: delete {posixpath.dirname(path)} "
            f"and run `teduo {spec.producer}`"
        )


def parquet_bytes(table: pa.Table, row_group_size: int = 1 << 20) -> bytes:
    """Serialise a table to Parquet with fixed options, so equal tables give equal bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=row_group_size)
    return sink.getvalue().to_pybytes()


class RunDir:
    """A run directory on any pyarrow filesystem.

    Args:
        uri: local path or URI of the run directory (created if missing).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        try:
            self.fs, root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, ValueError):
            self.fs, root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.root = root.rstrip("/") or "/"
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.File:
            raise DataError(f"run_dir {uri} is a file, not a directory: choose another run_dir=")
        try:
            self.fs.create_dir(self.root, recursive=True)
        except OSError as exc:
            raise DataError(f"cannot create run_dir {uri} ({exc.strerror or exc}): choose another run_dir=") from None
        if isinstance(self.fs, pafs.LocalFileSystem) and not os.access(self.root, os.W_OK | os.X_OK):
            raise DataError(f"run_dir {uri} is not writable: fix its permissions or choose another run_dir=")

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.read()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write atomically: a hidden temporary file, then a move into place."""
        target = self.path(*parts)
        folder, name = posixpath.split(target)
        self.fs.create_dir(folder, recursive=True)
        tmp = posixpath.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, target)

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True).encode(), *parts)

    def read_json(self, *parts: str) -> Any:
        try:
            return json.loads(self.read_bytes(*parts))
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.path(*parts)} is corrupt ({exc}); delete it and re-run") from None

    def write_table(self, table: pa.Table, *parts: str, row_group_size: int = 1 << 20) -> str:
        """Write a Parquet file atomically; returns its sha256."""
        return self.write_shard(table, *parts, row_group_size=row_group_size)["sha256"]

    def write_shard(self, table: pa.Table, *parts: str, row_group_size: int = 1 << 20) -> dict[str, Any]:
        """Write a Parquet file atomically; returns the manifest record fields that
        :meth:`verify_shard` checks on resume (file, rows, bytes, sha256). Readers that
        stream a file in blocks (states.parquet) read it one row group at a time."""
        data = parquet_bytes(table, row_group_size)
        self.write_bytes(data, *parts)
        return {"file": posixpath.join(*parts[1:]) if len(parts) > 1 else parts[0], "rows": table.num_rows,
                "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def read_table(self, *parts: str, spec: TableSpec | None = None) -> pa.Table:
        """Read one Parquet file; with ``spec``, check its columns first (from the footer)."""
        return self._parquet(self.path(*parts), spec, schema_only=False)

    def _parquet(self, path: str, spec: TableSpec | None, schema_only: bool) -> pa.Table:
        """Check a file's columns against ``spec`` (footer only), then read it unless ``schema_only``."""
        try:
            if spec is not None:
                check_schema(path, pq.read_schema(path, filesystem=self.fs), spec)
            return spec.schema.empty_table() if schema_only and spec else pq.read_table(path, filesystem=self.fs)
        except (OSError, pa.ArrowException) as exc:
            fix = f"; delete it and run `teduo {spec.producer}` again" if spec else ""
            raise DataError(f"cannot read {path}: {exc}{fix}") from None

    def check(self, spec: TableSpec) -> dict[str, Any]:
        """Check an upstream table without reading its rows: its stage finished and every file
        has the columns readers need (Parquet footers only). For stages whose workers read
        the files themselves: the driver fails first, with one clear error.

        Returns:
            The folder's manifest.
        """
        manifest = self.finished(spec.folder, spec.producer)
        files = [spec.file] if spec.file else [rec["file"] for _, rec in sorted(manifest["shards"].items())]
        for file in files:
            self._parquet(self.path(spec.folder, file), spec, schema_only=True)
        return manifest

    def read(self, spec: TableSpec, columns: list[str] | None = None) -> pa.Table:
        """An upstream table, checked: its stage finished, and it has the columns readers need.

        Args:
            spec: the table (folder, producer, expected columns, one file or the shards).
            columns: keep only these columns.

        Returns:
            The table (shards concatenated in shard-name order).
        """
        self.finished(spec.folder, spec.producer)
        if spec.file is not None:
            table = self.read_table(spec.folder, spec.file, spec=spec)
            return table.select(columns) if columns else table
        return self.read_shards(spec.folder, columns, spec=spec)

    def finished(self, stage: str, producer: str) -> dict[str, Any]:
        """The manifest of a finished stage folder, or one clear error naming the command to run."""
        if not self.exists(stage, MANIFEST):
            raise DataError(f"nothing in {self.path(stage)}: run `teduo {producer}` first")
        raw = self.read_json(stage, MANIFEST)
        if not isinstance(raw, dict) or not raw.get("complete"):
            raise DataError(f"{self.path(stage)} is incomplete: re-run `teduo {producer}` to finish it")
        return raw

    def read_shards(self, stage: str, columns: list[str] | None = None, spec: TableSpec | None = None) -> pa.Table:
        """Every shard a stage's manifest lists, concatenated in shard-name order.

        With ``spec``, each shard's columns are checked against it before it is read.
        """
        manifest = self.read_json(stage, MANIFEST)
        tables = [self.read_table(stage, rec["file"], spec=spec) for _, rec in sorted(manifest["shards"].items())]
        if not tables and spec is not None:
            return spec.schema.empty_table().select(columns) if columns else spec.schema.empty_table()
        table = pa.concat_tables(tables) if tables else pa.table({})
        return table.select(columns) if columns else table

    def shard_dataset(self, folder: str) -> Any:
        """A ``pyarrow.dataset`` over the shards a folder's manifest lists, for reading a few
        columns or rows with a filter (row groups the filter rules out are skipped)."""
        import pyarrow.dataset as pads

        files = [self.path(folder, rec["file"]) for _, rec in sorted(self.read_json(folder, MANIFEST)["shards"].items())]
        return pads.dataset(files, filesystem=self.fs, format="parquet")

    def verify_shard(self, folder: str, record: dict[str, Any]) -> str | None:
        """Why a finished shard cannot be trusted, or None when it can.

        Checks that the file exists with the size the manifest recorded (when it did), that a
        Parquet file has a readable footer with the recorded row count, and, on a local
        filesystem, its sha256 (about 1 ms per MB; on object stores that would download every
        shard, so there the footer check stands alone).
        """
        path = self.path(folder, record["file"])
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return "missing"
        if not record["file"].endswith(".parquet"):
            return None
        if "bytes" in record and info.size != int(record["bytes"]):
            return f"{info.size} bytes on disk, {record['bytes']} written"
        try:
            with self.fs.open_input_file(path) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
        except (OSError, pa.ArrowException):
            return "no readable Parquet footer (truncated?)"
        if "rows" in record and rows != int(record["rows"]):
            return f"{rows} rows on disk, {record['rows']} written"
        if record.get("sha256") and isinstance(self.fs, pafs.LocalFileSystem):
            if hashlib.sha256(self.read_bytes(folder, record["file"])).hexdigest() != record["sha256"]:
                return "sha256 differs from the one written"
        return None

    def remove_temporaries(self, *parts: str) -> int:
        """Delete temporary files a killed writer left behind in a folder."""
        folder = self.path(*parts)
        if not self.exists(*parts):
            return 0
        removed = 0
        for info in self.fs.get_file_info(pafs.FileSelector(folder)):
            if info.base_name.startswith(".") and ".tmp-" in info.base_name:
                self.fs.delete_file(info.path)
                removed += 1
        return removed


@dataclass
class StageManifest:
    """What a stage has finished: its config hash and the shards written.

    Args:
        stage: the stage's folder name in the run directory.
        config_hash: hash of the config sections the stage's output depends on.
        num_shards: shards the stage will write in all.
        shards: shard name -> {"file", "rows", "sha256"} for each finished shard.
        complete: every shard is written.
    """

    stage: str
    config_hash: str
    num_shards: int
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False

    @classmethod
    def load_or_create(
        cls, run: RunDir, stage: str, config_hash: str, num_shards: int, replace_stale: bool = False
    ) -> StageManifest:
        """Load the stage's manifest, or start one.

        A manifest from another config is an error (the folder may hold work a user wants to
        keep), unless ``replace_stale``: then the folder is emptied and the stage starts over
        (for outputs cheaply derived from files that are kept).
        """
        if not run.exists(stage, MANIFEST):
            return cls(stage, config_hash, num_shards)
        raw = run.read_json(stage, MANIFEST)
        if not isinstance(raw, dict) or "num_shards" not in raw:
            raise DataError(f"{run.path(stage, MANIFEST)} is not a stage manifest; delete {run.path(stage)} and re-run")
        if raw.get("config_hash") != config_hash and replace_stale:
            log.warning("%s is from another config: recomputing it", run.path(stage))
            run.fs.delete_dir_contents(run.path(stage))
            return cls(stage, config_hash, num_shards)
        if raw.get("config_hash") != config_hash:
            raise DataError(
                f"{run.path(stage)} was written by a different config "
                f"(hash {raw.get('config_hash')} != {config_hash}); use another run_dir "
                f"or delete {run.path(stage)}"
            )
        return cls(
            stage=stage,
            config_hash=config_hash,
            num_shards=int(raw["num_shards"]),
            shards=dict(raw.get("shards", {})),
            complete=bool(raw.get("complete", False)),
        )

    def verified(self, run: RunDir) -> list[str]:
        """Drop finished shards that are damaged on disk, so resume recomputes them.

        Every stage that skips finished shards calls this first; each dropped shard gets a
        warning that names it, and the manifest is saved without it.

        Returns:
            The names of the dropped shards.
        """
        dropped = []
        for name, record in sorted(self.shards.items()):
            problem = run.verify_shard(self.stage, record)
            if problem is not None:
                log.warning("%s is damaged (%s): recomputing it", run.path(self.stage, record["file"]), problem)
                dropped.append(name)
        if dropped:
            for name in dropped:
                del self.shards[name]
            self.complete = False
            self.save(run)
        return dropped

    def add(self, run: RunDir, record: dict[str, Any]) -> None:
        """Record a finished shard (``record["name"]``) and save the manifest at once."""
        self.shards[record["name"]] = record
        self.save(run)

    def save(self, run: RunDir) -> None:
        run.write_json(
            {
                "stage": self.stage,
                "config_hash": self.config_hash,
                "num_shards": self.num_shards,
                "shards": self.shards,
                "complete": self.complete,
                "rows": self.rows,
            },
            self.stage,
            MANIFEST,
        )

    @property
    def rows(self) -> int:
        return sum(int(s["rows"]) for s in self.shards.values())


UPLOADED = "_uploaded"  # written last into a folder copied to a run directory


def is_remote(run: RunDir) -> bool:
    """True when the run directory is not on a local (or mounted) filesystem."""
    import pyarrow.fs as pafs

    return not isinstance(run.fs, pafs.LocalFileSystem)


def run_uri(run: RunDir, *parts: str) -> str:
    """The URI of a run-directory entry: a local path, or ``scheme://root/parts``."""
    if not is_remote(run):
        return run.path(*parts)
    scheme = run.uri.split("://", 1)[0]
    return f"{scheme}://{run.path(*parts)}"


def upload_dir(local: str, run: RunDir, *parts: str) -> None:
    """Copy a local directory to a run-directory folder, replacing what was there; ``UPLOADED``
    is written last (object stores have no atomic folder rename: a killed upload lacks it)."""
    import pyarrow.fs as pafs

    if run.exists(*parts):
        run.fs.delete_dir(run.path(*parts))
    run.fs.create_dir(run.path(*parts), recursive=True)
    pafs.copy_files(local, run.path(*parts), source_filesystem=pafs.LocalFileSystem(), destination_filesystem=run.fs)
    run.write_bytes(b"", *parts, UPLOADED)
