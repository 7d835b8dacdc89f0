"""Where the fine-tuned tiny agent fails: the final state of every failed episode, as it saw it.

Usage (from the repo root, on a finished tiny run):
    python docs/checks/issue15/failures.py RUN_DIR [CELLS] [EPISODES]
e.g. ``RUN_DIR test/train 500``. Plays the run's planned episodes of CELLS with the fine-tuned
model (one process, the job's temperature), renders each failure's last state through the
goal's abstraction and counts: what the agent carries, the goal object's relative position,
how many failures end with an obstacle or a wall directly in front, how many end with the goal
object 2+ steps straight ahead behind an obstacle, and the share of invalid steps in failures.
"""
import collections
import re
import sys

import numpy as np

from teduo_ray.config import load_config
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.evaluation.evaluate import planned_episodes
from teduo_ray.evaluation.methods import build_policy
from teduo_ray.evaluation.rollout import run_episodes
from teduo_ray.labeling.abstraction import abstract_blobs, parse_selection
from teduo_ray.rundir import RunDir
from teduo_ray.runtime import init_ray

rd = sys.argv[1]
cells = sys.argv[2].split(",") if len(sys.argv) > 2 else ["test/train"]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
cfg = load_config("jobs/tiny.yaml", [f"run_dir={rd}", "eval.llm_in_actor=false", "eval.llm_replicas=1",
                                     f"eval.episodes_per_cell={n}"])
init_ray(cfg.ray)
specs, _, sels = planned_episodes(cfg, RunDir(rd))
selection = {gid: v["selection"] for gid, v in sels.items()}
specs = [s for s in specs if s.cell in cells]
results = run_episodes(cfg, build_policy(cfg, "finetuned"), specs, selection, np.random.default_rng(1))
fails = [r for r in results if not r.success]
texts = [render_state(abstract_blobs([r.final_state], parse_selection(selection[r.spec.goal_id]))[0],
                      cfg.env.text_mode) for r in fails]
goal = re.compile(r"goal object ([^.]*)\.")
carry = re.compile(r"you carry ([^.]*)\.")
ahead = re.compile(r"goal object (\d+) steps? forward\.")
blocked = ["obstacle 1 step forward." in t or "walls: 1 forward" in t for t in texts]
behind_obstacle = [bool(m and int(m.group(1)) >= 2) for m in map(ahead.search, texts)]
print(f"{len(fails)} failures of {len(results)} episodes in {cells}")
print("carrying:", collections.Counter(carry.search(t).group(1) for t in texts).most_common())
print("invalid share of the failures' steps:", round(sum(r.invalid for r in fails) / max(1, sum(r.steps for r in fails)), 2))
print("ending with an obstacle or a wall in front:", sum(blocked))
print("goal object 2+ steps straight ahead:", sum(behind_obstacle),
      "of which an obstacle in front:", sum(b and "obstacle 1 step forward." in t
                                           for b, t in zip(behind_obstacle, texts)))
for (gt, where), c in collections.Counter((r.spec.goal_type, (goal.search(t) or [None, "none"])[1])
                                          for r, t in zip(fails, texts)).most_common(12):
    print(f"  {c:4d} {gt} goal object {where}")
for r, t in list(zip(fails, texts))[:5]:
    print(f"  e.g. {r.spec.goal_type}, {r.invalid}/{r.steps} invalid: {t[:240]}")
