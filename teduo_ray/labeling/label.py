"""`teduo label`: TEDUO step 1 — abstraction, LLM hindsight labels, reward model, all pairs.

Sub-steps, each resumable through its own manifest in the run directory:

1. ``states/``        intern the transitions' states (data/intern.py).
2. ``abstractions/``  one selection of goal-relevant objects per training goal (LLM or rules).
3. ``rewards/requests/`` per goal, up to ``llm_states_per_goal`` distinct (abstract) states,
   spread over goal-relevant features (sampling.py); sharded Parquet.
4. ``rewards/llm/``   the LLM's labels of those requests: Ray Data, one ``map_batches`` per
   stage (render -> judge on an actor pool); a finished shard is never relabeled.
5. ``rewards/model/`` the reward model trained on the LLM labels, threshold for precision.
6. ``rewards/labels/`` every (state, training goal) pair: goal_id, state_id, p, label, source
   (``llm`` where the LLM labeled the pair's abstract state, ``model`` elsewhere); written
   by a pool of Ray actors, a block of goals per shard.
7. ``rewards/accuracy.json`` precision / recall / ROC-AUC of the LLM labels and of the final
   labels against the ground-truth predicates, per goal type (never used for training).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.data.intern import intern_states, load_states
from teduo_ray.envs import get_adapter
from teduo_ray.envs.babyai.goals import GOAL_TYPES, Goal
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.errors import DataError, TeduoError
from teduo_ray.labeling import features, reward_model
from teduo_ray.labeling.abstraction import (
    Selection,
    abstract_batch,
    agent_rooms,
    abstraction_messages,
    parse_selection,
    rules_selection,
)
from teduo_ray.labeling.metrics import NEVER, quality
from teduo_ray.labeling.sampling import feature_keys, stratified_pick
from teduo_ray.labeling.stages import uniform_hash
from teduo_ray.rundir import RunDir, StageManifest
from teduo_ray.runtime import node_id

log = logging.getLogger(__name__)

ABSTRACTIONS = "abstractions"
REQUESTS = "rewards/requests"
LLM_LABELS = "rewards/llm"
MODEL = "rewards/model"
LABELS = "rewards/labels"
ACCURACY = "rewards/accuracy.json"
# What each sub-step's output depends on, beyond the previous sub-step (hashes are chained).
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    ABSTRACTIONS: ("abstraction", "backend", "model", "http_url"),
    REQUESTS: ("llm_states_per_goal", "requests_per_shard"),
    LLM_LABELS: ("oracle_precision", "oracle_recall"),
    MODEL: ("reward_model", "reward_lr", "reward_epochs", "reward_batch_size", "precision_target",
            "reward_max_pairs", "reward_view_radius"),
    LABELS: (),
}
VAL_FRACTION = 0.1
LABELS_SCHEMA = pa.schema(
    [
        pa.field("goal_id", pa.int32(), False),
        pa.field("state_id", pa.int32(), False),
        pa.field("p", pa.float32(), False),
        pa.field("label", pa.bool_(), False),
        pa.field("source", pa.string(), False),
    ]
)


@dataclass(frozen=True)
class GoalSpec:
    """A training goal as the labeling stage sees it.

    Args:
        goal_id: catalogue id.
        goal: the goal.
        text: its wording.
        selection: goal-relevant objects (the abstraction's parameters).
    """

    goal_id: int
    goal: Goal
    text: str
    selection: Selection


@dataclass(frozen=True)
class LabelResult:
    """What `label` produced (the accuracy report is in ``report``)."""

    path: str
    states: int
    goals: int
    pairs: int
    llm_calls: int
    report: dict[str, Any]
    seconds: float

    def __str__(self) -> str:
        r = self.report
        lines = [
            f"label: {self.pairs} (state, goal) pairs = {self.states} states x {self.goals} training goals "
            f"at {self.path} [{self.seconds:.1f}s]",
            f"  llm calls {self.llm_calls} (fraction {r['llm_call_fraction']:.4f}); "
            f"threshold {r['model']['threshold']:.3f}",
            f"  {'labels':<8} {'scope':<12} {'precision':>9} {'recall':>7} {'roc_auc':>7} {'positives':>9}",
        ]
        for name in ("llm", "final"):
            for scope, m in r[name].items():
                lines.append(
                    f"  {name:<8} {scope:<12} {m['precision']:>9.3f} {m['recall']:>7.3f} "
                    f"{m['roc_auc']:>7.3f} {m['positives']:>9d}"
                )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def step_hashes(cfg: RunConfig) -> dict[str, str]:
    """Config hash of each sub-step, chained: changing the reward model's settings
    invalidates the model and the labels, never the (expensive) LLM labels."""
    lab = dataclasses.asdict(cfg.labeling)
    previous = cfg.section_hash("env", "data")
    hashes = {}
    for step, fields in STEP_FIELDS.items():
        previous = hashes[step] = stable_hash([previous, {f: lab[f] for f in fields}])
    return hashes


def _training_goals(cfg: RunConfig) -> list[tuple[int, Goal, str]]:
    entries = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    return [(e.goal_id, e.goal, e.text) for e in entries if e.split == "train"]




def _goals_per_shard(n_states: int) -> int:
    """Goals per labels shard: at most 8 (work for every actor), at most ~1M pairs per file."""
    return max(1, min(8, 1_000_000 // max(1, n_states)))


# ----------------------------------------------------------------------------- 2. abstraction


def run_abstraction(cfg: RunConfig, run: RunDir, goals: list[tuple[int, Goal, str]], config_hash: str) -> list[GoalSpec]:
    """One selection per goal: from the LLM (retried once, else the rules as a recorded
    fallback) or from the rules; written to ``abstractions/abstractions.parquet``."""
    lab = cfg.labeling
    manifest = StageManifest.load_or_create(run, ABSTRACTIONS, config_hash, 1)
    if manifest.complete:
        table = run.read_table(ABSTRACTIONS, "abstractions.parquet")
        selections = {r["goal_id"]: r["selection"] for r in table.to_pylist()}
        return [GoalSpec(gid, g, t, _selection_from_json(selections[gid])) for gid, g, t in goals]

    answers: dict[int, str] = {}
    use_llm = lab.abstraction == "llm" and lab.backend != "oracle"
    if use_llm:
        pending = [(gid, text) for gid, _, text in goals]
        for _attempt in range(2):  # malformed output is retried once
            got = _generate(cfg, run, [(gid, abstraction_messages(text)) for gid, text in pending])
            answers.update(got)
            pending = [(gid, text) for gid, text in pending if parse_selection(got.get(gid, "")) is None]
            if not pending:
                break
    specs, rows = [], []
    for gid, goal, text in goals:
        parsed = parse_selection(answers.get(gid, "")) if use_llm else None
        if use_llm:
            method = "llm" if parsed is not None else "rules-fallback"
        else:
            method = {"none": "none", "rules": "rules", "llm": "oracle"}[lab.abstraction]
        selection = parsed or rules_selection(goal)
        specs.append(GoalSpec(gid, goal, text, selection))
        rows.append({"goal_id": gid, "key": goal.key, "text": text, "method": method,
                     "selection": selection.to_json(), "ok": parsed is not None or not use_llm,
                     "answer": answers.get(gid, "")})
    table = pa.Table.from_pylist(rows)
    sha = run.write_table(table, ABSTRACTIONS, "abstractions.parquet")
    manifest.shards["abstractions"] = {"file": "abstractions.parquet", "rows": table.num_rows, "sha256": sha}
    manifest.complete = True
    manifest.save(run)
    failures = sum(1 for r in rows if not r["ok"])
    if failures:
        log.warning("abstraction: %d of %d LLM answers unusable after a retry; rules used instead", failures, len(rows))
    return specs


def _selection_from_json(text: str) -> Selection:
    parsed = parse_selection(text)
    return parsed if parsed is not None else Selection()


def _generate(cfg: RunConfig, run: RunDir, prompts: list[tuple[int, list[dict[str, str]]]]) -> dict[int, str]:
    """Greedy answers of the labeling LLM to a few prompts (the abstraction calls), via Ray Data."""
    import ray

    from teduo_ray.runtime import init_ray

    init_ray(cfg.ray)
    lab = cfg.labeling
    ds = ray.data.from_items([{"goal_id": gid, "messages_json": json.dumps(m)} for gid, m in prompts])
    if lab.backend == "hf":
        from teduo_ray.labeling.stages import HFGenerateStage

        ds = ds.map_batches(
            HFGenerateStage,
            fn_constructor_kwargs={"model_path": resolve_model(cfg, run), "torch_threads": lab.torch_threads},
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=lab.actor_cpus,
            num_gpus=lab.actor_gpus or None,
            batch_size=lab.batch_size,
        )
        return {int(r["goal_id"]): str(r["answer"]) for r in ds.take_all()}
    from ray.data.llm import HttpRequestProcessorConfig, build_processor, vLLMEngineProcessorConfig

    def pre(row: dict[str, Any]) -> dict[str, Any]:
        messages = json.loads(row["messages_json"])
        if lab.backend == "http":
            return {"payload": {"model": lab.model, "messages": messages, "temperature": 0.0, "max_tokens": 256}}
        return {"messages": messages, "sampling_params": {"temperature": 0.0, "max_tokens": 256}}

    def post(row: dict[str, Any]) -> dict[str, Any]:
        text = row.get("generated_text")
        if text is None:
            choices = (row.get("http_response") or {}).get("choices") or [{}]
            text = (choices[0].get("message") or {}).get("content", "")
        return {"goal_id": row["goal_id"], "answer": text}

    config: Any
    if lab.backend == "vllm":
        config = vLLMEngineProcessorConfig(model_source=lab.model, concurrency=lab.num_actors, batch_size=lab.batch_size)
    else:
        config = HttpRequestProcessorConfig(url=lab.http_url, batch_size=lab.batch_size, max_retries=3,
                                            headers=_http_headers(cfg))
    processor = build_processor(config, preprocess=pre, postprocess=post)
    return {int(r["goal_id"]): str(r["answer"]) for r in processor(ds).take_all()}


def _http_headers(cfg: RunConfig) -> dict[str, str] | None:
    key = os.environ.get(cfg.labeling.http_api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else None


def resolve_model(cfg: RunConfig, run: RunDir) -> str:
    """The labeling model's path: "tiny" builds (once) a tiny model in the run directory; any
    other value is a Hugging Face directory or hub id, checked before Ray Data starts."""
    lab = cfg.labeling
    if lab.model == "tiny":
        path = run.path("models", "tiny-judge")
        if not os.path.isdir(path):
            from teduo_ray.sft.tiny_model import build_tiny_model

            build_tiny_model(path, vocabulary_corpus(cfg))
        return path
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(lab.model)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the same user error
        raise TeduoError(f"labeling.model: cannot load {lab.model!r} ({exc.__class__.__name__}: {exc})") from None
    return lab.model


def vocabulary_corpus(cfg: RunConfig, max_states: int = 2000) -> list[str]:
    """Texts the tiny model's tokenizer learns from: training goals, judge prompts, states.

    Training-split goals only, in their training wording: no test goal and no paraphrase
    reaches the tokenizer, so words only test goals use stay unseen until evaluation (the
    byte-level fallback encodes them). tests/sft/test_tokenizer_corpus.py checks this.
    """
    from teduo_ray.labeling.stages import JUDGE_SYSTEM, JUDGE_USER

    adapter = get_adapter(cfg.env, cfg.seed)
    texts = [e.text for e in adapter.goal_catalogue() if e.split == "train"] * 4
    texts += [JUDGE_SYSTEM, JUDGE_USER, "Yes", "No", "Yes.", "No."] * 20
    try:
        blobs = load_states(cfg)["state"].to_pylist()
    except DataError:
        blobs = []
    for blob in blobs[:: max(1, len(blobs) // max_states)]:
        texts.append(adapter.render(blob))
    return texts


# ----------------------------------------------------------------------------- 3. requests


def build_requests(cfg: RunConfig, run: RunDir, blobs: list[bytes], specs: list[GoalSpec], config_hash: str) -> StageManifest:
    """Pick the states the LLM labels, per goal, and write them as request shards."""
    lab = cfg.labeling
    existing = StageManifest.load_or_create(run, REQUESTS, config_hash, 0)
    if existing.complete:
        return existing
    raw = StateBatch.from_blobs(blobs)
    rooms = agent_rooms(raw)
    columns: dict[str, list[Any]] = {k: [] for k in ("goal_id", "state_id", "goal_text", "state", "prompt_state")}
    for spec in specs:
        abstract = abstract_batch(raw, spec.selection, rooms).to_blobs()
        dedupe_on = blobs if lab.abstraction == "none" else abstract
        arr = pa.array(dedupe_on, pa.binary())
        unique = pc.unique(arr)
        first = np.sort(np.asarray(pc.index_in(unique, value_set=arr)))  # first raw state of each distinct state
        keys = feature_keys(StateBatch.from_blobs([abstract[i] for i in first]))
        picked = first[stratified_pick(keys, lab.llm_states_per_goal, np.random.default_rng([cfg.seed, 0x5E1, spec.goal_id]))]
        for i in picked:
            columns["goal_id"].append(spec.goal_id)
            columns["state_id"].append(int(i))
            columns["goal_text"].append(spec.text)
            columns["state"].append(abstract[i])
            columns["prompt_state"].append(blobs[i] if lab.abstraction == "none" else abstract[i])
    table = pa.table(
        {
            "goal_id": pa.array(columns["goal_id"], pa.int32()),
            "state_id": pa.array(columns["state_id"], pa.int32()),
            "goal_text": pa.array(columns["goal_text"], pa.string()),
            "state": pa.array(columns["state"], pa.binary()),
            "prompt_state": pa.array(columns["prompt_state"], pa.binary()),
        }
    )
    per = lab.requests_per_shard
    num_shards = max(1, math.ceil(table.num_rows / per))
    manifest = StageManifest(REQUESTS, config_hash, num_shards)
    for k in range(num_shards):
        part = table.slice(k * per, per)
        part = part.append_column("shard", pa.array(np.full(part.num_rows, k), pa.int32()))
        name = f"part-{k:05d}"
        sha = run.write_table(part, REQUESTS, f"{name}.parquet")
        manifest.shards[name] = {"file": f"{name}.parquet", "rows": part.num_rows, "sha256": sha}
    manifest.complete = True
    manifest.save(run)
    return manifest


# ----------------------------------------------------------------------------- 4. LLM labels


def build_judge_pipeline(cfg: RunConfig, run: RunDir, ds: Any, specs: list[GoalSpec]) -> Any:
    """Chain the labeling stages onto a dataset of requests: render -> judge."""
    import ray

    from teduo_ray.labeling import stages

    lab = cfg.labeling
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
            "flip_rates": _oracle_flip_rates(cfg, run, specs),
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


def _oracle_flip_rates(cfg: RunConfig, run: RunDir, specs: list[GoalSpec]) -> dict[int, float]:
    """False-positive rates for a corrupted oracle (ground truth is the oracle's own input)."""
    from teduo_ray.labeling.stages import oracle_flip_rates

    lab = cfg.labeling
    if lab.oracle_precision >= 1.0:
        return {}
    table = run.read_shards(REQUESTS, ["goal_id", "state"])
    goals = {s.goal_id: s.goal for s in specs}
    pos: dict[int, int] = {}
    tot: dict[int, int] = {}
    ids = table["goal_id"].to_numpy()
    for gid in np.unique(ids):
        rows = np.flatnonzero(ids == gid)
        states = StateBatch.from_blobs(table["state"].take(pa.array(rows)).to_pylist())
        pos[int(gid)] = int(achieved_batch(goals[int(gid)], states).sum())
        tot[int(gid)] = len(rows)
    return oracle_flip_rates(pos, tot, lab.oracle_precision, lab.oracle_recall)


def _read_request_shards(batch: pa.Table, run_dir: str) -> pa.Table:
    run = RunDir(run_dir)
    return pa.concat_tables([run.read_table(REQUESTS, f) for f in batch["file"].to_pylist()])


def run_llm_labels(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], requests: StageManifest,
                   config_hash: str, progress: bool) -> StageManifest:
    """Label the pending request shards with the LLM backend (a finished shard is kept)."""
    import ray
    from tqdm import tqdm

    from teduo_ray.runtime import init_ray

    manifest = StageManifest.load_or_create(run, LLM_LABELS, config_hash, requests.num_shards)
    run.remove_temporaries(LLM_LABELS)
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
        ds = build_judge_pipeline(cfg, run, ds, specs)
        expected = {int(n.split("-")[1]): int(requests.shards[n]["rows"]) for n in pending}
        parts: dict[int, list[pa.Table]] = {k: [] for k in expected}
        got = dict.fromkeys(expected, 0)
        keep = ["goal_id", "state_id", "p_llm", "llm_label"]
        with tqdm(total=sum(expected.values()), desc="label (llm)", unit="pair", disable=not progress) as bar:
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
    table = table.cast(
        pa.schema([("goal_id", pa.int32()), ("state_id", pa.int32()), ("p_llm", pa.float32()), ("llm_label", pa.bool_())])
    ).sort_by([("goal_id", "ascending"), ("state_id", "ascending")])
    name = f"part-{k:05d}"
    sha = run.write_table(table, LLM_LABELS, f"{name}.parquet")
    manifest.add(run, {"name": name, "file": f"{name}.parquet", "rows": table.num_rows, "sha256": sha})


# ----------------------------------------------------------------------------- 5. reward model


def _llm_labeled(run: RunDir) -> pa.Table:
    """Requests joined with their LLM labels, ordered by (goal_id, state_id)."""
    requests = run.read_shards(REQUESTS, ["goal_id", "state_id", "state"])
    labels = run.read_shards(LLM_LABELS)
    joined = requests.join(labels, ["goal_id", "state_id"], join_type="inner")
    return joined.sort_by([("goal_id", "ascending"), ("state_id", "ascending")])


def _encode_pairs(table: pa.Table, specs: dict[int, GoalSpec], radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of labeled pairs; the one-hot planes as uint8 (a quarter of float32's memory)."""
    gids = table["goal_id"].to_numpy()
    planes, vectors = [], []
    for gid in np.unique(gids):
        rows = np.flatnonzero(gids == gid)
        batch = StateBatch.from_blobs(table["state"].take(pa.array(rows)).to_pylist())
        p, v = features.encode(batch, features.goal_type_tag(specs[int(gid)].goal), radius)
        planes.append(p.astype(np.uint8))
        vectors.append(v)
    return np.concatenate(planes), np.concatenate(vectors)


def reward_radius(cfg: RunConfig, grid: tuple[int, int]) -> int:
    """The reward model's view radius: ``labeling.reward_view_radius``, at most the whole grid."""
    full = features.view_radius(*grid)
    return min(cfg.labeling.reward_view_radius or full, full)


def _cap_pairs(table: pa.Table, max_pairs: int, seed: int) -> pa.Table:
    """At most ``max_pairs`` rows, a uniform sample fixed by the seed (0 = keep all)."""
    if not max_pairs or table.num_rows <= max_pairs:
        return table
    u = uniform_hash(seed, table["goal_id"].to_numpy().astype(np.int64), table["state_id"].to_numpy().astype(np.int64))
    return table.take(pa.array(np.sort(np.argsort(u, kind="stable")[:max_pairs])))


def train_reward_model(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], grid: tuple[int, int],
                       config_hash: str) -> dict[str, Any]:
    """Fit the reward model(s) on the LLM labels in Ray tasks; returns the saved metadata."""
    import ray

    from teduo_ray.runtime import init_ray

    manifest = StageManifest.load_or_create(run, MODEL, config_hash, 1, replace_stale=True)
    if manifest.complete:
        return run.read_json(MODEL, "meta.json")
    lab = cfg.labeling
    table = _cap_pairs(_llm_labeled(run), lab.reward_max_pairs, cfg.seed + 2)
    by_id = {s.goal_id: s for s in specs}
    radius = reward_radius(cfg, grid)
    planes, vector = _encode_pairs(table, by_id, radius)
    labels = table["llm_label"].to_numpy(zero_copy_only=False).astype(bool)
    gids = table["goal_id"].to_numpy()
    is_val = uniform_hash(cfg.seed + 1, gids.astype(np.int64), table["state_id"].to_numpy().astype(np.int64)) < VAL_FRACTION
    groups = {"shared": np.arange(len(gids))} if lab.reward_model == "shared" else {
        str(int(g)): np.flatnonzero(gids == g) for g in np.unique(gids)
    }
    init_ray(cfg.ray)
    remote_fit = ray.remote(num_cpus=1)(reward_model.fit)
    kwargs = {"lr": lab.reward_lr, "epochs": lab.reward_epochs, "batch_size": lab.reward_batch_size,
              "precision_target": lab.precision_target, "seed": cfg.seed}
    refs = {
        name: remote_fit.remote(lab.reward_model, planes[idx], vector[idx], labels[idx], is_val[idx], **kwargs)
        for name, idx in groups.items()
    }
    fits = {name: ray.get(ref) for name, ref in refs.items()}
    silent = [name for name, f in fits.items() if f.threshold >= NEVER]
    if silent:
        log.warning("reward model(s) %s: labeling.precision_target=%s is not reached on the held-out LLM labels, "
                    "so they label no pair positive (the LLM's labels are kept); more LLM labels per goal "
                    "(labeling.llm_states_per_goal) or a lower target changes that",
                    ", ".join(silent[:5]) + (" ..." if len(silent) > 5 else ""), lab.precision_target)
    import torch

    buf = io.BytesIO()
    torch.save({name: f.state_dict for name, f in fits.items()}, buf)
    run.write_bytes(buf.getvalue(), MODEL, "model.pt")
    meta = {
        "kind": lab.reward_model,
        "radius": radius,
        "groups": {
            name: {"threshold": f.threshold, "val_precision": f.val_precision, "val_recall": f.val_recall,
                   "val_loss": f.val_loss, "epochs": f.epochs, "train_size": f.train_size, "val_size": f.val_size}
            for name, f in fits.items()
        },
    }
    run.write_json(meta, MODEL, "meta.json")
    manifest.shards["model"] = {"file": "model.pt", "rows": len(gids), "sha256": ""}
    manifest.complete = True
    manifest.save(run)
    return meta


# ----------------------------------------------------------------------------- 6. all pairs


class RewardLabelActor:
    """Labels every state for a block of goals: LLM label where there is one, model elsewhere.

    Built once per actor (states, model weights); also returns ground-truth confusion counts
    and score histograms for the accuracy report — never written with the labels.

    Args:
        run_dir: the run directory.
        blobs: all raw states in state_id order.
        specs: the training goals.
        meta: reward-model metadata (kind, radius, thresholds).
        torch_threads: CPU threads.
    """

    BINS = 1000

    def __init__(self, run_dir: str, blobs: list[bytes], specs: list[GoalSpec], meta: dict[str, Any],
                 torch_threads: int) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.run = RunDir(run_dir)
        self.raw = StateBatch.from_blobs(blobs)
        self.rooms = agent_rooms(self.raw)
        self.specs = {s.goal_id: s for s in specs}
        self.meta = meta
        self.weights = torch.load(io.BytesIO(self.run.read_bytes(MODEL, "model.pt")), weights_only=True)
        llm = _llm_labeled(self.run)
        self.llm: dict[int, dict[bytes, tuple[float, bool]]] = {}
        for gid, state, p, y in zip(llm["goal_id"].to_pylist(), llm["state"].to_pylist(),
                                    llm["p_llm"].to_pylist(), llm["llm_label"].to_pylist()):
            self.llm.setdefault(gid, {})[state] = (p, y)

    def label_shard(self, name: str, goal_ids: list[int]) -> dict[str, Any]:
        n = len(self.raw)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in LABELS_SCHEMA.names}
        stats: dict[str, Any] = {}
        for gid in goal_ids:
            spec = self.specs[gid]
            group = "shared" if self.meta["kind"] == "shared" else str(gid)
            abstract = abstract_batch(self.raw, spec.selection, self.rooms)
            if group in self.weights:
                planes, vector = features.encode(abstract, features.goal_type_tag(spec.goal), self.meta["radius"])
                p = reward_model.predict_proba(self.meta["kind"], self.weights[group], planes, vector)
                label = p >= self.meta["groups"][group]["threshold"]
            else:  # a per-goal model needs labels of its goal: none means "never achieved"
                p, label = np.zeros(n, np.float32), np.zeros(n, bool)
            source = np.full(n, "model", dtype=object)
            known = self.llm.get(gid, {})
            if known:
                blobs = abstract.to_blobs()
                for i, blob in enumerate(blobs):
                    hit = known.get(blob)
                    if hit is not None:
                        p[i], label[i], source[i] = hit[0], hit[1], "llm"
            truth = achieved_batch(spec.goal, abstract)
            _accumulate(stats, spec.goal.type, p, label, truth, source == "model", self.BINS)
            cols["goal_id"].append(np.full(n, gid, np.int32))
            cols["state_id"].append(np.arange(n, dtype=np.int32))
            cols["p"].append(p.astype(np.float32))
            cols["label"].append(label)
            cols["source"].append(source)
        table = pa.table({k: np.concatenate(v) for k, v in cols.items()}, schema=LABELS_SCHEMA)
        sha = self.run.write_table(table, LABELS, f"{name}.parquet")
        return {"name": name, "file": f"{name}.parquet", "rows": table.num_rows, "sha256": sha,
                "goal_ids": goal_ids, "stats": stats, "node": node_id()}


def _accumulate(stats: dict[str, Any], gtype: str, p: np.ndarray, label: np.ndarray, truth: np.ndarray,
                model_rows: np.ndarray, bins: int) -> None:
    """Confusion counts and p-histograms per goal type (and for model-labeled rows only)."""
    for scope, mask in ((gtype, np.ones_like(truth)), (f"{gtype}/model", model_rows)):
        s = stats.setdefault(scope, {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "hist_pos": {}, "hist_neg": {}})
        t, y = truth[mask], label[mask]
        s["tp"] += int(np.sum(t & y))
        s["fp"] += int(np.sum(~t & y))
        s["fn"] += int(np.sum(t & ~y))
        s["tn"] += int(np.sum(~t & ~y))
        idx = np.minimum((p[mask] * bins).astype(np.int64), bins - 1)
        for key, rows in (("hist_pos", idx[t]), ("hist_neg", idx[~t])):
            s[key] = _sparse(_dense(s[key], bins) + np.bincount(rows, minlength=bins))


def _sparse(hist: np.ndarray) -> dict[str, int]:
    """A histogram as {bin: count} of its non-empty bins: shard records are saved in the
    manifest after every shard, and dense 1,000-bin lists made that quadratic in shards."""
    return {str(int(i)): int(hist[i]) for i in np.flatnonzero(hist)}


def _dense(hist: dict[str, int], bins: int) -> np.ndarray:
    out = np.zeros(bins, np.int64)
    for i, c in hist.items():
        out[int(i)] += c
    return out


def apply_reward_model(cfg: RunConfig, run: RunDir, blobs: list[bytes], specs: list[GoalSpec],
                       meta: dict[str, Any], config_hash: str, progress: bool) -> StageManifest:
    """Label every (state, training goal) pair on a pool of Ray actors, a block of goals per shard."""
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    from teduo_ray.runtime import init_ray, pool_size

    per = _goals_per_shard(len(blobs))
    shards = {f"part-{k:05d}": [s.goal_id for s in specs[i : i + per]] for k, i in enumerate(range(0, len(specs), per))}
    manifest = StageManifest.load_or_create(run, LABELS, config_hash, len(shards), replace_stale=True)
    run.remove_temporaries(LABELS)
    todo = [(name, gids) for name, gids in shards.items() if name not in manifest.shards]
    if todo:
        init_ray(cfg.ray)
        lab = cfg.labeling
        actor_cls = ray.remote(num_cpus=lab.actor_cpus, max_restarts=3, max_task_retries=3,
                               scheduling_strategy="SPREAD")(RewardLabelActor)
        blobs_ref, specs_ref = ray.put(blobs), ray.put(specs)
        size = min(pool_size(lab.num_actors, lab.actor_cpus, reserve_cpus=0.0), len(todo))
        actors = [actor_cls.remote(cfg.run_dir, blobs_ref, specs_ref, meta, lab.torch_threads) for _ in range(size)]
        pool = ActorPool(actors)
        with tqdm(total=len(shards), initial=len(shards) - len(todo), desc="label (all pairs)", unit="shard",
                  disable=not progress) as bar:
            for record in pool.map_unordered(lambda a, item: a.label_shard.remote(*item), todo):
                manifest.add(run, record)
                bar.update(1)
        for actor in actors:
            ray.kill(actor)
    manifest.complete = len(manifest.shards) == len(shards)
    manifest.save(run)
    return manifest


# ----------------------------------------------------------------------------- 7. accuracy


def _hist_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC from score histograms (ties within a bin count one half)."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((np.sum(pos * below) + 0.5 * np.sum(pos * neg)) / (n_pos * n_neg))


def _from_counts(s: dict[str, Any]) -> dict[str, float]:
    tp, fp, fn = s["tp"], s["fp"], s["fn"]
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "roc_auc": _hist_auc(np.asarray(s["hist_pos"]), np.asarray(s["hist_neg"])),
        "n": tp + fp + fn + s["tn"],
        "positives": tp + fn,
        "predicted_positives": tp + fp,
    }


def accuracy_report(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], labels: StageManifest,
                    meta: dict[str, Any], n_states: int) -> dict[str, Any]:
    """Precision / recall / ROC-AUC of the LLM labels and of the final labels vs ground truth."""
    by_id = {s.goal_id: s for s in specs}
    llm = _llm_labeled(run)
    gids = llm["goal_id"].to_numpy()
    truth = np.zeros(len(gids), bool)
    for gid in np.unique(gids):
        rows = np.flatnonzero(gids == gid)
        truth[rows] = achieved_batch(by_id[int(gid)].goal, StateBatch.from_blobs(llm["state"].take(pa.array(rows)).to_pylist()))
    p_llm = llm["p_llm"].to_numpy()
    y_llm = llm["llm_label"].to_numpy(zero_copy_only=False).astype(bool)
    types = np.array([by_id[int(g)].goal.type for g in gids])
    llm_report = {"all": quality(p_llm, y_llm, truth)}
    for t in GOAL_TYPES:
        if np.any(types == t):
            llm_report[t] = quality(p_llm[types == t], y_llm[types == t], truth[types == t])

    merged: dict[str, dict[str, Any]] = {}
    for record in labels.shards.values():
        for scope, s in record["stats"].items():
            m = merged.setdefault(scope, {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "hist_pos": 0, "hist_neg": 0})
            for k in ("tp", "fp", "fn", "tn"):
                m[k] += s[k]
            for k in ("hist_pos", "hist_neg"):
                m[k] = m[k] + _dense(s[k], RewardLabelActor.BINS)
    final: dict[str, Any] = {}
    model_only: dict[str, Any] = {}
    for scope_all, target in (("", final), ("/model", model_only)):
        parts = {k[: len(k) - len(scope_all)] if scope_all else k: v for k, v in merged.items()
                 if (k.endswith("/model") if scope_all else "/" not in k)}
        if parts:
            total = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "hist_pos": 0, "hist_neg": 0}
            for v in parts.values():
                for k in total:
                    total[k] = total[k] + v[k]
            target["all"] = _from_counts(total)
            for t in GOAL_TYPES:
                if t in parts:
                    target[t] = _from_counts(parts[t])
    pairs = n_states * len(specs)
    calls = len(gids)
    report = {
        "llm_calls": calls,
        "pairs_labeled": pairs,
        "llm_call_fraction": calls / pairs if pairs else 0.0,
        "goals": len(specs),
        "states": n_states,
        "backend": cfg.labeling.backend,
        "abstraction": cfg.labeling.abstraction,
        "model": {"kind": meta["kind"], "threshold": float(np.mean([g["threshold"] for g in meta["groups"].values()])),
                  "groups": meta["groups"]},
        "llm": llm_report,
        "final": final,
        "model_only": model_only,
    }
    run.write_json(_finite(report), *ACCURACY.split("/"))
    return report


def _finite(obj: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------- entry point


def label(cfg: RunConfig, progress: bool = True) -> LabelResult:
    """Run step 1 on the collected transitions (every sub-step resumes).

    Args:
        cfg: the run config.
        progress: show progress bars.

    Returns:
        Sizes, LLM call count and the accuracy report.
    """
    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    hashes = step_hashes(cfg)
    intern_states(cfg)
    blobs = load_states(cfg)["state"].to_pylist()
    if not blobs:
        raise DataError("the transitions hold no states: collect more data")
    grid = (blobs[0][0], blobs[0][1])
    goals = _training_goals(cfg)
    specs = run_abstraction(cfg, run, goals, hashes[ABSTRACTIONS])
    requests = build_requests(cfg, run, blobs, specs, hashes[REQUESTS])
    run_llm_labels(cfg, run, specs, requests, hashes[LLM_LABELS], progress)
    meta = train_reward_model(cfg, run, specs, grid, hashes[MODEL])
    labels = apply_reward_model(cfg, run, blobs, specs, meta, hashes[LABELS], progress)
    report = accuracy_report(cfg, run, specs, labels, meta, len(blobs))
    return LabelResult(run.path(LABELS), len(blobs), len(specs), len(blobs) * len(specs),
                       report["llm_calls"], report, time.perf_counter() - start)

