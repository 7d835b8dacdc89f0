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
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from teduo_ray.errors import DataError

MANIFEST = "_manifest.json"
log = logging.getLogger(__name__)


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
            import os

            self.fs, root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.root = root.rstrip("/") or "/"
        self.fs.create_dir(self.root, recursive=True)

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
        """Write a Parquet file atomically; returns its sha256. Readers that stream a file
        in blocks (states.parquet) read it one row group at a time."""
        data = parquet_bytes(table, row_group_size)
        self.write_bytes(data, *parts)
        return hashlib.sha256(data).hexdigest()

    def read_table(self, *parts: str) -> pa.Table:
        try:
            return pq.read_table(self.path(*parts), filesystem=self.fs)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {self.path(*parts)}: {exc}") from None

    def finished(self, stage: str, producer: str) -> dict[str, Any]:
        """The manifest of a finished stage folder, or one clear error naming the command to run."""
        if not self.exists(stage, MANIFEST):
            raise DataError(f"nothing in {self.path(stage)}: run `teduo {producer}` first")
        raw = self.read_json(stage, MANIFEST)
        if not isinstance(raw, dict) or not raw.get("complete"):
            raise DataError(f"{self.path(stage)} is incomplete: re-run `teduo {producer}` to finish it")
        return raw

    def read_shards(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        """Every shard a stage's manifest lists, concatenated in shard-name order."""
        manifest = self.read_json(stage, MANIFEST)
        tables = [self.read_table(stage, rec["file"]) for _, rec in sorted(manifest["shards"].items())]
        table = pa.concat_tables(tables) if tables else pa.table({})
        return table.select(columns) if columns else table

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
