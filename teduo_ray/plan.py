"""`teduo run JOB --dry-run`: what a job will ask of the cluster, before anything runs.

Sizes come from the config alone (plus the goal catalogue and the grid size, which are
cheap): episode and shard counts are exact; transitions, states and everything derived from
them are upper bounds (episodes x step cap), since bot episodes end early.

Memory per worker, the formulas printed (B = bytes of a state = 7 + 3 W H, K = 2 r + 1 the
reward model's view, A = 7 actions, S = distinct states):
- labeling worker: state_block x (4 B + K^2 (3 + 4 x 17)) bytes: a block of raw states, its
  room masks and one goal's abstraction, the egocentric codes, and float planes for the
  inputs not scored yet; independent of the number of goals;
- reward-model fit task: P x (17 K^2 + 120) bytes + one request batch (16,384 x B),
  P = labeling.reward_max_pairs (the labeler calls when it is 0): the sampled pairs' uint8
  input planes, float vectors and ids; bounded by the pair cap, whatever the number of goals;
- Q-learning actor: S x A x 8 (the empirical model) + goals_per_shard x S x (4 A + 13)
  (next-state distances, BFS state) bytes;
- distill task: S x A x 8 (the empirical model) + goals_per_shard x S x 14 (achieved
  flags, the shard's policy rows) + 24 S (one goal's policy and rollout state) bytes;
- driver: the picked (goal, state) ids, 8 bytes per labeler call; no per-pair table.
SFT examples grow with goals x (states a goal's rollouts pass through): what TEDUO trains
on; ``rl.sft_max_examples_per_goal`` bounds them by config.
Tables are sparse (layout.py): labels hold achieved + judged pairs, policies the states each
goal is reachable from.
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
    from teduo_ray.labeling.features import PLANES, view_radius
    from teduo_ray.labeling.reward_fit import REQUEST_BATCH

    adapter = get_adapter(cfg.env, cfg.seed)
    entries = adapter.goal_catalogue()
    width, height = adapter.grid_size
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
    label_shards = math.ceil(train / lab.goals_per_task)
    state_bytes = 7 + 3 * width * height
    radius = min(lab.reward_view_radius or view_radius(width, height), view_radius(width, height))
    view = (2 * radius + 1) ** 2
    label_mb = min(lab.state_block, states) * (4 * state_bytes + view * (3 + 4 * PLANES)) / 2**20
    fit_mb = ((lab.reward_max_pairs or requests) * (PLANES * view + 120) + REQUEST_BATCH * state_bytes) / 2**20
    learn_mb = states * NUM_ACTIONS * 8 / 2**20 + rl.goals_per_shard * states * (4 * NUM_ACTIONS + 13) / 2**20
    distill_mb = (states * NUM_ACTIONS * 8 + rl.goals_per_shard * states * 14 + 3 * 8 * states) / 2**20
    # examples per goal: at most its start states (every state a rollout visits, when
    # "visited"), each state once, so <= the distinct states; the cap bounds it by config
    per_goal = min(episodes * (rl.rollout_max_steps if rl.sft_states == "visited" else 1), states)
    capped = bool(rl.sft_max_examples_per_goal)
    if capped:
        per_goal = min(per_goal, rl.sft_max_examples_per_goal)
    examples = train * per_goal * (2 if rl.sft_mirror else 1)
    train_examples = examples * (1 - sft.val_fraction)
    steps = math.ceil(train_examples / (sft.batch_size * sft.num_workers)) * sft.epochs
    base_radius = min(rl.baseline_view_radius or view_radius(width, height), view_radius(width, height))
    # the export's observations (obs + new_obs, float32) of every row, held by the RLlib learner
    base_mb = 2 * 2 * rl.baseline_max_rows * 4 * (PLANES * (2 * base_radius + 1) ** 2) / 2**20
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
                       if lab.backend == "vllm" else f"{lab.actor_cpus} CPU + {lab.actor_gpus} GPU/actor")
                      + f"; <= {_fmt(label_mb)} MiB/labeling worker (state_block={lab.state_block})"
                      + f"; <= {_fmt(fit_mb)} MiB/reward-model fit task (reward_max_pairs={lab.reward_max_pairs})",
         "size": f"{train} train + {test} test goals; <= {_fmt(states)} states; {_fmt(llm_calls)} labeler calls; "
                 f"{_fmt(pairs)} pairs scored, rows written: {_fmt(requests)} judged + the achieved ones"},
        {"stage": "learn", "units": f"{rl.num_actors} actors, {math.ceil(train / rl.goals_per_shard)} goal shards",
         "resources": f"{rl.actor_cpus} CPU/actor, <= {_fmt(learn_mb)} MiB/actor (goals_per_shard={rl.goals_per_shard})",
         "size": "policy rows: per goal the states it is reachable from (action, steps)"},
        {"stage": "baselines", "units": ", ".join(algos) or "none", "resources": "RLlib learner on the driver node"
                      + (f"; ~{_fmt(base_mb)} MiB of observations (2 datasets x baseline_max_rows="
                         f"{rl.baseline_max_rows}, view {2 * base_radius + 1}x{2 * base_radius + 1})" if algos else ""),
         "size": "one RLlib checkpoint per algorithm"},
        {"stage": "distill", "units": f"{math.ceil(train / rl.goals_per_shard)} rollout tasks",
         "resources": f"{rl.actor_cpus} CPU/task, <= {_fmt(distill_mb)} MiB/task (goals_per_shard={rl.goals_per_shard})",
         "size": (f"<= {_fmt(per_goal)} SFT examples per goal (rl.sft_max_examples_per_goal)"
                  + (", each also mirrored (rl.sft_mirror)" if rl.sft_mirror else "") + f", <= {_fmt(examples)} in all"
                  if capped else "SFT examples: per goal its states that reach the goal; uncapped, "
                  "so set rl.sft_max_examples_per_goal to bound fine-tuning")},
        {"stage": "finetune", "units": f"{sft.num_workers} Ray Train workers, ZeRO-{sft.zero_stage}"
                                       + (f", LoRA r={sft.lora_rank}" if sft.lora_rank else ", full"),
         "resources": f"{'1 GPU' if sft.use_gpu else 'CPU'}/worker, model {sft.model}",
         "size": (f"<= {_fmt(steps)} optimizer steps ({sft.epochs} epochs)" if capped
                  else f"{sft.epochs} epochs over distill's examples ({sft.batch_size} x {sft.num_workers} per step)")},
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
