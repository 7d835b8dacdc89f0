"""State interning: every distinct state gets an integer id once.

Ids are the rank of the state's bytes in sorted order, so they depend only on the set of
states in the data, never on file order or worker count. Heavy stages (labeling, the
empirical MDP) work on these ids; text is rendered only where an LLM reads it.

Writes ``RUN/states/states.parquet`` (state_id, state) and ``RUN/states/transitions.parquet``
(episode_id, step, layout, state_id, action, next_state_id, done).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from teduo_ray.config import RunConfig
from teduo_ray.data.schema import TRANSITIONS
from teduo_ray.rundir import RunDir, StageManifest

STATES = "states"
# states.parquet is written in row groups of this many states, so workers can stream it in
# blocks (StateReader) instead of each holding every state: memory per worker is bounded by
# the block size, whatever the number of states or goals.
STATE_ROW_GROUP = 8192
STATES_SCHEMA = pa.schema([pa.field("state_id", pa.int32(), False), pa.field("state", pa.binary(), False)])
ID_TRANSITIONS_SCHEMA = pa.schema(
    [
        pa.field("episode_id", pa.int64(), False),
        pa.field("step", pa.int32(), False),
        pa.field("layout", pa.int64(), False),
        pa.field("state_id", pa.int32(), False),
        pa.field("action", pa.int8(), False),
        pa.field("next_state_id", pa.int32(), False),
        pa.field("done", pa.bool_(), False),
    ]
)


@dataclass(frozen=True)
class InternResult:
    """Sizes of the interned dataset.

    Args:
        states: distinct states.
        transitions: transitions.
    """

    states: int
    transitions: int


def read_transitions(cfg: RunConfig) -> pa.Table:
    """All collected transitions, sorted by (episode_id, step); refuses an unfinished dataset."""
    run = RunDir(cfg.run_dir)
    from teduo_ray.schemas import TRANSITIONS_TABLE

    run.finished(TRANSITIONS, "collect")
    StageManifest.load_or_create(run, TRANSITIONS, cfg.section_hash("env", "data"), 0)  # same config?
    return run.read(TRANSITIONS_TABLE)


def intern_table(transitions: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(states, id_transitions) tables for a transitions table."""
    both = pa.concat_arrays(
        [transitions["state"].combine_chunks(), transitions["next_state"].combine_chunks()]
    )
    unique = pc.unique(both)
    unique = unique.take(pc.sort_indices(unique))
    states = pa.table(
        {"state_id": pa.array(range(len(unique)), pa.int32()), "state": unique}, schema=STATES_SCHEMA
    )
    ids = pa.table(
        {
            "episode_id": transitions["episode_id"],
            "step": transitions["step"],
            "layout": transitions["layout"],
            "state_id": pc.index_in(transitions["state"], value_set=unique),
            "action": transitions["action"],
            "next_state_id": pc.index_in(transitions["next_state"], value_set=unique),
            "done": transitions["done"],
        },
        schema=ID_TRANSITIONS_SCHEMA,
    )
    return states, ids


def intern_states(cfg: RunConfig) -> InternResult:
    """Intern the run's transitions (skipped when a previous run already did)."""
    run = RunDir(cfg.run_dir)
    manifest = StageManifest.load_or_create(run, STATES, cfg.section_hash("env", "data"), 2)
    manifest.verified(run)
    if manifest.complete:
        return InternResult(int(manifest.shards["states"]["rows"]), int(manifest.shards["transitions"]["rows"]))
    states, ids = intern_table(read_transitions(cfg))
    for name, table, group in (("states", states, STATE_ROW_GROUP), ("transitions", ids, 1 << 20)):
        manifest.shards[name] = run.write_shard(table, STATES, f"{name}.parquet", row_group_size=group)
    manifest.complete = True
    manifest.save(run)
    return InternResult(states.num_rows, ids.num_rows)


def load_states(cfg: RunConfig) -> pa.Table:
    """The interned states table (state_id order)."""
    from teduo_ray.schemas import STATES_TABLE

    return RunDir(cfg.run_dir).read_table(STATES, "states.parquet", spec=STATES_TABLE)


def load_id_transitions(cfg: RunConfig) -> pa.Table:
    """The transitions with state ids."""
    from teduo_ray.schemas import ID_TRANSITIONS_TABLE

    return RunDir(cfg.run_dir).read_table(STATES, "transitions.parquet", spec=ID_TRANSITIONS_TABLE)


class StateReader:
    """Reads ``states/states.parquet`` a row group at a time.

    State ids are row numbers, so a block of rows is a contiguous id range and ``take`` of a
    few ids only decodes the row groups that hold them.

    Args:
        run: the run directory (any pyarrow filesystem).
    """

    def __init__(self, run: RunDir) -> None:
        from teduo_ray.errors import DataError

        path = run.path(STATES, "states.parquet")
        try:
            self._file = pq.ParquetFile(run.fs.open_input_file(path))
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {path}: {exc}; re-run `teduo label`") from None
        meta = self._file.metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self.offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self.num_states = int(self.offsets[-1])

    def _group(self, i: int) -> list[bytes]:
        return self._file.read_row_group(i, columns=["state"])["state"].to_pylist()

    def blocks(self, max_states: int) -> Iterator[tuple[int, list[bytes]]]:
        """(first state id, state bytes) of consecutive blocks of about ``max_states``
        states (whole row groups, at least one per block)."""
        start, blobs = 0, []
        for i in range(len(self.offsets) - 1):
            blobs += self._group(i)
            if len(blobs) >= max_states:
                yield start, blobs
                start, blobs = int(self.offsets[i + 1]), []
        if blobs:
            yield start, blobs

    def take(self, ids: np.ndarray) -> list[bytes]:
        """State bytes of ``ids`` (any order, repeats allowed), reading only their row groups."""
        ids = np.asarray(ids, dtype=np.int64)
        out: list[bytes] = [b""] * len(ids)
        groups = np.searchsorted(self.offsets, ids, side="right") - 1
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            blobs = self._group(int(g))
            for r in rows:
                out[r] = blobs[ids[r] - self.offsets[g]]
        return out

    def first(self) -> bytes:
        """One state (for its grid size); the file holds at least one."""
        return self._group(0)[0]
