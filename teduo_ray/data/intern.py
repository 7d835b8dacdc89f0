"""State interning: every distinct state gets an integer id once.

Ids are the rank of the state's bytes in sorted order, so they depend only on the set of
states in the data, never on file order or worker count. Heavy stages (labeling, the
empirical MDP) work on these ids; text is rendered only where an LLM reads it.

Writes ``RUN/states/states.parquet`` (state_id, state) and ``RUN/states/transitions.parquet``
(episode_id, step, layout, state_id, action, next_state_id, done).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from teduo_ray.config import RunConfig
from teduo_ray.data.schema import TRANSITIONS
from teduo_ray.rundir import RunDir, StageManifest

STATES = "states"
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
    for name, table in (("states", states), ("transitions", ids)):
        manifest.shards[name] = run.write_shard(table, STATES, f"{name}.parquet")
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
