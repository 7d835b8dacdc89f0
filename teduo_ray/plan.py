"""`teduo run JOB --dry-run`: what a job will ask of the cluster, before anything runs.

Sizes come from the config alone (plus the goal catalogue, which is cheap): episode and
shard counts are exact; transitions, states and everything derived from them are upper
bounds (episodes x step cap), since bot episodes end early.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.constants import NUM_ACTIONS


def _fmt(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}G"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:,.0f}"


def plan_rows(cfg: RunConfig) -> list[dict[str, Any]]:
    """One row per stage: its parallel units, resources and expected output size."""
    from teduo_ray.envs import get_adapter
    from teduo_ray.labeling.label import _goals_per_shard

    entries = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    train = sum(1 for e in entries if e.split == "train")
    test = len(entries) - train
    by_type = Counter(e.goal.type for e in entries if e.split == "train")
    goal_mix = ", ".join(f"{t} {n}" for t, n in sorted(by_type.items(), key=lambda kv: -kv[1]))
    episodes = cfg.env.train_layouts * cfg.data.episodes_per_layout
    transitions = episodes * cfg.data.max_episode_steps
    states = transitions + episodes  # upper bound: every step a new state
    lab, rl, sft, ev = cfg.labeling, cfg.rl, cfg.sft, cfg.eval
    requests = train * min(lab.llm_states_per_goal, states)
    llm_calls = requests + (train if lab.abstraction == "llm" else 0)
    pairs = train * states
    label_shards = math.ceil(train / _goals_per_shard(states))
    q_bytes = rl.goals_per_shard * states * NUM_ACTIONS * 4  # float32 Q of one goal shard
    examples = train * episodes  # upper bound: one per (goal, start state)
    train_examples = examples * (1 - sft.val_fraction)
    steps = math.ceil(train_examples / (sft.batch_size * sft.num_workers)) * sft.epochs
    methods = getattr(ev, "methods", ())
    algos = getattr(rl, "baselines", ())
    ray = cfg.ray
    cluster = ray.address or "local Ray (or RAY_ADDRESS)"
    return [
        {"stage": "goals", "units": f"{train} train + {test} test", "resources": "-",
         "size": f"train by type: {goal_mix}"},
        {"stage": "cluster", "units": cluster, "resources": f"num_cpus={ray.num_cpus or 'all'}",
         "size": f"run_dir={cfg.run_dir}"},
        {"stage": "collect", "units": f"{math.ceil(episodes / cfg.data.episodes_per_shard)} shard tasks",
         "resources": f"{ray.collect_cpus_per_task} CPU/task",
         "size": f"{_fmt(episodes)} episodes, <= {_fmt(transitions)} transitions"},
        {"stage": "label", "units": f"{lab.num_actors} {lab.backend} actors, {_fmt(math.ceil(requests / lab.requests_per_shard))} request shards, {label_shards} label shards",
         "resources": (f"{lab.actor_cpus} CPU + {lab.tensor_parallel} GPU/actor (tensor parallel)"
                       if lab.backend == "vllm" else f"{lab.actor_cpus} CPU + {lab.actor_gpus} GPU/actor"),
         "size": f"{train} train + {test} test goals; <= {_fmt(states)} states; {_fmt(llm_calls)} LLM calls; <= {_fmt(pairs)} (state, goal) pairs"},
        {"stage": "learn", "units": f"{rl.num_actors} actors, {math.ceil(train / rl.goals_per_shard)} goal shards",
         "resources": f"{rl.actor_cpus} CPU/actor, <= {_fmt(q_bytes / 2**20)} MiB Q per shard",
         "size": f"<= {_fmt(pairs)} (goal, state) policy rows"},
        {"stage": "baselines", "units": ", ".join(algos) or "none", "resources": "RLlib learner on the driver node",
         "size": "one RLlib checkpoint per algorithm"},
        {"stage": "distill", "units": f"{math.ceil(train / rl.goals_per_shard)} rollout tasks",
         "resources": f"{rl.actor_cpus} CPU/task", "size": f"<= {_fmt(examples)} SFT examples"},
        {"stage": "finetune", "units": f"{sft.num_workers} Ray Train workers, ZeRO-{sft.zero_stage}"
                                       + (f", LoRA r={sft.lora_rank}" if sft.lora_rank else ", full"),
         "resources": f"{'1 GPU' if sft.use_gpu else 'CPU'}/worker, model {sft.model}",
         "size": f"<= {_fmt(steps)} optimizer steps ({sft.epochs} epochs)"},
        {"stage": "evaluate", "units": f"{ev.num_actors} env actors, {len(methods) or '?'} methods",
         "resources": "policy on the driver (LLM batched)",
         "size": f"{_fmt(4 * ev.episodes_per_cell * max(1, len(methods)))} episodes, <= {ev.max_steps} steps each"},
    ]


def plan(cfg: RunConfig) -> str:
    """The dry-run plan as a text table."""
    rows = plan_rows(cfg)
    width = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in ("stage", "units", "resources")}
    head = f"{'stage':<{width['stage']}}  {'parallel units':<{width['units']}}  {'resources':<{width['resources']}}  expected size"
    lines = [f"plan for {cfg.run_dir} (dry run: nothing was started)", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['stage']:<{width['stage']}}  {r['units']:<{width['units']}}  "
                     f"{r['resources']:<{width['resources']}}  {r['size']}")
    return "\n".join(lines)
