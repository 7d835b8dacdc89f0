"""Diagnose the fine-tuned tiny agent online vs a 3-feature lookup table from its SFT data.

Usage (from the repo root, on a finished tiny run):
    python docs/checks/issue15/agent_vs_table.py RUN_DIR [CELLS] [EPISODES]
e.g. ``RUN_DIR test/test 200``. Plays the same episodes with the fine-tuned model and with a
lookup table of the run's SFT data keyed by (goal type, the goal object's relative position,
carrying), sampled at the job's temperature; prints success and invalid-action rates per
(cell, goal type) and, for the states the agent visits most, its action distribution next to
the table's. The table reads the PARSED goal type, which the model has to infer from words.
"""
import collections
import glob
import re
import sys

import numpy as np
import pyarrow.parquet as pq

from teduo_ray.config import load_config
from teduo_ray.envs import get_adapter
from teduo_ray.evaluation.evaluate import planned_episodes
from teduo_ray.evaluation.llm_policy import choose, state_texts
from teduo_ray.evaluation.methods import build_policy
from teduo_ray.evaluation.rollout import run_episodes
from teduo_ray.rundir import RunDir
from teduo_ray.runtime import init_ray

rd = sys.argv[1]
cells = sys.argv[2].split(",") if len(sys.argv) > 2 else ["test/test"]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
cfg = load_config("jobs/tiny.yaml", [f"run_dir={rd}", "eval.llm_in_actor=false", "eval.llm_replicas=1", f"eval.episodes_per_cell={n}"])
run = RunDir(rd)
init_ray(cfg.ray)
specs, empty, sels = planned_episodes(cfg, run)
sel_json = {gid: v["selection"] for gid, v in sels.items()}
specs = [s for s in specs if s.cell in cells]
cat = {e.goal_id: e for e in get_adapter(cfg.env, cfg.seed).goal_catalogue()}
gtype = {gid: e.goal.type for gid, e in cat.items()}

GOAL = re.compile(r"goal object ([^.]*)\.")
CARRY = re.compile(r"you carry ([^.]*)\.")


def key(text, gt):
    g = GOAL.search(text)
    c = CARRY.search(text)
    return (gt, g.group(1) if g else "none", c.group(1) if c else "?")


sft = pq.read_table(glob.glob(f"{rd}/sft/*.parquet")).to_pylist()
counts = collections.defaultdict(lambda: np.zeros(7))
for r in sft:
    counts[key(r["state_text"], gtype[r["goal_id"]])][r["actions"][0]] += 1
T = cfg.eval.temperature


class Rec:
    def __init__(self, inner, name):
        self.inner, self.name, self.log = inner, name, []

    def act(self, queries, rng):
        texts = state_texts(queries, cfg.env.text_mode)
        if self.inner is None:  # the table
            p = np.zeros((len(queries), 7))
            for i, (q, t) in enumerate(zip(queries, texts)):
                c = counts.get(key(t, gtype[q.goal_id]))
                p[i] = c ** (1 / T) if c is not None and c.sum() else np.array([1, 1, 1, 0, 0, 0, 0.0])
            p /= p.sum(1, keepdims=True)
            u = rng.random(len(p))[:, None]
            a = np.minimum((p.cumsum(1) < u).sum(1), 6)
        else:
            s = self.inner.scores(queries)
            z = s / T
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            a = choose(s, T, rng)
        for q, t, pi, ai in zip(queries, texts, p, a):
            self.log.append((q.goal_id, key(t, gtype[q.goal_id]), pi, int(ai), t))
        return a


model = build_policy(cfg, "finetuned")
out = {}
for name, inner in (("table", None), ("finetuned", model)):
    pol = Rec(inner, name)
    res = run_episodes(cfg, pol, specs, sel_json, np.random.default_rng(1))
    by = collections.defaultdict(list)
    for r in res:
        by[(r.spec.cell, r.spec.goal_type)].append(r)
    print(f"== {name}")
    for k, rs in sorted(by.items()):
        succ = np.mean([r.success for r in rs])
        inv = sum(r.invalid for r in rs) / max(1, sum(r.steps for r in rs))
        print(f"  {k}: n={len(rs)} success={succ:.2f} invalid={inv:.2f} mean_len={np.mean([r.length for r in rs]):.1f}")
    out[name] = pol.log

# where the two differ: per visited key, the model's mean action distribution vs the table's
kc = collections.Counter(k for _, k, _, _, _ in out["finetuned"])
print("\nfinetuned: most visited keys; model mean p vs table p (from SFT counts)")
for k, c in kc.most_common(25):
    ps = np.mean([p for _, kk, p, _, _ in out["finetuned"] if kk == k], axis=0)
    tab = counts.get(k)
    tp = (tab ** (1 / T)) / (tab ** (1 / T)).sum() if tab is not None and tab.sum() else None
    print(f"  {c:5d} {k}  model={np.round(ps, 2)}  table={np.round(tp, 2) if tp is not None else 'UNSEEN'} n_sft={int(tab.sum()) if tab is not None else 0}")
unseen = sum(c for k, c in kc.items() if k not in counts)
print(f"visited steps with a key absent from SFT: {unseen}/{sum(kc.values())}")
# examples of pick-up facing states
ex = [(p, a, t) for g, k, p, a, t in out["finetuned"] if k[0] == "pick_up" and k[1] == "1 step forward"]
print(f"pick_up facing steps: {len(ex)}; mean p={np.round(np.mean([e[0] for e in ex], 0), 2) if ex else None}")
for p, a, t in ex[:5]:
    print("   ", np.round(p, 2), a, t[:200])
