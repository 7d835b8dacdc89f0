"""`teduo report`: one page per run (report.md and report.html, PNG figures in report/).

It reads only what the stages wrote (eval/summary.json, finetune/history.json,
rewards/accuracy.json, sft/_manifest.json, metrics/stages.json) and shows whatever exists,
so it also works on a partial run. The verdict compares the fine-tuned agent with the random
and Q-table policies on unseen layouts and on unseen goals, as the paper does; it says
"not ahead" when that is what was measured.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.observability import load_stage_metrics
from teduo_ray.report import plots
from teduo_ray.rundir import RunDir

REPORT = "report"
KEYS = {"success": "eval/success", "success_se": "eval/success_se", "length": "eval/length",
        "invalid": "eval/invalid_pct", "episodes": "eval/episodes"}
UNSEEN = {"unseen layouts": "test/train", "unseen goals": "train/test", "unseen layouts and goals": "test/test"}

Block = tuple[Any, ...]  # ("h", text) | ("p", text) | ("table", header, rows) | ("img", file, alt)


def _read_json(run: RunDir, *parts: str) -> Any | None:
    return run.read_json(*parts) if run.exists(*parts) else None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def verdict(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Fine-tuned vs random, Q-table and RLlib BC (when evaluated) success on the unseen cells
    (one row per comparison)."""
    index = {(r["method"], r["cell"]): r for r in summary.get("by_cell", [])}
    rows = []
    for name, cell in UNSEEN.items():
        agent = index.get(("finetuned", cell))
        for baseline in ("random", "qtable", "bc"):
            other = index.get((baseline, cell))
            if agent is None or other is None:
                continue
            a, b = agent[KEYS["success"]], other[KEYS["success"]]
            se = (agent[KEYS["success_se"]] ** 2 + other[KEYS["success_se"]] ** 2) ** 0.5
            rows.append({"cell": name, "baseline": baseline, "finetuned": a, "other": b, "ahead": a > b,
                         "difference_se": se, "clear": abs(a - b) > 2 * se})
    return rows


def labeler_name(cfg: RunConfig) -> str:
    """Who labeled the (state, goal) pairs, in words: the oracle is not an LLM."""
    lab = cfg.labeling
    if lab.backend != "oracle":
        return f"LLM {lab.model} ({lab.backend} backend)"
    if lab.oracle_precision >= 1.0 and lab.oracle_recall >= 1.0:
        return "ground-truth oracle (exact; not an LLM)"
    return (f"ground-truth oracle corrupted to precision {lab.oracle_precision:g} / recall "
            f"{lab.oracle_recall:g} (not an LLM)")


def agent_name(cfg: RunConfig) -> str:
    """The agent's model, in words: the tiny model is built from scratch, not pretrained."""
    s = cfg.sft
    if s.model == "tiny":
        return (f"tiny Llama built from scratch ({s.tiny_layers} layers, width {s.tiny_hidden}; no pretraining, "
                f"tokenizer trained on training texts only)")
    return s.model + (f" + LoRA rank {s.lora_rank}" if s.lora_rank else "")


def setup_line(cfg: RunConfig) -> str:
    """What ran: labeler, abstraction, reward-model threshold and agent model."""
    lab = cfg.labeling
    per_type = ", per goal type" if lab.reward_model == "shared" else ", per goal"
    target = f"precision target {lab.precision_target:g}{per_type}" if lab.precision_target > 0 else "plain 0.5 cut"
    return (f"Labeler: {labeler_name(cfg)}; abstraction: {lab.abstraction}; reward model: {lab.reward_model} "
            f"({target}); agent: {agent_name(cfg)}.")


def method_label(method: str, cfg: RunConfig) -> str:
    """A method's row name: the tiny model's "prompted" baseline is an untrained, random-weight
    model, not a prompted LLM, and is named so."""
    if method == "prompted" and cfg.sft.model == "tiny":
        return "prompted (untrained tiny LLM, random weights)"
    return method


def _word(c: dict[str, Any]) -> str:
    word = "ahead" if c["ahead"] else "NOT ahead"
    return word if c["clear"] else f"{word} (within 2 s.e.)"


def results_blocks(summary: dict[str, Any], checks: list[dict[str, Any]], cfg: RunConfig) -> list[Block]:
    cells = summary["cells"]
    index = {(r["method"], r["cell"]): r for r in summary["by_cell"]}
    header = ["method", *[plots.CELL_LABELS.get(c, c).replace("\n", " / ") for c in cells]]
    rows = []
    for method in summary["methods"]:
        row = [method_label(method, cfg)]
        for c in cells:
            r = index.get((method, c))
            row.append("-" if r is None else
                       f"{_pct(r[KEYS['success']])} +- {_pct(r[KEYS['success_se']])} / "
                       f"{r[KEYS['length']]:.1f} / {r[KEYS['invalid']]:.1f}")
        rows.append(row)
    blocks: list[Block] = [
        ("h", "Online evaluation"),
        ("p", f"Success % +- s.e. / episode length (the limit when failed) / invalid-action %; "
              f"{summary['episodes_per_cell']} (goal, layout, start) episodes per cell, step limit "
              f"{summary['max_steps']}, temperature {summary['temperature']}. {setup_line(cfg)}"),
        ("table", header, rows),
        ("img", "success_by_cell.png", "success by cell and method"),
    ]
    for method, reason in summary.get("skipped", {}).items():
        blocks.append(("p", f"Skipped {method}: {reason}"))
    if checks:
        lines = [[c["cell"], c["baseline"], _pct(c["finetuned"]), _pct(c["other"]),
                  f"{100 * (c['finetuned'] - c['other']):+.1f} +- {100 * c['difference_se']:.1f}", _word(c)]
                 for c in checks]
        blocks += [("h", "Verdict: fine-tuned agent vs baselines on unseen cells"),
                   ("table", ["cell", "baseline", "fine-tuned SR %", "baseline SR %", "difference (pp +- s.e.)",
                              "result"], lines)]
    return blocks


def build(cfg: RunConfig, run: RunDir) -> tuple[list[Block], dict[str, bytes], dict[str, Any]]:
    """The report's blocks, its figures and a machine-readable summary."""
    blocks: list[Block] = [("h1", f"TEDUO run report: {cfg.run_dir}"),
                           ("p", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}; env {cfg.env.level}, "
                                 f"text {cfg.env.text_mode}, seed {cfg.seed}. {setup_line(cfg)}")]
    figures: dict[str, bytes] = {}
    facts: dict[str, Any] = {}

    summary = _read_json(run, "eval", "summary.json")
    if summary and summary.get("by_cell"):
        facts["verdict"] = verdict(summary)
        blocks += results_blocks(summary, facts["verdict"], cfg)
        figures["success_by_cell.png"] = plots.success_by_cell(summary["by_cell"], summary["methods"],
                                                              summary["cells"], KEYS)
    else:
        blocks.append(("p", "No evaluation yet (run `teduo evaluate`)."))

    history = _read_json(run, "finetune", "history.json")
    if history:
        s = history["summary"]
        blocks += [("h", "Fine-tuning"),
                   ("table", ["train examples", "val examples", "steps", "best val loss",
                              "val first-action accuracy", "tokens/s", "worker start-up s"],
                    [[s["train_examples"], s["val_examples"], s["steps"], f"{s['best_val_loss']:.4f}",
                      _pct(s["val_first_action_acc"]), f"{s['tokens_per_s']:.0f}", f"{s['startup_seconds']:.1f}"]]),
                   ("img", "loss.png", "training and validation loss")]
        figures["loss.png"] = plots.losses(history["history"])
        facts["finetune"] = s

    accuracy = _read_json(run, "rewards", "accuracy.json")
    if accuracy:
        calls = "LLM calls" if cfg.labeling.backend != "oracle" else "labeler calls"
        rows = [[{"llm": "labeler"}.get(src, src), scope, f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                 m["positives"]] for src in ("llm", "final") for scope, m in accuracy.get(src, {}).items()]
        blocks += [("h", "Labeling"),
                   ("p", f"{accuracy['llm_calls']} {calls} for {accuracy['pairs_labeled']} (state, goal) pairs "
                         f"(fraction {accuracy['llm_call_fraction']:.4f}); labeler: {labeler_name(cfg)}, "
                         f"abstraction {accuracy['abstraction']}."),
                   ("table", ["labels", "goal type", "precision", "recall", "positives"], rows),
                   ("img", "labeler.png", "labeler precision and recall")]
        figures["labeler.png"] = plots.labeler(accuracy)
        facts["labeling"] = {"llm_call_fraction": accuracy["llm_call_fraction"], "final": accuracy["final"].get("all")}

    sft = _read_json(run, "sft", "_manifest.json")
    if sft:
        goals = [g for rec in sft["shards"].values() for g in rec.get("goals", [])]
        fractions = [g["reachable"] / g["start_states"] for g in goals if g["start_states"]]
        if fractions:
            mean = sum(fractions) / len(fractions)
            rows = sum(int(r["rows"]) for r in sft["shards"].values())
            uncapped = sum(int(g.get("examples", 0)) for g in goals)
            kept = sum(int(g.get("kept", g.get("examples", 0))) for g in goals)
            capped = (f" (capped from {uncapped} by rl.sft_max_examples_per_goal: a seeded sample of each "
                      f"goal's examples)" if uncapped > kept else "")
            if rows > kept:
                capped += f", {kept} of them also mirrored left-right (rl.sft_mirror)"
            blocks += [("h", "Distillation data"),
                       ("p", f"{rows} SFT examples{capped}; the greedy Q "
                             f"policy reaches the goal from {mean:.1%} of start states per goal on average."),
                       ("img", "reachable.png", "reachable start states per goal")]
            figures["reachable.png"] = plots.reachable(fractions)
            facts["reachable_mean"] = mean

    stages = load_stage_metrics(run)
    if stages:
        latest: dict[str, dict[str, Any]] = {}
        for rec in stages:
            latest[rec["stage"]] = rec
        rows = [[r["stage"], r["status"], f"{r['seconds']:.1f}", r["rows"] if r["rows"] is not None else "-",
                 r["rows_per_s"] if r["rows_per_s"] is not None else "-", f"{r['driver_cpu_seconds']:.1f}",
                 f"{r['driver_peak_rss_mb']:.0f}",
                 f"{r['cluster'].get('nodes', '-')} / {r['cluster'].get('cpus', '-')} / {r['cluster'].get('gpus', '-')}"]
                for r in latest.values()]
        blocks += [("h", "Stages (latest run of each)"),
                   ("table", ["stage", "status", "wall s", "rows", "rows/s", "driver CPU s", "driver peak MB",
                              "nodes / CPUs / GPUs"], rows)]
        facts["stages"] = {s: {"seconds": r["seconds"], "rows": r["rows"]} for s, r in latest.items()}
    return blocks, figures, facts


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h1":
            out.append(f"# {b[1]}")
        elif b[0] == "h":
            out.append(f"## {b[1]}")
        elif b[0] == "p":
            out.append(str(b[1]))
        elif b[0] == "table":
            out.append("| " + " | ".join(map(str, b[1])) + " |")
            out.append("|" + "---|" * len(b[1]))
            out.extend("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in b[2])
        elif b[0] == "img":
            out.append(f"![{b[2]}]({REPORT}/{b[1]})")
        out.append("")
    return "\n".join(out)


def to_html(blocks: list[Block], title: str) -> str:
    esc = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
           "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.25em .6em}</style>"
           "</head><body>"]
    for b in blocks:
        if b[0] == "h1":
            out.append(f"<h1>{esc(b[1])}</h1>")
        elif b[0] == "h":
            out.append(f"<h2>{esc(b[1])}</h2>")
        elif b[0] == "p":
            out.append(f"<p>{esc(str(b[1]))}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{esc(str(c))}</th>" for c in b[1])
            body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif b[0] == "img":
            out.append(f"<p><img src='{REPORT}/{esc(b[1])}' alt='{esc(b[2])}'></p>")
    out.append("</body></html>")
    return "\n".join(out)


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and the verdict lines."""

    path: str
    figures: int
    verdict: list[dict[str, Any]]

    def __str__(self) -> str:
        lines = [f"report: {self.path} (+ report.html, {self.figures} figures)"]
        for c in self.verdict:
            lines.append(f"  fine-tuned {_pct(c['finetuned'])}% vs {c['baseline']} {_pct(c['other'])}% on "
                         f"{c['cell']}: {_word(c)}")
        return "\n".join(lines)


def report(cfg: RunConfig, progress: bool = True) -> ReportResult:
    """Write RUN/report.md, RUN/report.html, RUN/report/*.png and RUN/report/facts.json."""
    run = RunDir(cfg.run_dir)
    blocks, figures, facts = build(cfg, run)
    for name, png in figures.items():
        run.write_bytes(png, REPORT, name)
    run.write_json(facts, REPORT, "facts.json")
    run.write_bytes(to_markdown(blocks).encode(), "report.md")
    run.write_bytes(to_html(blocks, f"TEDUO run report: {cfg.run_dir}").encode(), "report.html")
    return ReportResult(run.path("report.md"), len(figures), facts.get("verdict", []))
