"""One (layout, goal) pair of a finished tiny run, played by a method: the grid and each episode's actions.

Usage (from the repo root):
    python docs/checks/issue15/trace_episodes.py RUN_DIR CELL LAYOUT GOAL_ID [SHOWN] [METHOD]
e.g. ``RUN_DIR test/train 1000001 19``. Plays the run's planned episodes of CELL on LAYOUT for
GOAL_ID in one process (the job's temperature; METHOD defaults to "finetuned"), prints the
layout once (minigrid's two-letter tiles: object + colour initial, so grey and green both
read "G"), one line per episode (success, start tile and heading, the actions) and, for the
first SHOWN failures (default 2), the state text of their first 14 steps.
"""
import sys

import numpy as np

from teduo_ray.config import load_config
from teduo_ray.envs.babyai.constants import ACTION_NAMES
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.envs.babyai.world import BabyAIWorld
from teduo_ray.evaluation.evaluate import planned_episodes
from teduo_ray.evaluation.methods import build_policy
from teduo_ray.evaluation.policy import Query
from teduo_ray.labeling.abstraction import abstract_blobs, parse_selection
from teduo_ray.rundir import RunDir
from teduo_ray.runtime import init_ray

rd, cell, layout, gid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shown_max = int(sys.argv[5]) if len(sys.argv) > 5 else 2
method = sys.argv[6] if len(sys.argv) > 6 else "finetuned"
cfg = load_config("jobs/tiny.yaml", [f"run_dir={rd}", "eval.llm_in_actor=false", "eval.llm_replicas=1"])
init_ray(cfg.ray)
specs, _, sels = planned_episodes(cfg, RunDir(rd))
selection = sels[gid]["selection"]
specs = [s for s in specs if s.cell == cell and s.layout == layout and s.goal_id == gid]
policy = build_policy(cfg, method)
rng = np.random.default_rng(1)
world = BabyAIWorld(cfg.env.level)
shown = 0
for i, spec in enumerate(specs):
    state = world.reset(spec.layout, np.random.default_rng(list(spec.start_seed)), spec.goal)
    if i == 0:
        print(world.u.pprint_grid())
    start = (tuple(int(v) for v in world.u.agent_pos), int(world.u.agent_dir))
    steps: list[tuple[str, str]] = []
    success = False
    for _ in range(cfg.eval.max_steps):
        action = int(policy.act([Query(state, spec.goal_text, spec.goal.key, spec.goal_id, selection)], rng)[0])
        steps.append((ACTION_NAMES[action], render_state(abstract_blobs([state], parse_selection(selection))[0],
                                                        cfg.env.text_mode)))
        success = world.step(action)
        state = world.state()
        if success:
            break
    print(spec.goal_text, "success" if success else "FAIL", len(steps), "start", start, "|",
          ", ".join(a for a, _ in steps))
    if not success and shown < shown_max:
        shown += 1
        for action, text in steps[:14]:
            print(f"    {action:12s} <- {text[:180]}")
