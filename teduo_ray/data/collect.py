"""`teduo collect`: unlabeled transitions from behaviour policies, in parallel on Ray.

Episodes are numbered 0..N-1 over (training layout, episode) and grouped into fixed shards;
every episode draws its randomness from ``(seed, episode_id)`` only. A shard's bytes
therefore depend on the config alone, never on how many workers ran or in what order, which
is what makes a resumed or re-scaled run byte-identical to an uninterrupted one.

Behaviour policies, drawn per episode from ``data.behaviour``:
- ``bot``: minigrid's BabyAI bot following a random feasible training goal (the paper's
  data), with each action replaced by a uniform random one with probability ``bot_epsilon``;
  the episode ends when the mission succeeds or at the step cap.
- ``random``: uniform random actions until the step cap.
The mission is never written: the dataset has no reward and no goal column.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from teduo_ray.config import RunConfig
from teduo_ray.data.schema import TRANSITIONS, TRANSITIONS_SCHEMA
from teduo_ray.envs import get_adapter
from teduo_ray.rundir import RunDir, StageManifest
from teduo_ray.runtime import node_id

log = logging.getLogger(__name__)

CONFIG_SECTIONS = ("env", "data")
_SEED_STREAM = 0xC011EC7


@dataclass(frozen=True)
class ShardSpec:
    """A fixed block of episodes: the unit of parallel work and of resume.

    Args:
        index: shard number.
        first_episode: id of its first episode.
        num_episodes: episodes in the shard.
    """

    index: int
    first_episode: int
    num_episodes: int

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"


def plan_shards(cfg: RunConfig) -> list[ShardSpec]:
    """The shards of a config: all training-layout episodes in blocks of ``episodes_per_shard``."""
    total = cfg.env.train_layouts * cfg.data.episodes_per_layout
    per = cfg.data.episodes_per_shard
    return [
        ShardSpec(i, start, min(per, total - start)) for i, start in enumerate(range(0, total, per))
    ]


class EpisodeCollector:
    """Runs episodes of the behaviour policies in one live environment.

    Args:
        cfg: the run config.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.adapter = get_adapter(cfg.env, cfg.seed)
        self.world = self.adapter.make_world()
        self.layouts = self.adapter.layout_seeds("train")
        self.train_goals = [e.goal for e in self.adapter.goal_catalogue() if e.split == "train"]
        names = sorted(cfg.data.behaviour)
        weights = np.array([cfg.data.behaviour[n] for n in names], dtype=float)
        self.policies, self.policy_p = names, weights / weights.sum()
        self._feasible: dict[int, list[Any]] = {}

    def _feasible_goals(self, layout: int) -> list[Any]:
        """Training goals the bot can pursue on a layout (computed once per layout)."""
        if layout not in self._feasible:
            self.world.reset(layout, np.random.default_rng(layout))
            self._feasible[layout] = [g for g in self.train_goals if self.world.feasible(g)]
        return self._feasible[layout]

    def episode(self, episode_id: int) -> tuple[dict[str, list[Any]], dict[str, int]]:
        """Run one episode; returns its columns and counters (episodes, bot episodes, successes)."""
        data = self.cfg.data
        layout = self.layouts[episode_id // data.episodes_per_layout]
        rng = np.random.default_rng([self.cfg.seed, _SEED_STREAM, episode_id])
        policy = self.policies[int(rng.choice(len(self.policies), p=self.policy_p))]
        goal = None
        if policy == "bot":
            feasible = self._feasible_goals(layout)
            if feasible:
                goal = feasible[int(rng.integers(len(feasible)))]
            else:
                policy = "random"
        state = self.world.reset(layout, rng, goal)
        cols: dict[str, list[Any]] = {name: [] for name in TRANSITIONS_SCHEMA.names}
        success = False
        for step in range(data.max_episode_steps):
            if policy == "bot":
                try:
                    action = self.world.bot_action()
                except Exception:  # the bot gives up on some layouts: end the episode there
                    break
                if rng.random() < data.bot_epsilon:
                    action = int(rng.integers(len(self.adapter.action_names)))
            else:
                action = int(rng.integers(len(self.adapter.action_names)))
            success = self.world.step(action) and policy == "bot"
            next_state = self.world.state()
            for key, value in (
                ("episode_id", episode_id),
                ("step", step),
                ("layout", layout),
                ("state", state),
                ("action", action),
                ("next_state", next_state),
                ("done", False),
            ):
                cols[key].append(value)
            state = next_state
            if success:
                break
        if cols["done"]:
            cols["done"][-1] = True
        stats = {"episodes": 1, "bot_episodes": int(policy == "bot"), "bot_successes": int(success)}
        return cols, stats

    def shard_table(self, shard: ShardSpec) -> tuple[pa.Table, dict[str, int]]:
        """All episodes of a shard as one table, plus summed counters."""
        cols: dict[str, list[Any]] = {name: [] for name in TRANSITIONS_SCHEMA.names}
        stats = {"episodes": 0, "bot_episodes": 0, "bot_successes": 0}
        for episode_id in range(shard.first_episode, shard.first_episode + shard.num_episodes):
            ep_cols, ep_stats = self.episode(episode_id)
            for key in cols:
                cols[key].extend(ep_cols[key])
            for key in stats:
                stats[key] += ep_stats[key]
        return pa.table(cols, schema=TRANSITIONS_SCHEMA), stats


def write_shard(cfg: RunConfig, shard: ShardSpec, collector: EpisodeCollector | None = None) -> dict[str, Any]:
    """Collect one shard and write it atomically to the run directory; returns its record."""
    collector = collector or EpisodeCollector(cfg)
    table, stats = collector.shard_table(shard)
    written = RunDir(cfg.run_dir).write_shard(table, TRANSITIONS, shard.file)
    return {"name": shard.name, **written, **stats, "node": node_id()}


@dataclass(frozen=True)
class CollectResult:
    """What a `collect` call did.

    Args:
        path: the transitions folder.
        shards: shards in the dataset.
        shards_written: shards this call wrote (0 = everything was already there).
        rows: transitions in the dataset.
        seconds: wall time of this call.
    """

    path: str
    shards: int
    shards_written: int
    rows: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"collect: {self.rows} transitions in {self.shards} shards "
            f"({self.shards_written} written now) at {self.path} [{self.seconds:.1f}s]"
        )


def write_goals(cfg: RunConfig, run: RunDir) -> None:
    """Write the run's goal catalogue (goals.parquet); deterministic, so rewriting is harmless."""
    entries = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    table = pa.table(
        {
            "goal_id": pa.array([e.goal_id for e in entries], pa.int32()),
            "key": [e.goal.key for e in entries],
            "type": [e.goal.type for e in entries],
            "split": [e.split for e in entries],
            "text": [e.text for e in entries],
            "canonical_text": [e.goal.text for e in entries],
        }
    )
    run.write_table(table, "goals.parquet")


def collect(cfg: RunConfig, progress: bool = True) -> CollectResult:
    """Collect the transitions of ``cfg`` on Ray, skipping shards a previous run finished.

    Args:
        cfg: the run config.
        progress: show a progress bar over shards.

    Returns:
        A summary; the data is in ``<run_dir>/transitions/shard-*.parquet``.
    """
    import ray

    from teduo_ray.console import progress_bar
    from teduo_ray.runtime import as_completed, init_ray

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    shards = plan_shards(cfg)
    manifest = StageManifest.load_or_create(
        run, TRANSITIONS, cfg.section_hash(*CONFIG_SECTIONS), len(shards)
    )
    run.remove_temporaries(TRANSITIONS)
    write_goals(cfg, run)
    manifest.verified(run)  # a damaged finished shard is dropped here and recomputed below
    todo = [s for s in shards if s.name not in manifest.shards]
    if todo:
        init_ray(cfg.ray)
        remote = ray.remote(num_cpus=cfg.ray.collect_cpus_per_task, max_retries=3)(write_shard)
        cfg_ref = ray.put(cfg)
        pending = [remote.remote(cfg_ref, s) for s in todo]
        with progress_bar("collect", len(shards), "shard", len(shards) - len(todo), not progress) as bar:
            for record in as_completed(pending):
                manifest.add(run, record)
                bar.update(1)
    manifest.complete = len(manifest.shards) == len(shards)
    manifest.save(run)
    seconds = time.perf_counter() - start
    log.info("collect: %d shards (%d written), %d transitions in %.1fs",
             len(shards), len(todo), manifest.rows, seconds)
    return CollectResult(run.path(TRANSITIONS), len(shards), len(todo), manifest.rows, seconds)
