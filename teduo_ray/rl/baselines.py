"""`teduo baselines`: offline deep-RL baselines on TEDUO's step-1 labels, with RLlib.

The reviewers' request: learners other than the Q table, trained on the same hindsight
labels. Both read the goal-conditioned Parquet export (rllib_data.py) with RLlib's offline
API (``.offline_data(input_read_method="read_parquet")``) and train for a fixed budget:

- ``bc``: goal-conditioned behaviour cloning (RLlib ``BC``) on the hindsight segments that
  reach the goal (``rl.baseline_bc_data="successful"``, i.e. filtered BC as in the paper's
  "step 1 + GCBC" row), or on every transition (``"all"``);
- ``cql``: discrete CQL (discrete_cql.py: RLlib's DQN module/learner + the CQL(H) penalty;
  RLlib's own CQL is continuous-only) on every segment, reward 1 on entering an achieved
  state, which ends the segment.

Each algorithm's trained RLModule is saved under ``baselines/<algo>/module/`` with a
manifest (``baselines/<algo>/_manifest.json``) written last, plus the per-iteration losses
in ``metrics.json``; a re-run skips finished algorithms. :func:`load_policy` turns a saved
module into an evaluation :class:`~teduo_ray.evaluation.policy.Policy`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.errors import ConfigError, DataError
from teduo_ray.labeling import features
from teduo_ray.rl.rllib_data import (
    DATA,
    ExportResult,
    ObsSpec,
    export,
    export_hash,
    featurize_queries,
)
from teduo_ray.rundir import MANIFEST, RunDir, StageManifest

log = logging.getLogger(__name__)

BASELINES = "baselines"
ALGOS = ("bc", "cql")
TRAIN_FIELDS = ("gamma", "baseline_bc_data", "baseline_iterations", "baseline_updates_per_iteration",
                "baseline_batch_size", "baseline_lr", "baseline_hiddens", "baseline_cql_weight",
                "baseline_target_tau")
RLLIB_COLUMNS = ["eps_id", "t", "obs", "actions", "rewards", "new_obs", "terminateds", "truncateds"]


def algo_hash(cfg: RunConfig, algo: str) -> str:
    """A baseline depends on the exported data and the training settings."""
    rl = dataclasses.asdict(cfg.rl)
    return stable_hash([export_hash(cfg), algo, {f: rl[f] for f in TRAIN_FIELDS}])


def _dataset(cfg: RunConfig, algo: str) -> str:
    return "successful" if algo == "bc" and cfg.rl.baseline_bc_data == "successful" else "all"


def _uri(run: RunDir, *parts: str) -> str:
    """What Ray Data should read: a local path, or the run dir's URI plus parts."""
    if "://" in run.uri:
        return posixpath.join(run.uri.rstrip("/"), *parts)
    return run.path(*parts)


def build_algo_config(cfg: RunConfig, algo: str, data_path: str, obs: ObsSpec) -> Any:
    """The RLlib AlgorithmConfig of one baseline (new API stack, one local learner)."""
    import gymnasium as gym
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from teduo_ray.envs.babyai.constants import NUM_ACTIONS

    rl = cfg.rl
    if algo == "bc":
        from ray.rllib.algorithms.bc import BCConfig

        config = BCConfig().training(lr=rl.baseline_lr, train_batch_size_per_learner=rl.baseline_batch_size)
    elif algo == "cql":
        from teduo_ray.rl.discrete_cql import DiscreteCQLConfig

        config = DiscreteCQLConfig().training(
            lr=rl.baseline_lr, gamma=rl.gamma, min_q_weight=rl.baseline_cql_weight, tau=rl.baseline_target_tau,
            train_batch_size_per_learner=rl.baseline_batch_size,
        )
    else:  # pragma: no cover - the config's Literal prevents this
        raise ConfigError(f"rl.baselines: unknown baseline {algo!r}; use {', '.join(ALGOS)}")
    return (
        config.api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .environment(
            observation_space=gym.spaces.Box(0.0, 1.0, (obs.size,), np.float32),
            action_space=gym.spaces.Discrete(NUM_ACTIONS),
        )
        .env_runners(num_env_runners=0)
        .learners(num_learners=0)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(rl.baseline_hiddens)))
        .offline_data(
            input_=[data_path],
            input_read_method="read_parquet",
            input_read_method_kwargs={"columns": RLLIB_COLUMNS},
            dataset_num_iters_per_learner=rl.baseline_updates_per_iteration,
            # the preprocessing actor must not take a whole CPU: 2-CPU nodes deadlock
            map_batches_kwargs={"concurrency": 1, "num_cpus": rl.baseline_data_cpus},
            iter_batches_kwargs={"prefetch_batches": 1},
        )
        .reporting(min_time_s_per_iteration=0, min_sample_timesteps_per_iteration=0)
        .debugging(seed=cfg.seed)
    )


@contextlib.contextmanager
def _data_in_file_order() -> Iterator[None]:
    """Ray Data keeps the export's (shuffled) row order through RLlib's offline pipeline.

    Without it blocks reach the learner in completion order, which varies run to run: BC
    retrained on the same export with the same seed had other losses from the first
    iteration on (with it: identical losses and weights). RLlib's datasets copy the driver's
    DataContext when they are built and run, hence the scope around both.
    """
    from ray.data import DataContext

    options = DataContext.get_current().execution_options
    before = options.preserve_order
    options.preserve_order = True
    try:
        yield
    finally:
        options.preserve_order = before


def _loss(result: dict[str, Any]) -> float:
    from ray.rllib.core import DEFAULT_MODULE_ID
    from ray.rllib.utils.metrics import LEARNER_RESULTS

    value = result.get(LEARNER_RESULTS, {}).get(DEFAULT_MODULE_ID, {}).get("policy_loss", float("nan"))
    return float(value)


@dataclass(frozen=True)
class BaselineRun:
    """One trained baseline.

    Args:
        algo: "bc" or "cql".
        rows: exported rows it trained on.
        losses: policy loss after each iteration.
        seconds: training wall time (0 when skipped).
        trained: trained now (False = a previous run had finished it).
    """

    algo: str
    rows: int
    losses: list[float]
    seconds: float
    trained: bool


@dataclass(frozen=True)
class BaselinesResult:
    """What `baselines` produced."""

    path: str
    export: ExportResult | None
    runs: list[BaselineRun]
    seconds: float

    def __str__(self) -> str:
        if self.export is None:
            return "baselines: none configured (rl.baselines is empty)"
        lines = [f"baselines: exported rows {self.export.rows} (obs size {self.export.obs.size}) "
                 f"at {self.path} [{self.seconds:.1f}s]"]
        for r in self.runs:
            status = f"trained in {r.seconds:.1f}s" if r.trained else "already trained"
            loss = f"loss {r.losses[0]:.4f} -> {r.losses[-1]:.4f}" if r.losses else "no loss"
            lines.append(f"  {r.algo:<4} {r.rows} rows, {len(r.losses)} iterations, {loss} ({status})")
        return "\n".join(lines)


def train_one(cfg: RunConfig, run: RunDir, algo: str, data: ExportResult, bar: Any = None) -> BaselineRun:
    """Train one baseline (skipped when its manifest is complete) and save its RLModule.

    ``bar`` (a tqdm bar, optional) advances by one per training iteration.
    """
    folder = f"{BASELINES}/{algo}"
    manifest = StageManifest.load_or_create(run, folder, algo_hash(cfg, algo), 1, replace_stale=True)
    dataset = _dataset(cfg, algo)
    manifest.verified(run)  # the saved module is still there?
    if manifest.complete:
        metrics = run.read_json(folder, "metrics.json")
        return BaselineRun(algo, data.rows[dataset], metrics["losses"], 0.0, trained=False)
    if data.rows[dataset] == 0:
        raise DataError(f"no {dataset} transitions to train {algo} on ({run.path(DATA, dataset)} is empty): "
                        "the labels mark no goal as reached; check `teduo label`'s report")
    from teduo_ray.runtime import init_ray

    init_ray(cfg.ray)
    start = time.perf_counter()
    with _data_in_file_order():
        algorithm = build_algo_config(cfg, algo, _uri(run, DATA, dataset), data.obs).build_algo()
        try:
            losses = []
            for _ in range(cfg.rl.baseline_iterations):
                losses.append(_loss(algorithm.train()))
                if bar is not None:
                    bar.update(1)
            with tempfile.TemporaryDirectory() as tmp:
                _save_module(algorithm, os.path.join(tmp, "module"))
                _upload(run, tmp, folder)
        finally:
            algorithm.stop()
            del algorithm
            gc.collect()  # drop RLlib's data iterator while Ray is still up
    seconds = time.perf_counter() - start
    run.write_json({"losses": losses, "seconds": seconds, "rows": data.rows[dataset], "dataset": dataset,
                    "obs": data.obs.to_dict()}, folder, "metrics.json")
    manifest.shards["module"] = {"file": "module", "rows": data.rows[dataset], "sha256": ""}
    manifest.complete = True
    manifest.save(run)
    return BaselineRun(algo, data.rows[dataset], losses, seconds, trained=True)


def _save_module(algorithm: Any, path: str) -> None:
    """Save the trained RLModule (the learner's copy: offline runs have no env runner)."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    algorithm.learner_group.foreach_learner(lambda learner: learner.module[DEFAULT_MODULE_ID].save_to_path(path))


def _upload(run: RunDir, local_root: str, folder: str) -> None:
    """Copy a local directory tree into the run directory, file by file, atomically."""
    for base, _, files in os.walk(local_root):
        for name in files:
            rel = os.path.relpath(os.path.join(base, name), local_root)
            with open(os.path.join(base, name), "rb") as f:
                run.write_bytes(f.read(), folder, *rel.split(os.sep))


def train_baselines(cfg: RunConfig, progress: bool = True) -> BaselinesResult:
    """Export the labeled data and train every configured baseline (finished ones are kept).

    Args:
        cfg: the run config (``rl.baselines`` and ``rl.baseline_*``).
        progress: show a bar of training iterations over all baselines.
    """
    from teduo_ray.console import progress_bar

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    if not cfg.rl.baselines:
        return BaselinesResult(run.path(BASELINES), None, [], 0.0)
    data = export(cfg)
    runs = []
    iterations = cfg.rl.baseline_iterations
    with progress_bar("baselines", len(cfg.rl.baselines) * iterations, "iter", disable=not progress) as bar:
        for algo in cfg.rl.baselines:
            result = train_one(cfg, run, algo, data, bar)
            if not result.trained:
                bar.update(iterations)
            log.info("baseline %s: %s", algo, result)
            runs.append(result)
    return BaselinesResult(run.path(BASELINES), data, runs, time.perf_counter() - start)


# ----------------------------------------------------------------------------- evaluation


class RLModulePolicy:
    """A trained baseline as a batched evaluation policy (torch, CPU, inference only).

    Each query's raw state is abstracted with its goal's selection and featurized exactly as
    in training; one forward pass scores the whole batch; the action is the argmax of the
    logits (BC) or Q-values (CQL). The goal type comes from parsing the goal's wording
    (``paraphrase.parse_goal``), falling back to the catalogue key when it does not parse.

    Args:
        name: the baseline's name ("bc", "cql").
        module: the restored RLModule.
        obs: the observation layout it was trained with.
    """

    def __init__(self, name: str, module: Any, obs: ObsSpec) -> None:
        self.name = name
        self.module = module
        self.obs = obs

    def act(self, queries: Sequence[Any], rng: np.random.Generator) -> np.ndarray:
        import torch
        from ray.rllib.core.columns import Columns

        from teduo_ray.envs.babyai.paraphrase import parse_goal
        from teduo_ray.labeling.abstraction import Selection, parse_selection

        if not queries:
            return np.zeros(0, dtype=np.int64)
        selections, types = [], []
        for q in queries:
            sel = parse_selection(q.selection) if q.selection else None
            selections.append(sel if sel is not None else Selection())
            goal = parse_goal(q.goal_text)
            types.append(features.goal_type_tag(goal) if goal is not None else q.goal_key.split(":")[0])
        obs = featurize_queries([q.state for q in queries], selections, types, self.obs)
        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.from_numpy(obs)})
        if Columns.ACTION_DIST_INPUTS in out:
            scores = out[Columns.ACTION_DIST_INPUTS]
            return scores.argmax(-1).numpy().astype(np.int64)
        return out[Columns.ACTIONS].numpy().astype(np.int64)


def load_policy(cfg: RunConfig, algo: str) -> RLModulePolicy:
    """The trained baseline ``algo`` of a run as an evaluation policy.

    Raises:
        DataError: the baseline was not trained (names the command to run).
    """
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    run = RunDir(cfg.run_dir)
    if algo not in ALGOS:
        raise ConfigError(f"unknown baseline {algo!r}; use {', '.join(ALGOS)}")
    folder = f"{BASELINES}/{algo}"
    if not run.exists(folder, MANIFEST) or not run.read_json(folder, MANIFEST).get("complete"):
        raise DataError(f"no trained {algo} in {run.path(folder)}: run `teduo baselines` "
                        f"with rl.baselines including {algo}")
    metrics = run.read_json(folder, "metrics.json")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        _download(run, folder + "/module", os.path.join(tmp, "module"))
        module = RLModule.from_checkpoint(os.path.join(tmp, "module"))
    module.eval()
    return RLModulePolicy(algo, module, ObsSpec(**metrics["obs"]))


def _download(run: RunDir, folder: str, local: str) -> None:
    import pyarrow.fs as pafs

    if isinstance(run.fs, pafs.LocalFileSystem):
        shutil.copytree(run.path(folder), local)
        return
    pafs.copy_files(run.path(folder), local, source_filesystem=run.fs,
                    destination_filesystem=pafs.LocalFileSystem())


__all__ = ["train_baselines", "load_policy", "RLModulePolicy", "BaselinesResult", "BaselineRun"]
