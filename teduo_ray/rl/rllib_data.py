"""The labeled data in RLlib's offline format, goal-conditioned (for the `baselines` stage).

One RLlib "episode" is a hindsight segment of one original episode for one training goal:
it starts at a state where the goal is not achieved and runs until the labels (TEDUO's
step-1 rewards, ``rewards/labels/``) say the next state achieves the goal (reward 1,
``terminateds`` = True) or the original episode ends (``truncateds`` = True). Transitions
out of an achieved state are dropped: the goal is already done there. Rows have RLlib's
columns (eps_id, t, obs, actions, rewards, new_obs, terminateds, truncateds), plus goal_id,
state_id and next_state_id for inspection (RLlib is told to read only its own columns).

The observation is what the reward model reads (labeling/features.py): the egocentric
one-hot view of the goal's ABSTRACT state (the abstraction marks the goal object / location
by role and turns everything else into colourless obstacles) plus the carried object and a
goal-type one-hot, flattened to one float vector. It names no colour and no layout, so the
same network can act for unseen goals and layouts (compositional by construction); the Q
table, keyed by raw state ids, cannot.

Two datasets are written under ``baselines/data/``: ``all/`` (every segment, for the
value-based method) and ``successful/`` (segments that reach the goal: the hindsight-
relabelled demonstrations goal-conditioned BC imitates). Each is capped at
``rl.baseline_max_rows`` by sampling whole segments with the run's seed, and its rows are
written in one seeded random order: RLlib reads them in file order, and rows grouped goal by
goal would make every minibatch one goal's (the same mistake as unshuffled SFT rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.data.intern import STATES
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.errors import DataError
from teduo_ray.labeling import features
from teduo_ray.labeling.abstraction import Selection, abstract_batch, parse_selection
from teduo_ray.layout import LABELS
from teduo_ray.rundir import RunDir, StageManifest

DATA = "baselines/data"
DATASETS = ("all", "successful")
ROWS_PER_SHARD = 4096
EXPORT_FIELDS = ("baseline_max_rows", "baseline_view_radius")


@dataclass(frozen=True)
class ObsSpec:
    """Shape of the flat observation vector.

    Args:
        width: grid width of the states.
        height: grid height.
        radius: egocentric view radius.
    """

    width: int
    height: int
    radius: int

    @property
    def size(self) -> int:
        k = 2 * self.radius + 1
        return features.PLANES * k * k + features.VECTOR

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def obs_spec(cfg: RunConfig, width: int, height: int) -> ObsSpec:
    radius = cfg.rl.baseline_view_radius or features.view_radius(width, height)
    return ObsSpec(width, height, radius)


def featurize(batch: StateBatch, goal_type: str, spec: ObsSpec) -> np.ndarray:
    """(N, spec.size) float32 observations of ABSTRACT states of one goal type."""
    planes, vector = features.encode(batch, goal_type, spec.radius)
    return np.concatenate([planes.reshape(len(batch), -1), vector], axis=1)


def featurize_queries(blobs: Sequence[bytes], selections: Sequence[Selection], goal_types: Sequence[str],
                      spec: ObsSpec) -> np.ndarray:
    """Observations of raw states, each abstracted with its own goal's selection.

    Queries are grouped by (selection, goal type), so a batch of live episodes costs one
    vectorised abstraction + encoding per distinct goal.
    """
    out = np.zeros((len(blobs), spec.size), dtype=np.float32)
    groups: dict[tuple[Selection, str], list[int]] = {}
    for i, key in enumerate(zip(selections, goal_types)):
        groups.setdefault(key, []).append(i)
    for (selection, goal_type), rows in groups.items():
        batch = abstract_batch(StateBatch.from_blobs([blobs[i] for i in rows]), selection)
        out[rows] = featurize(batch, goal_type, spec)
    return out


def export_hash(cfg: RunConfig) -> str:
    """The export depends on the labels (their chained hash) and the export settings."""
    from teduo_ray.labeling.spec import step_hashes

    rl = dataclasses.asdict(cfg.rl)
    return stable_hash([step_hashes(cfg)[LABELS], cfg.seed, {f: rl[f] for f in EXPORT_FIELDS}, "rows shuffled"])


@dataclass(frozen=True)
class Segments:
    """Hindsight segments of one goal, as index arrays into the transitions table.

    Args:
        rows: transition row of each kept step (segment order, then step order).
        segment: segment number of each kept step.
        reward: 1.0 where the next state achieves the goal.
        success: the step's segment reaches the goal.
    """

    rows: np.ndarray
    segment: np.ndarray
    reward: np.ndarray
    success: np.ndarray


def goal_segments(episode: np.ndarray, state: np.ndarray, next_state: np.ndarray,
                  achieved: np.ndarray) -> Segments:
    """Cut transitions (sorted by episode, step) into hindsight segments for one goal.

    A transition out of an achieved state is dropped; a segment ends at the first
    transition into an achieved state (reward 1) or at the end of its episode.
    """
    keep = ~achieved[state]
    reward = achieved[next_state] & keep
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        empty = np.zeros(0, np.int64)
        return Segments(empty, empty, np.zeros(0, np.float32), np.zeros(0, bool))
    # a new segment starts at the first kept row of an episode or after a dropped row / a success
    starts = np.ones(rows.size, dtype=bool)
    starts[1:] = (episode[rows[1:]] != episode[rows[:-1]]) | (rows[1:] != rows[:-1] + 1) | reward[rows[:-1]]
    segment = np.cumsum(starts) - 1
    succeeded = np.zeros(segment[-1] + 1, dtype=bool)
    succeeded[segment[reward[rows]]] = True
    return Segments(rows, segment, reward[rows].astype(np.float32), succeeded[segment])


@dataclass(frozen=True)
class ExportResult:
    """What the export wrote (rows per dataset, observation size)."""

    rows: dict[str, int]
    obs: ObsSpec
    written: bool


def _input_tables(run: RunDir) -> tuple[pa.Table, pa.Table, dict[int, Selection]]:
    from teduo_ray.schemas import ABSTRACTIONS_TABLE, ID_TRANSITIONS_TABLE, LABELS_TABLE

    labels = run.read(LABELS_TABLE, ["goal_id", "state_id", "label"])
    transitions = run.read(ID_TRANSITIONS_TABLE).sort_by([("episode_id", "ascending"), ("step", "ascending")])
    abstractions = run.read(ABSTRACTIONS_TABLE)
    selections = {}
    for gid, text in zip(abstractions["goal_id"].to_pylist(), abstractions["selection"].to_pylist()):
        parsed = parse_selection(text)
        selections[int(gid)] = parsed if parsed is not None else Selection()
    return transitions, labels, selections


@dataclass(frozen=True)
class _Data:
    """The transitions as id arrays and each goal's achieved states (sparse, by goal)."""

    episode: np.ndarray
    state: np.ndarray
    next_state: np.ndarray
    action: np.ndarray
    num_states: int
    achieved_ids: dict[int, np.ndarray]

    def segments(self, gid: int) -> Segments:
        achieved = np.zeros(self.num_states, dtype=bool)
        achieved[self.achieved_ids.get(gid, np.zeros(0, np.int64))] = True
        return goal_segments(self.episode, self.state, self.next_state, achieved)


def export(cfg: RunConfig) -> ExportResult:
    """Write ``baselines/data/{all,successful}/part-*.parquet`` (skipped when done).

    The driver holds the transitions' id arrays, each goal's achieved state ids and one
    (goal, segment) entry per segment, never a goal's rows for every goal: segments are
    chosen from their sizes, and the rows of the chosen ones are recomputed per goal.
    """
    from teduo_ray.data.intern import StateReader
    from teduo_ray.envs import get_adapter

    run = RunDir(cfg.run_dir)
    manifest = StageManifest.load_or_create(run, DATA, export_hash(cfg), 0, replace_stale=True)
    manifest.verified(run)  # a damaged part: the export is written again
    if manifest.complete:
        meta = run.read_json(DATA, "meta.json")
        return ExportResult(meta["rows"], ObsSpec(**meta["obs"]), written=False)
    run.remove_temporaries(DATA)
    transitions, labels, selections = _input_tables(run)
    reader = StateReader(run)
    if reader.num_states == 0:
        raise DataError(f"{run.path(STATES)} holds no states: re-run `teduo collect` and `teduo label`")
    first = reader.first()
    spec = obs_spec(cfg, int(first[0]), int(first[1]))
    goals = {e.goal_id: e.goal for e in get_adapter(cfg.env, cfg.seed).goal_catalogue() if e.split == "train"}

    positive = labels.filter(labels["label"])
    lab_goal = positive["goal_id"].to_numpy()
    lab_state = positive["state_id"].to_numpy().astype(np.int64)
    by_goal = np.argsort(lab_goal, kind="stable")
    cuts = np.r_[0, np.flatnonzero(np.diff(lab_goal[by_goal])) + 1, len(by_goal)]
    achieved_ids = {int(lab_goal[by_goal[a]]): lab_state[by_goal[a:b]] for a, b in zip(cuts[:-1], cuts[1:]) if b > a}
    data = _Data(transitions["episode_id"].to_numpy(), transitions["state_id"].to_numpy().astype(np.int64),
                 transitions["next_state_id"].to_numpy().astype(np.int64),
                 transitions["action"].to_numpy().astype(np.int64), reader.num_states, achieved_ids)

    # every (goal, segment): its size and whether it succeeds, goal by goal
    gids = sorted(goals)
    sizes: list[np.ndarray] = []
    success: list[np.ndarray] = []
    for gid in gids:
        if gid not in selections:
            raise DataError(f"goal {gid} has no abstraction in {run.path('abstractions')}: re-run `teduo label`")
        seg = data.segments(gid)
        n = np.bincount(seg.segment) if seg.segment.size else np.zeros(0, np.int64)
        ok = np.zeros(len(n), dtype=bool)
        ok[seg.segment[seg.success]] = True
        sizes.append(n)
        success.append(ok)
    # pick whole segments at random until the row cap
    rng = np.random.default_rng([cfg.seed, 4242])
    rows_written: dict[str, int] = {}
    for name in DATASETS:
        ks = [np.flatnonzero(ok) if name == "successful" else np.arange(len(ok)) for ok in success]
        pool_goal = np.concatenate([np.full(len(k), i, np.int64) for i, k in enumerate(ks)] or [np.zeros(0, np.int64)])
        pool_k = np.concatenate(ks or [np.zeros(0, np.int64)])
        pool_n = np.concatenate([n[k] for n, k in zip(sizes, ks)] or [np.zeros(0, np.int64)])
        chosen: dict[int, list[int]] = {}
        total = 0
        cap = cfg.rl.baseline_max_rows
        for i in rng.permutation(len(pool_k)).tolist():
            n = int(pool_n[i])
            if total + n > cap:
                continue
            chosen.setdefault(gids[int(pool_goal[i])], []).append(int(pool_k[i]))
            total += n
        rows_written[name] = _write_dataset(run, manifest, name, data, chosen, goals, selections, reader, spec, rng)
    run.write_json({"rows": rows_written, "obs": spec.to_dict()}, DATA, "meta.json")
    manifest.complete = True
    manifest.save(run)
    return ExportResult(rows_written, spec, written=True)


def _write_dataset(run: RunDir, manifest: StageManifest, name: str, data: _Data, chosen: dict[int, list[int]],
                   goals: dict, selections: dict[int, Selection], reader: Any, spec: ObsSpec,
                   rng: np.random.Generator) -> int:
    """Write one dataset, rows in a random order from ``rng``, in shards of ROWS_PER_SHARD rows.

    The chosen rows' states (at most twice the row cap) are read once, not the state table;
    the rows themselves (about the row cap) are held once to be shuffled."""
    picked: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for gid in sorted(chosen):
        seg = data.segments(gid)
        mask = np.isin(seg.segment, sorted(chosen[gid]))
        picked[gid] = (seg.rows[mask], seg.segment[mask], seg.reward[mask])
    all_rows = np.concatenate([p[0] for p in picked.values()] or [np.zeros(0, np.int64)])
    needed = np.unique(np.concatenate([data.state[all_rows], data.next_state[all_rows]]))
    states = StateBatch.from_blobs(reader.take(needed)) if len(needed) else None
    tables: list[pa.Table] = []
    for gid, (rows, segment, reward) in picked.items():
        state, next_state = data.state[rows], data.next_state[rows]
        used = np.unique(np.concatenate([state, next_state]))
        at = np.searchsorted(needed, used)
        abstract = abstract_batch(StateBatch(states.grids[at], states.header[at]), selections[gid])
        obs_of = featurize(abstract, features.goal_type_tag(goals[gid]), spec)
        obs = obs_of[np.searchsorted(used, state)]
        new_obs = obs_of[np.searchsorted(used, next_state)]
        last = np.ones(rows.size, dtype=bool)
        last[:-1] = segment[1:] != segment[:-1]
        first = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
        t = np.arange(rows.size) - np.repeat(first, np.diff(np.r_[first, rows.size]))
        terminated = reward > 0
        table = pa.table({
            "eps_id": pa.array([f"g{gid}-e{int(data.episode[r])}-s{int(k)}" for r, k in zip(rows, segment)]),
            "t": pa.array(t),
            "obs": _matrix(obs),
            "actions": pa.array(data.action[rows]),
            "rewards": pa.array(reward.astype(np.float32)),
            "new_obs": _matrix(new_obs),
            "terminateds": pa.array(terminated),
            "truncateds": pa.array(last & ~terminated),
            "goal_id": pa.array(np.full(rows.size, gid, np.int32)),
            "state_id": pa.array(state.astype(np.int32)),
            "next_state_id": pa.array(next_state.astype(np.int32)),
        })
        tables.append(table)
    if not tables:
        return 0
    rows_table = pa.concat_tables(tables)
    rows_table = rows_table.take(pa.array(rng.permutation(rows_table.num_rows)))  # one copy, shuffled
    for part, start in enumerate(range(0, rows_table.num_rows, ROWS_PER_SHARD)):
        file = f"{name}/part-{part:05d}.parquet"
        manifest.add(run, {"name": file, **run.write_shard(rows_table.slice(start, ROWS_PER_SHARD), DATA, file)})
    return rows_table.num_rows


def _matrix(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.astype(np.float32).ravel()), values.shape[1])


__all__ = ["export", "featurize", "featurize_queries", "goal_segments", "obs_spec", "ObsSpec"]
