"""Benchmark of the LLM agent's score cache (``eval.llm_cache_entries``) on a finished run.

Usage:
    python -m benchmarks.eval_cache JOB [--episodes-per-cell N] [--method finetuned] [--json OUT] [key=value ...]

In one run, on the same episodes (JOB's evaluation plan cut to N episodes per cell), the
same model (the run's fine-tuned agent) and the same policy generator, the evaluation loop
(``rollout.run_episodes`` with the job's LLM replicas) runs twice:
- baseline: ``eval.llm_cache_entries=0``, every query of every step rendered and scored;
- candidate: the job's cache size, repeated (state, goal) queries answered from the cache.
Prints seconds, steps/s, forward vs cached prompts, whether the episodes are identical
(success and steps of each), and ``speedup=<baseline / candidate>`` last. Needs JOB's run
directory with the method's model (``teduo run JOB --until finetune``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def run_once(job: str, overrides: list[str], method: str) -> dict[str, Any]:
    from teduo_ray.config import load_config
    from teduo_ray.evaluation.evaluate import planned_episodes, policy_rng
    from teduo_ray.evaluation.methods import build_policy
    from teduo_ray.evaluation.rollout import make_actors, run_episodes
    from teduo_ray.rundir import RunDir
    from teduo_ray.runtime import init_ray

    cfg = load_config(job, overrides)
    init_ray(cfg.ray)
    specs, _, chosen = planned_episodes(cfg, RunDir(cfg.run_dir))
    selections = {g: v["selection"] for g, v in chosen.items()}
    policy = build_policy(cfg, method)
    actors = make_actors(cfg)
    start = time.perf_counter()
    results = run_episodes(cfg, policy, specs, selections, policy_rng(cfg, method), actors)
    seconds = time.perf_counter() - start
    stats = policy.stats() if hasattr(policy, "stats") else {}
    if hasattr(policy, "close"):
        policy.close()
    steps = sum(r.steps for r in results)
    return {"seconds": round(seconds, 2), "episodes": len(results), "steps": steps,
            "steps_per_s": round(steps / seconds, 1), "successes": sum(r.success for r in results),
            **stats, "signature": [(bool(r.success), r.steps) for r in results]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("job")
    ap.add_argument("--episodes-per-cell", type=int, default=10)
    ap.add_argument("--method", default="finetuned")
    ap.add_argument("--json", default="")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args(argv)  # overrides may come before or after the options
    from teduo_ray.config import load_config

    cache = load_config(args.job, args.overrides).eval.llm_cache_entries or 200_000
    common = [*args.overrides, f"eval.episodes_per_cell={args.episodes_per_cell}"]
    base = run_once(args.job, [*common, "eval.llm_cache_entries=0"], args.method)
    cand = run_once(args.job, [*common, f"eval.llm_cache_entries={cache}"], args.method)
    identical = base.pop("signature") == cand.pop("signature")
    out = {"baseline_no_cache": base, "candidate_cache": cand, "cache_entries": cache,
           "identical_episodes": identical, "speedup": round(base["seconds"] / cand["seconds"], 2)}
    for name in ("baseline_no_cache", "candidate_cache"):
        print(f"{name:<18} {json.dumps(out[name])}")
    print(f"identical episodes: {identical}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print(f"speedup={out['speedup']}")


if __name__ == "__main__":
    main()
