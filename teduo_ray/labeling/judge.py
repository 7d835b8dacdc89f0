"""Labeling sub-step 4, ``rewards/llm/``: the labeler's answers to the request shards.

Ray Data, one ``map_batches`` per stage (stages.py): read a request shard (0.25-CPU tasks,
not ``read_parquet``, whose file listing takes a whole CPU) -> render the state text ->
judge on an actor pool (oracle / hf) or a ``ray.data.llm`` processor (vLLM / HTTP). The
driver only groups the streamed answers by shard and writes each shard when it is whole; a
finished shard is never relabeled.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa

from teduo_ray.config import RunConfig
from teduo_ray.errors import DataError
from teduo_ray.labeling.generate import resolve_model
from teduo_ray.labeling.requests import positive_counts
from teduo_ray.labeling.spec import GoalSpec
from teduo_ray.layout import LLM_LABELS, LLM_LABELS_SCHEMA, REQUESTS
from teduo_ray.rundir import RunDir, StageManifest


def build_judge_pipeline(cfg: RunConfig, run: RunDir, ds: Any, specs: list[GoalSpec], requests: StageManifest) -> Any:
    """Chain the labeling stages onto a dataset of requests: render (LLM judges) -> judge."""
    import ray

    from teduo_ray.labeling import stages

    lab = cfg.labeling
    if lab.backend != "oracle":  # the oracle reads the state itself, never its text
        ds = ds.map_batches(
            stages.RenderStage,
            fn_constructor_kwargs={"text_mode": cfg.env.text_mode},
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=0.25,
            batch_size=lab.batch_size,
        )
    if lab.backend in ("vllm", "http"):
        if lab.backend == "vllm":
            processor = stages.build_vllm_judge(lab.model, lab.batch_size, lab.num_actors,
                                                tensor_parallel=lab.tensor_parallel)
        else:
            key = os.environ.get(lab.http_api_key_env)
            processor = stages.build_http_judge(lab.http_url, lab.model, lab.batch_size, lab.num_actors, None, key)
        return processor(ds)
    if lab.backend == "oracle":
        judge, kwargs = stages.OracleJudgeStage, {
            "goals": {s.goal_id: s.goal for s in specs},
            "recall": lab.oracle_recall,
            "flip_rates": _oracle_flip_rates(cfg, requests),
            "seed": cfg.seed,
        }
    else:
        judge, kwargs = stages.HFJudgeStage, {"model_path": resolve_model(cfg, run), "torch_threads": lab.torch_threads}
    from teduo_ray.runtime import pool_size

    # Ray Data's file-listing task takes a whole CPU and render 0.25: keep them room, or the
    # pipeline waits forever for a CPU the judges hold
    size = pool_size(lab.num_actors, lab.actor_cpus, reserve_cpus=1.25)
    return ds.map_batches(
        judge,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=lab.actor_cpus,
        num_gpus=lab.actor_gpus or None,
        batch_size=lab.batch_size,
    )


def _oracle_flip_rates(cfg: RunConfig, requests: StageManifest) -> dict[int, float]:
    """False-positive rates for a corrupted oracle, from the true positives each request
    shard counted (ground truth is the oracle's own input)."""
    from teduo_ray.labeling.stages import oracle_flip_rates

    lab = cfg.labeling
    if lab.oracle_precision >= 1.0:
        return {}
    positives, totals = positive_counts(requests)
    return oracle_flip_rates(positives, totals, lab.oracle_precision, lab.oracle_recall)


def _read_request_shards(batch: pa.Table, run_dir: str) -> pa.Table:
    run = RunDir(run_dir)
    return pa.concat_tables([run.read_table(REQUESTS, f) for f in batch["file"].to_pylist()])


def run_llm_labels(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], requests: StageManifest,
                   config_hash: str, progress: bool) -> StageManifest:
    """Label the pending request shards with the LLM backend (a finished shard is kept)."""
    import ray

    from teduo_ray.console import progress_bar
    from teduo_ray.runtime import init_ray

    manifest = StageManifest.load_or_create(run, LLM_LABELS, config_hash, requests.num_shards)
    run.remove_temporaries(LLM_LABELS)
    manifest.verified(run)
    pending = sorted(n for n in requests.shards if n not in manifest.shards)
    if pending:
        init_ray(cfg.ray)
        files = [requests.shards[n]["file"] for n in pending]
        # Not ray.data.read_parquet: its file-listing task takes a whole CPU, which a node
        # whose CPUs are partly held by the judge actors never has (a silent hang on small
        # nodes). Each request shard is read by a 0.25-CPU task instead.
        ds = ray.data.from_items([{"file": f} for f in files]).map_batches(
            _read_request_shards, fn_kwargs={"run_dir": cfg.run_dir}, batch_size=1, num_cpus=0.25,
            batch_format="pyarrow")
        ds = build_judge_pipeline(cfg, run, ds, specs, requests)
        expected = {int(n.split("-")[1]): int(requests.shards[n]["rows"]) for n in pending}
        parts: dict[int, list[pa.Table]] = {k: [] for k in expected}
        got = dict.fromkeys(expected, 0)
        keep = ["goal_id", "state_id", "p_llm", "llm_label"]
        with progress_bar("labeler", sum(expected.values()), "pair", disable=not progress) as bar:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                shard_col = batch["shard"].to_numpy()
                for k in np.unique(shard_col):
                    sub = batch.filter(pa.array(shard_col == k)).select(keep)
                    parts[int(k)].append(sub)
                    got[int(k)] += sub.num_rows
                    if got[int(k)] == expected[int(k)]:
                        _write_llm_shard(run, manifest, int(k), pa.concat_tables(parts.pop(int(k))))
                bar.update(batch.num_rows)
        if parts:
            raise DataError(f"the LLM stage lost rows of shards {sorted(parts)}; re-run `teduo label` to retry them")
    manifest.complete = len(manifest.shards) == requests.num_shards
    manifest.save(run)
    return manifest


def _write_llm_shard(run: RunDir, manifest: StageManifest, k: int, table: pa.Table) -> None:
    table = table.cast(LLM_LABELS_SCHEMA).sort_by([("goal_id", "ascending"), ("state_id", "ascending")])
    name = f"part-{k:05d}"
    manifest.add(run, {"name": name, **run.write_shard(table, LLM_LABELS, f"{name}.parquet")})
