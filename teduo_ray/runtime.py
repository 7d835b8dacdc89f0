"""Connecting to Ray: an existing cluster when one is named, a local one otherwise."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from teduo_ray.config import RayConfig

if TYPE_CHECKING:
    from teduo_ray.rundir import RunDir, StageManifest

log = logging.getLogger(__name__)


def init_ray(cfg: RayConfig) -> None:
    """Start or join Ray once per process.

    An address in the config (or the RAY_ADDRESS environment variable, which
    ``ray job submit`` sets) joins that cluster; otherwise a local Ray starts with the
    configured CPUs and object store. Ray already running in this process is reused.
    """
    import ray

    from teduo_ray.console import is_verbose

    if ray.is_initialized():
        return
    # Workers' output (RLlib / DeepSpeed / torch warnings, Ray Train's controller) stays in
    # Ray's session logs unless --verbose; errors still reach the driver as exceptions.
    to_driver = is_verbose()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        from teduo_ray.console import say

        say(f"joining Ray cluster at {address}")  # where the job runs: an operator's line, not a library log
        ray.init(address=address, log_to_driver=to_driver)
        return
    store = cfg.object_store_memory_mb * 1024 * 1024 if cfg.object_store_memory_mb else None
    ray.init(
        address="local",  # a new local Ray, even if `ray start` left a cluster on this machine
        num_cpus=cfg.num_cpus,
        object_store_memory=store,
        include_dashboard=cfg.dashboard,  # Ray Train's cleaner needs its State API; docs/architecture.md
        log_to_driver=to_driver,
    )


def node_id() -> str:
    """The Ray node this code runs on ("local" outside Ray): shard records carry it, so a
    run directory shows where each piece of work ran."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def as_completed(refs: list[Any]) -> Iterator[Any]:
    """Results of Ray ObjectRefs in the order they finish."""
    import ray

    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def pool_size(requested: int, cpus_per_actor: float, reserve_cpus: float = 0.5) -> int:
    """Actors a pool may hold without starving the tasks that feed it.

    An actor pool that takes every CPU leaves none for the read/map tasks upstream and the
    job hangs without an error; keep ``reserve_cpus`` free and at least one actor.
    """
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    fits = int((total - reserve_cpus) // cpus_per_actor) if cpus_per_actor > 0 else requested
    size = max(1, min(requested, fits))
    if size < requested:
        log.warning("actor pool capped at %d of %d actors (%.1f CPUs in the cluster)", size, requested, total)
    return size


def actor_pool_map(cls: type, args: tuple[Any, ...], method: str, items: list[tuple[Any, ...]], num_actors: int,
                   num_cpus: float, num_gpus: float = 0.0) -> Iterator[Any]:
    """Results of ``actor.<method>(*item)`` for every item, in the order they finish, on a pool
    of restartable actors of ``cls(*args)`` spread over the cluster's nodes (SPREAD: one
    node, no change); a dead actor is restarted and its call retried. The actors are killed
    when the iteration ends.
    """
    import ray
    from ray.util import ActorPool

    if not items:
        return
    actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus or None, max_restarts=3, max_task_retries=3,
                           scheduling_strategy="SPREAD")(cls)
    size = min(pool_size(num_actors, num_cpus, reserve_cpus=0.0), len(items))
    actors = [actor_cls.remote(*args) for _ in range(size)]
    try:
        calls: Iterable[Any] = ActorPool(actors).map_unordered(lambda a, item: getattr(a, method).remote(*item), items)
        yield from calls
    finally:
        for actor in actors:
            ray.kill(actor)


def resumable_goal_shards(run: RunDir, folder: str, config_hash: str, shards: dict[str, list[Any]], cfg_ray: RayConfig,
                          cls: type, args: tuple[Any, ...], method: str, num_actors: int, num_cpus: float,
                          num_gpus: float = 0.0, bar: str = "", progress: bool = True) -> tuple[StageManifest, int]:
    """Run ``actor.<method>(name, goals)`` for every shard of goals not yet in ``folder``'s
    manifest, on :func:`actor_pool_map`'s pool, recording each returned shard record as it
    finishes; return the saved :class:`~teduo_ray.rundir.StageManifest` and how many shards
    were computed now.

    The one resumable loop of the per-goal actor stages (labeling's all-pairs step, learn): a
    config change discards stale shards, finished shards are kept across a killed run, and
    only the shards still missing are sent. Each record must carry ``goal_ids``.

    Args:
        run: the run directory.
        folder: the stage's folder under the run directory.
        config_hash: what the shards depend on.
        shards: shard name -> the goals it holds (whatever ``method`` takes).
        cfg_ray: how to reach Ray (started only when there is work).
        bar: the progress bar's label; ``progress=False`` hides it.
    """
    from teduo_ray.console import progress_bar
    from teduo_ray.rundir import StageManifest

    manifest = StageManifest.load_or_create(run, folder, config_hash, len(shards), replace_stale=True)
    manifest.verified(run)
    run.remove_temporaries(folder)
    todo = [(name, goals) for name, goals in shards.items() if name not in manifest.shards]
    if todo:
        init_ray(cfg_ray)
        total = sum(len(goals) for goals in shards.values())
        done = total - sum(len(goals) for _, goals in todo)
        with progress_bar(bar or folder, total, "goal", done, not progress) as pbar:
            for record in actor_pool_map(cls, args, method, todo, num_actors, num_cpus, num_gpus):
                manifest.add(run, record)
                pbar.update(len(record["goal_ids"]))
    manifest.complete = len(manifest.shards) == len(shards)
    manifest.save(run)
    return manifest, len(todo)
