"""The fine-tuned model's action distribution on its own SFT examples, for a few keys.

Usage: python docs/checks/issue15/offline_probs.py RUN_DIR
Keys as in agent_vs_table.py (goal type, goal object's position, carrying); prints the mean
sampled-action distribution (temperature 0.7) next to the labels' first actions.
"""
import glob, re, sys
import numpy as np, pyarrow.parquet as pq
from teduo_ray.config import load_config
from teduo_ray.envs import get_adapter
from teduo_ray.evaluation.methods import build_policy
rd = sys.argv[1]
cfg = load_config("jobs/tiny.yaml", [f"run_dir={rd}", "eval.llm_in_actor=false", "eval.llm_replicas=1"])
cat = {e.goal_id: e.goal.type for e in get_adapter(cfg.env, cfg.seed).goal_catalogue()}
GOAL = re.compile(r"goal object ([^.]*)\."); CARRY = re.compile(r"you carry ([^.]*)\.")
def key(t, gt):
    g = GOAL.search(t); c = CARRY.search(t)
    return (gt, g.group(1) if g else "none", c.group(1) if c else "?")
rows = pq.read_table(glob.glob(f"{rd}/sft/*.parquet")).to_pylist()
want = [("pick_up", "1 step forward", "nothing"), ("go_to", "2 steps forward", "nothing"), ("go_to", "3 steps left", "nothing"), ("pick_up", "1 step right", "nothing")]
pol = build_policy(cfg, "finetuned")
inner = getattr(pol, "policy", pol)
for w in want:
    ex = [r for r in rows if key(r["state_text"], cat[r["goal_id"]]) == w][:64]
    prompts = [inner.prompt(r["state_text"], r["goal_text"]) for r in ex]
    s = inner.action_logits(prompts)
    z = s / 0.7; p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    lab = np.bincount([r["actions"][0] for r in ex], minlength=7) / len(ex)
    print(w, len(ex), "model", np.round(p.mean(0), 2), "labels", np.round(lab, 2))
