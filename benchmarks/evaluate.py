"""Benchmark of `teduo evaluate`: the batched LLM policy vs one-episode-at-a-time generation.

Usage:
    python -m benchmarks.evaluate [--quick] [--json OUT] [--baseline-episodes K] [key=value ...]

What it measures, in one run, on the same episodes (the tiny job's evaluation plan: four
cells, feasible goals, seeded starts) and the same model (a tiny Llama built with
llm/tiny.py on the environment's words; untrained: throughput does not need training):
- candidate: the evaluation path itself, ``rollout.run_episodes`` with ``LLMPolicy``: episodes
  live in Ray environment actors and every step ALL live episodes go through one batched
  forward pass (micro-batches of ``eval.llm_batch_size``), restricted to the action digits;
  the headline candidate runs that policy data-parallel in ``eval.llm_replicas`` Ray actors
  (``eval.llm_in_actor``; jobs/tiny.yaml: 2, one per core; ``--replicas`` overrides) and the
  same policy in the driver (one process, the pure batching gain) is timed as well and
  printed as ``speedup_single_process``; the two must take identical episodes;
- baseline: a plain loop, one episode at a time in one process: every step
  ``model.generate`` on that episode's single prompt (greedy, ``--new-tokens`` tokens, enough
  for "[a, "), the first action parsed with ``sft.prompt.first_action`` (0 when the untrained
  model's text has none);
both with the same torch threads. With ``--baseline-episodes K`` the baseline runs the first K
episodes of each cell and is scaled by steps. Ray start-up is excluded and printed apart.
Both sides rarely succeed with an untrained model, so episodes run close to the step limit
on both; steps/s are printed too. ``--quick``: 10 episodes per cell, 16 steps; default: 50
per cell, 32 steps. Last line: ``speedup=<x>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def corpus(cfg, specs) -> list[str]:  # type: ignore[no-untyped-def]
    """The tiny tokenizer's texts: goals, prompts, and rendered start states of the episodes."""
    from teduo_ray.envs.babyai.text import render_state
    from teduo_ray.envs.babyai.world import BabyAIWorld
    from teduo_ray.labeling.vocabulary import vocabulary_corpus
    from teduo_ray.sft.prompt import ACTION_LIST, SYSTEM_PROMPT, answer

    texts = vocabulary_corpus(cfg) + [SYSTEM_PROMPT, ACTION_LIST] * 20
    texts += [answer(np.random.default_rng(i).integers(0, 7, size=5)) for i in range(200)]
    world = BabyAIWorld(cfg.env.level)
    for s in specs[:: max(1, len(specs) // 200)]:
        texts.append(render_state(world.reset(s.layout, np.random.default_rng(list(s.start_seed))), cfg.env.text_mode))
    return texts


def baseline_episode(policy, world, spec, selection: str, max_steps: int, new_tokens: int) -> tuple[bool, int]:  # type: ignore[no-untyped-def]
    """One episode, one ``generate`` call per step; returns (success, steps)."""
    import torch

    from teduo_ray.evaluation.policy import Query
    from teduo_ray.sft.prompt import first_action

    tok, model = policy.tokenizer, policy.model
    state = world.reset(spec.layout, np.random.default_rng(list(spec.start_seed)), spec.goal)
    for step in range(1, max_steps + 1):
        query = Query(state, spec.goal_text, spec.goal.key, spec.goal_id, selection)
        prompt = policy.prompts([query])[0][: -len("[")]  # the plain chat prompt; the model writes "["
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(policy.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        action = first_action(text)
        if world.step(0 if action is None else action):
            return True, step
        state = world.state()
    return False, max_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 episodes per cell, 16 steps")
    parser.add_argument("--baseline-episodes", type=int, default=None,
                        help="baseline episodes per cell (scaled by steps; default: all)")
    parser.add_argument("--new-tokens", type=int, default=4, help="tokens the baseline generates per step")
    parser.add_argument("--replicas", type=int, default=None,
                        help="LLM actors of the headline candidate (default: the job's eval.llm_replicas when "
                             "eval.llm_in_actor, else 1 = the policy in the driver only)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of jobs/tiny.yaml")
    args = parser.parse_args(argv)
    per_cell, steps = (10, 16) if args.quick else (50, 32)

    import ray

    from teduo_ray.config import load_config
    from teduo_ray.envs.babyai.world import BabyAIWorld
    from teduo_ray.evaluation.episodes import plan_episodes
    from teduo_ray.evaluation.llm_policy import LLMPolicy
    from teduo_ray.evaluation.rollout import make_actors, run_episodes
    from teduo_ray.evaluation.selection import _rules
    from teduo_ray.llm.tiny import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    try:
        cfg = load_config(REPO / "jobs" / "tiny.yaml", [
            f"run_dir={tmp / 'run'}", f"eval.episodes_per_cell={per_cell}", f"eval.max_steps={steps}",
            "eval.temperature=0", *args.overrides])
        specs, _ = plan_episodes(cfg)
        if args.replicas is None:
            args.replicas = cfg.eval.llm_replicas if cfg.eval.llm_in_actor else 1
        selections = {s.goal_id: _rules(s.goal_text)[0] for s in specs}
        print("building the tiny model ...", flush=True)
        model_dir = build_tiny_model(tmp / "model", corpus(cfg, specs))
        ev = cfg.eval
        policy = LLMPolicy(str(model_dir), cfg.env.text_mode, 0.0, ev.llm_batch_size, ev.torch_threads, "bench")
        params = sum(p.numel() for p in policy.model.parameters())

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=256 << 20)
        actors = make_actors(cfg)
        ray.get([a.start.remote([], steps) for a in actors])
        startup = time.perf_counter() - t0

        t0 = time.perf_counter()
        results = run_episodes(cfg, policy, specs, selections, np.random.default_rng(0), actors)
        single_seconds = time.perf_counter() - t0
        cand_steps = sum(r.steps for r in results)
        replicas = 1
        seconds = single_seconds
        if args.replicas > 1:  # the same batched policy, data-parallel over LLM actors (eval.llm_replicas)
            from teduo_ray.evaluation.methods import LLMReplicas

            replicas = args.replicas
            remote = LLMReplicas(lambda: LLMPolicy(str(model_dir), cfg.env.text_mode, 0.0, ev.llm_batch_size,
                                                   ev.torch_threads, "bench"),
                                 "bench", replicas, num_cpus=ev.actor_cpus, num_gpus=0.0, temperature=0.0)
            ray.get([a.scores.remote([]) for a in remote.actors])  # loaded before the clock starts
            t0 = time.perf_counter()
            rep_results = run_episodes(cfg, remote, specs, selections, np.random.default_rng(0), actors)
            seconds = time.perf_counter() - t0
            remote.close()
            same = sum(a.success == b.success and a.steps == b.steps for a, b in zip(results, rep_results))
            print(f"{replicas} replicas vs the driver policy: {same}/{len(results)} episodes identical")
        ray.shutdown()

        k = args.baseline_episodes or per_cell
        base_specs = [s for s in specs if s.episode_id % per_cell < k]
        world = BabyAIWorld(cfg.env.level)
        t0 = time.perf_counter()
        base = [baseline_episode(policy, world, s, selections[s.goal_id], steps, args.new_tokens) for s in base_specs]
        base_measured = time.perf_counter() - t0
        base_steps = sum(n for _, n in base)
        base_steps_per_s = base_steps / base_measured
        base_seconds = cand_steps / base_steps_per_s if k < per_cell else base_measured

        result = {
            "episodes": len(specs),
            "max_steps": steps,
            "model_parameters": params,
            "torch_threads": ev.torch_threads,
            "env_actors": len(actors),
            "seconds": seconds,
            "episodes_per_s": len(specs) / seconds,
            "steps_per_s": cand_steps / seconds,
            "steps": cand_steps,
            "success": float(np.mean([r.success for r in results])),
            "baseline_seconds": base_seconds,
            "baseline_episodes_measured": len(base_specs),
            "baseline_extrapolated": k < per_cell,
            "baseline_episodes_per_s": len(specs) / base_seconds,
            "baseline_steps_per_s": base_steps_per_s,
            "baseline_steps": base_steps,
            "baseline_success": float(np.mean([s for s, _ in base])),
            "speedup": base_seconds / seconds,
            "llm_replicas": replicas,
            "single_process_seconds": single_seconds,
            "single_process_episodes_per_s": len(specs) / single_seconds,
            "speedup_single_process": base_seconds / single_seconds,
            "ray_startup_s": startup,
            "device": policy.device,
            "cores": os.cpu_count(),
        }
        print(f"evaluate benchmark: {len(specs)} episodes (4 cells x {per_cell}), max_steps {steps}, "
              f"tiny Llama {params / 1e6:.2f}M params, {ev.torch_threads} torch thread(s); "
              f"device {policy.device} ({platform.machine()})")
        print(f"ray start-up + {len(actors)} env actors (excluded): {startup:.1f} s")
        print(f"batched LLM policy in the driver (1 process), Ray env actors: {single_seconds:8.2f} s  "
              f"{result['single_process_episodes_per_s']:.2f} episodes/s  "
              f"speedup_single_process={result['speedup_single_process']:.1f}")
        if replicas > 1:
            print(f"candidate (batched LLM policy in {replicas} Ray actors, eval.llm_replicas={replicas}): "
                  f"{seconds:8.2f} s  {result['episodes_per_s']:.2f} episodes/s, {result['steps_per_s']:.0f} steps/s")
        scaled = f" (measured on {len(base_specs)} episodes, scaled by steps)" if k < per_cell else ""
        print(f"baseline  (one episode at a time, generate per step): {base_seconds:8.2f} s{scaled}  "
              f"{result['baseline_episodes_per_s']:.2f} episodes/s, {base_steps_per_s:.0f} steps/s ({base_steps} steps)")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"speedup={result['speedup']:.1f}")
        return 0
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
