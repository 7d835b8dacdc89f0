"""Benchmark of `teduo label`: LLM-call cost and label quality with the oracle, hf judge throughput.

Usage:
    python -m benchmarks.label [--quick] [--json OUT] [--config jobs/tiny.yaml] [--goals N ...]
                               [key=value ...]
    (key=value overrides go before ``--goals``, or after a ``--`` that ends its list)

What it measures, in one run on this machine (device: cpu, all cores):

A. The labeling pipeline, with the oracle as the "LLM" (``labeling.backend=oracle`` is forced),
   so the numbers measure the pipeline, not a model. For each goal count in ``--goals``
   (``env.num_train_goals``; 0 = every training goal of the catalogue) the job's data is
   collected into its own temporary run dir with ``teduo_ray.data.collect.collect`` (the goal
   count is part of the env config, so every count collects its own transitions), then
   ``teduo_ray.labeling.label.label(cfg, progress=False)`` runs on it, timed alone: Ray is
   started before (``ray_init_s``) and collection is not part of ``label_seconds``. Reported per
   count: LLM calls, (state, goal) pairs labeled, ``llm_call_fraction = llm_calls / pairs``,
   precision and recall of the final labels (``report['final']['all']``) and of the LLM labels
   (``report['llm']['all']``) against the ground-truth predicates, seconds and
   ``pairs_per_s = pairs_labeled / label_seconds``, and ``label_steps``: the seconds of each
   sub-step (intern ... accuracy), from the times their outputs were last written. The job's
   own ``labeling.llm_states_per_goal`` is used. The headline is the run with the job's own
   goal count (added to the list when missing); the acceptance target
   ``llm_call_fraction <= 0.05`` with ``precision >= 0.95`` is reported, not enforced.
B. The hf judge on the tiny model (``build_tiny_model`` on ``vocabulary_corpus(cfg)`` of the
   headline run): ``--hf-pairs`` (state, goal) pairs drawn from that run's
   ``rewards/requests`` (goal_text + ``render_state(prompt_state, cfg.env.text_mode)``), scored
   - baseline: one pair per forward pass, in a plain loop over the same model and tokenizer;
   - candidate: one ``HFJudgeStage``, ``micro_batch`` (left-padded) pairs per forward pass.
   Same process, after Ray has shut down, ``torch.set_num_threads(--hf-threads)`` for both
   (default: the job's ``labeling.torch_threads``, what the pipeline's judge actors use; more
   than one thread on an oversubscribed machine slows both, the one-pair loop of many tiny
   ops by far the most), model loading and one warm-up pass excluded. Both sides are timed
   on the same chunks of ``labeling.batch_size`` pairs (what Ray Data hands one stage call),
   interleaved and alternating which goes first, so a change in machine load hits both
   alike. Both must give the same p(yes) within 1e-4 (padding must not change a score); the
   largest difference is ``hf_max_abs_diff``. ``hf_speedup = baseline_s / candidate_s``.

Sizes: the job file (default jobs/tiny.yaml) with your key=value overrides. ``--quick``: goal
counts 8 and all, 512 hf pairs (~2.5-3 minutes on 2 quiet cores); default: 8, 16 and all,
2,048 hf pairs. Other processes on the machine slow every number; the load average before and
after is printed.

Output: absolute times, rates, the device and the ratios, a goals -> cost/quality table; the
last line printed is ``llm_call_fraction=<x> precision=<p>``. ``--json OUT`` writes llm_calls,
pairs_labeled, llm_call_fraction, precision, recall, llm_precision, llm_recall, pairs_per_s,
label_seconds, scaling (one dict per goal count), hf_labels_per_s, hf_unbatched_labels_per_s,
hf_speedup, hf_max_abs_diff, device, cores (plus the rest of the headline run, the hf sizes,
ray_init_s, load averages, config, overrides). Exit status 1 if the batched and unbatched hf
scores differ by more than 1e-4, 2 on a configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.collect import start_ray
from teduo_ray.config import RunConfig, load_config
from teduo_ray.errors import TeduoError

QUICK_GOALS = (8, 0)
FULL_GOALS = (8, 16, 0)
QUICK_HF_PAIRS = 512
FULL_HF_PAIRS = 2048
HF_MICRO_BATCH = 32
HF_TOLERANCE = 1e-4
TARGET_FRACTION = 0.05
TARGET_PRECISION = 0.95


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.label",
        description="Label-stage cost and quality with the oracle; "
        "hf judge batched vs one pair per forward pass.",
    )
    p.add_argument("--quick", action="store_true", help="goal counts 8 and all, 512 hf pairs")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    p.add_argument("--config", default="jobs/tiny.yaml", help="job YAML (default jobs/tiny.yaml)")
    p.add_argument("--goals", type=int, nargs="+", metavar="N",
                   help="env.num_train_goals values to label (0 = all; default 8 16 0, quick 8 0)")
    p.add_argument("--hf-pairs", type=int, metavar="N",
                   help=f"pairs the hf judge scores (default {FULL_HF_PAIRS}, "
                   f"quick {QUICK_HF_PAIRS})")
    p.add_argument("--hf-micro-batch", type=int, default=HF_MICRO_BATCH, metavar="N",
                   help=f"pairs per forward pass of the batched judge (default {HF_MICRO_BATCH})")
    p.add_argument("--hf-threads", type=int, metavar="N",
                   help="torch threads of both hf runs (default: the job's labeling.torch_threads)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> RunConfig:
    """The job config with the user's overrides; labeling always on the oracle."""
    cfg = load_config(args.config, args.overrides)
    return dataclasses.replace(cfg, labeling=dataclasses.replace(cfg.labeling, backend="oracle"))


def goal_counts(args: argparse.Namespace, cfg: RunConfig) -> list[int]:
    """The goal counts to label, in order, with the job's own count among them."""
    counts = list(dict.fromkeys(args.goals or (QUICK_GOALS if args.quick else FULL_GOALS)))
    if cfg.env.num_train_goals not in counts:
        counts.append(cfg.env.num_train_goals)
    return counts


def quiet() -> None:
    """No Ray Data progress logs or bars, no known deprecation noise (call before Ray starts)."""
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray.data._internal.progress").addFilter(
        lambda record: "Progress bars disabled" not in record.getMessage())
    import ray.util.annotations  # noqa: F401 - its import puts a RayDeprecationWarning filter first

    warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")


def _goals_name(n: int) -> str:
    return "all" if n == 0 else str(n)


# ----------------------------------------------------------------------------- A. oracle pipeline


def run_label(cfg: RunConfig) -> dict[str, Any]:
    """Collect ``cfg``'s data (untimed), then time the label stage on it."""
    from teduo_ray.data.collect import collect
    from teduo_ray.labeling.label import label

    collected = collect(cfg, progress=False)
    start_wall = time.time()
    start = time.perf_counter()
    result = label(cfg, progress=False)
    seconds = time.perf_counter() - start
    r = result.report
    final, llm, model = r["final"]["all"], r["llm"]["all"], r.get("model_only", {}).get("all", {})
    return {
        "num_train_goals": cfg.env.num_train_goals,
        "goals": result.goals,
        "states": result.states,
        "transitions": collected.rows,
        "llm_calls": r["llm_calls"],
        "pairs_labeled": r["pairs_labeled"],
        "llm_call_fraction": r["llm_call_fraction"],
        "precision": final["precision"],
        "recall": final["recall"],
        "positives": final["positives"],
        "llm_precision": llm["precision"],
        "llm_recall": llm["recall"],
        "model_precision": model.get("precision"),
        "model_recall": model.get("recall"),
        "threshold": r["model"]["threshold"],
        "label_seconds": seconds,
        "pairs_per_s": r["pairs_labeled"] / seconds,
        "label_steps": step_seconds(cfg.run_dir, start_wall),
        "collect_seconds": collected.seconds,
    }


def step_seconds(run_dir: str, start_wall: float) -> dict[str, float]:
    """Seconds of each label sub-step, from the times its outputs were last written."""
    from teduo_ray.data.intern import STATES
    from teduo_ray.layout import ABSTRACTIONS, ACCURACY, LABELS, LLM_LABELS, MODEL, REQUESTS
    from teduo_ray.rundir import MANIFEST, RunDir

    run = RunDir(run_dir)
    steps = {"intern": (STATES, MANIFEST), "abstraction": (ABSTRACTIONS, MANIFEST),
             "requests": (REQUESTS, MANIFEST), "llm": (LLM_LABELS, MANIFEST),
             "reward_model": (MODEL, MANIFEST), "all_pairs": (LABELS, MANIFEST),
             "accuracy": (ACCURACY,)}
    out, previous = {}, start_wall
    for name, parts in steps.items():
        mtime = run.fs.get_file_info(run.path(*parts)).mtime
        if mtime is not None:
            out[name] = max(0.0, mtime.timestamp() - previous)
            previous = mtime.timestamp()
    return out


def print_scaling(rows: list[dict[str, Any]]) -> None:
    """The goals -> cost / quality table."""
    print(f"{'goals':>5} {'states':>6} {'llm_calls':>9} {'pairs':>8} {'fraction':>8} "
          f"{'precision':>9} {'recall':>6} {'llm_p':>5} {'llm_r':>5} {'label_s':>7} {'pairs/s':>8}")
    for r in rows:
        print(f"{r['goals']:>5} {r['states']:>6} {r['llm_calls']:>9} {r['pairs_labeled']:>8} "
              f"{r['llm_call_fraction']:>8.4f} {r['precision']:>9.3f} {r['recall']:>6.3f} "
              f"{r['llm_precision']:>5.3f} {r['llm_recall']:>5.3f} {r['label_seconds']:>7.1f} "
              f"{r['pairs_per_s']:>8.0f}")


def measure_pipeline(
    cfg: RunConfig, counts: list[int], cores: int, root: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start Ray, then collect + label once per goal count; returns (ray info, per-count rows)."""
    import ray

    ray_init_s = start_ray(cores, cfg)
    print(f"ray init: {ray_init_s:.2f} s [excluded]")
    rows = []
    try:
        for n in counts:
            run_cfg = dataclasses.replace(
                cfg, run_dir=os.path.join(root, f"goals-{_goals_name(n)}"),
                env=dataclasses.replace(cfg.env, num_train_goals=n))
            row = run_label(run_cfg)
            rows.append(row)
            print(f"num_train_goals={_goals_name(n)}: collect {row['collect_seconds']:.1f} s "
                  f"({row['transitions']} transitions) [excluded]; "
                  f"label {row['label_seconds']:.1f} s, {row['pairs_labeled']} pairs, "
                  f"{row['llm_calls']} llm calls")
            print("  label sub-steps: " + ", ".join(
                f"{name} {sec:.1f} s" for name, sec in row["label_steps"].items()))
    finally:
        ray.shutdown()
    return {"ray_init_s": ray_init_s}, rows


# ----------------------------------------------------------------------------- B. hf judge


def judge_pairs(cfg: RunConfig, n: int) -> dict[str, np.ndarray]:
    """``n`` (goal_text, state_text) pairs drawn from the run's LLM requests (repeated if fewer)."""
    from teduo_ray.envs.babyai.text import render_state
    from teduo_ray.layout import REQUESTS
    from teduo_ray.rundir import RunDir

    run = RunDir(cfg.run_dir)
    manifest = run.read_json(REQUESTS, "_manifest.json")
    goals: list[str] = []
    states: list[bytes] = []
    for _, rec in sorted(manifest["shards"].items()):
        table = run.read_table(REQUESTS, rec["file"])
        goals += table["goal_text"].to_pylist()
        states += table["prompt_state"].to_pylist()
    if not goals:
        raise TeduoError(f"no LLM requests in {run.path(REQUESTS)}: nothing for the hf judge")
    order = np.resize(np.random.default_rng(cfg.seed).permutation(len(goals)), n)
    return {
        "goal_text": np.array([goals[i] for i in order], dtype=object),
        "state_text": np.array([render_state(states[i], cfg.env.text_mode) for i in order],
                               dtype=object),
    }


def score_unbatched(stage: Any, prompts: list[str]) -> np.ndarray:
    """p(yes) of each prompt with the stage's model, one prompt per forward pass (no padding)."""
    import torch

    out = np.empty(len(prompts), np.float32)
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            enc = stage.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            logits = stage.model(**enc.to(stage.device)).logits[0, -1, :].float()
            pair = torch.stack([logits[stage.yes], logits[stage.no]])
            out[i] = torch.softmax(pair, dim=0)[0].item()
    return out


def measure_hf(cfg: RunConfig, n: int, micro_batch: int, threads: int, root: str) -> dict[str, Any]:
    """Tiny model on the run's vocabulary; one pair per pass vs ``HFJudgeStage`` batches."""
    import torch
    from transformers.utils import logging as hf_logging

    from teduo_ray.labeling.stages import HFJudgeStage
    from teduo_ray.labeling.vocabulary import vocabulary_corpus
    from teduo_ray.llm.tiny import build_tiny_model

    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    path = build_tiny_model(os.path.join(root, "tiny-judge"), vocabulary_corpus(cfg))
    batch = judge_pairs(cfg, n)
    stage = HFJudgeStage(str(path), micro_batch=micro_batch, torch_threads=threads)
    setup_s = time.perf_counter() - start
    warm = {k: v[:micro_batch] for k, v in batch.items()}
    stage(warm)
    score_unbatched(stage, stage.prompts(warm)[:2])
    lengths = [len(ids) for ids in
               stage.tokenizer(stage.prompts(batch), add_special_tokens=False)["input_ids"]]
    print(f"hf judge: tiny model + {n} pairs ready in {setup_s:.1f} s [excluded]; "
          f"device {stage.device}, torch threads {torch.get_num_threads()}, "
          f"prompt tokens {min(lengths)}-{max(lengths)} (mean {np.mean(lengths):.0f})")

    # Ray Data hands one stage call labeling.batch_size rows: time both sides on such chunks,
    # alternating which goes first, so a change in machine load hits both alike.
    chunk = max(micro_batch, cfg.labeling.batch_size)
    p_single, p_batched = np.empty(n, np.float32), np.empty(n, np.float32)
    baseline_s = seconds = 0.0
    for k, lo in enumerate(range(0, n, chunk)):
        part = {key: v[lo : lo + chunk] for key, v in batch.items()}
        for side in ("baseline", "candidate") if k % 2 == 0 else ("candidate", "baseline"):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            if side == "baseline":
                p_single[lo : lo + chunk] = score_unbatched(stage, stage.prompts(part))
                baseline_s += time.perf_counter() - start
            else:
                p_batched[lo : lo + chunk] = stage(part)["p_llm"]
                seconds += time.perf_counter() - start
    print(f"timed in {math.ceil(n / chunk)} interleaved chunks of {chunk} pairs "
          f"(labeling.batch_size); load average now {os.getloadavg()[0]:.2f}")
    print(f"baseline  (1 pair per forward pass):    {baseline_s:8.2f} s  "
          f"{n / baseline_s:9.1f} labels/s")
    print(f"candidate (HFJudgeStage, micro_batch {micro_batch}): {seconds:8.2f} s  "
          f"{n / seconds:9.1f} labels/s")

    diff = np.abs(p_batched.astype(np.float64) - p_single.astype(np.float64))
    max_diff = float(diff.max())
    mismatches = int(np.sum((p_batched >= 0.5) != (p_single >= 0.5)))
    same = max_diff <= HF_TOLERANCE
    print(f"batched vs unbatched p(yes): max |diff| {max_diff:.2e} ({'within' if same else 'OVER'} "
          f"{HF_TOLERANCE:g}), {mismatches} of {n} labels differ; "
          f"p range {p_batched.min():.3f}-{p_batched.max():.3f}")
    return {
        "hf_labels_per_s": n / seconds,
        "hf_unbatched_labels_per_s": n / baseline_s,
        "hf_speedup": baseline_s / seconds,
        "hf_max_abs_diff": max_diff,
        "hf_same": same,
        "hf_label_mismatches": mismatches,
        "hf_seconds": seconds,
        "hf_unbatched_seconds": baseline_s,
        "hf_pairs": n,
        "hf_micro_batch": micro_batch,
        "hf_chunk": chunk,
        "hf_torch_threads": threads,
        "hf_mean_prompt_tokens": float(np.mean(lengths)),
        "hf_setup_s": setup_s,
        "device": stage.device,
    }


# ----------------------------------------------------------------------------- main


def describe(args: argparse.Namespace, cfg: RunConfig, counts: list[int], hf_pairs: int,
             cores: int) -> None:
    """Print what is measured, on what."""
    print(f"label benchmark ({'quick' if args.quick else 'full'}): "
          f"{args.config} {' '.join(args.overrides)}".rstrip())
    print(f"device: cpu, {cores} cores ({platform.processor() or platform.machine()}); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"labeling: backend=oracle abstraction={cfg.labeling.abstraction} "
          f"llm_states_per_goal={cfg.labeling.llm_states_per_goal} "
          f"reward_model={cfg.labeling.reward_model}; "
          f"num_train_goals {', '.join(_goals_name(n) for n in counts)} "
          f"(headline: {_goals_name(cfg.env.num_train_goals)}); hf pairs {hf_pairs}")


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """The oracle pipeline per goal count, then the hf judge, in one temporary root."""
    quiet()
    cfg = build_config(args)
    counts = goal_counts(args, cfg)
    hf_pairs = args.hf_pairs or (QUICK_HF_PAIRS if args.quick else FULL_HF_PAIRS)
    cores = os.cpu_count() or 1
    describe(args, cfg, counts, hf_pairs, cores)
    load_before = os.getloadavg()[0]
    root = tempfile.mkdtemp(prefix="bench-label-")
    try:
        ray_info, rows = measure_pipeline(cfg, counts, cores, root)
        headline = rows[counts.index(cfg.env.num_train_goals)]
        headline_cfg = dataclasses.replace(
            cfg, run_dir=os.path.join(root, f"goals-{_goals_name(cfg.env.num_train_goals)}"))
        print_scaling(rows)
        threads = args.hf_threads or cfg.labeling.torch_threads
        hf = measure_hf(headline_cfg, hf_pairs, args.hf_micro_batch, threads, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()[0]
    print(f"load average before {load_before:.2f}, after {load_after:.2f} ({cores} cores)")
    return {
        **headline,
        "scaling": rows,
        **hf,
        **ray_info,
        "target_met": (headline["llm_call_fraction"] <= TARGET_FRACTION
                       and headline["precision"] >= TARGET_PRECISION),
        "cores": cores,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "config": args.config,
        "overrides": list(args.overrides),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = benchmark(args)
    except TeduoError as exc:
        print(f"benchmarks.label: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"label: {results['label_seconds']:.2f} s, {results['pairs_per_s']:.0f} pairs/s; "
          f"llm precision {results['llm_precision']:.3f} recall {results['llm_recall']:.3f}; "
          f"final recall {results['recall']:.3f}")
    print(f"target (llm_call_fraction <= {TARGET_FRACTION}, precision >= {TARGET_PRECISION}): "
          f"{'met' if results['target_met'] else 'not met'}")
    print(f"hf_speedup={results['hf_speedup']:.2f} ({results['hf_labels_per_s']:.1f} vs "
          f"{results['hf_unbatched_labels_per_s']:.1f} labels/s, "
          f"max |diff| {results['hf_max_abs_diff']:.2e})")
    print(f"llm_call_fraction={results['llm_call_fraction']:.4f} "
          f"precision={results['precision']:.3f}")
    return 0 if results["hf_same"] else 1


if __name__ == "__main__":
    sys.exit(main())
