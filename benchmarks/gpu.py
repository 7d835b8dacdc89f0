"""The GPU device check (issue 14): the GPU paths of the pipeline, run once, with numbers.

Usage:
    python -m benchmarks.gpu [--quick] [--json OUT] [--gpus N] [--width W ...] [key=value ...]

No visible CUDA device: ONE line, ``benchmarks.gpu: skipped: ...``, exit 0; ``--json OUT`` then
holds ``{"skipped": true, "reason": ...}`` so a CI step collecting OUT always finds a file.
Only torch is imported before that decision.

On GPUs (never run in this project: no GPU here), models built locally, one run directory:
(a) the real ``teduo finetune`` on SFT rows shaped like the tiny job's
    (``benchmarks.finetune.write_sft``): Ray Train with NCCL, ``--gpus`` workers x 1 GPU, bf16,
    DeepSpeed ZeRO-2, LoRA, gradient checkpointing, the run's tiny Llama at ``--width`` ...;
(b) the evaluation path (``benchmarks.evaluate``'s candidate, ``LLMPolicy`` on cuda) with the
    fine-tuned model: episodes/s, steps/s;
(c) if vllm is importable, the vLLM judge and abstraction processors on the run's tiny Llama
    over ``ray.data.from_items`` rows: rows/s end to end (engine start-up included) and after
    the first batch; else ``"vllm": "skipped: not installed"``.

FLOPs per trained non-pad token (pads are waste, not credited; attention's sequence term is
left out), N = all parameters (frozen + LoRA, tied embeddings once), T = trainable ones:
- MFU counts model FLOPs, 6N (PaLM's convention: forward 2N + backward 4N, whatever the
  implementation recomputes or skips): MFU = 6N x tokens/s / (peak x GPUs);
- HFU counts what runs: 2N forward + 2N backward through activations + 2T weight gradients
  (+ 2N forward recomputed with gradient checkpointing); with LoRA + checkpointing, 6N + 2T.
Peak: ``--peak-tflops``, else bf16 dense peaks by device name (datasheets); unknown -> null.
Last line: ``tokens_per_s=<x> mfu=<x|n/a> episodes_per_s=<x>``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SKIP_PREFIX = "benchmarks.gpu: skipped: "
# bf16 dense tensor-core TFLOP/s (NVIDIA datasheets); the most specific entry first
PEAK_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIE"), 756.0), (("H100", "NVL"), 835.0), (("H100",), 989.0),
    (("A100",), 312.0), (("A10G",), 125.0), (("L4",), 121.0))
PACKAGES = ("torch", "ray", "deepspeed", "transformers", "peft", "vllm")
# work per part; the default is meant to fit 8 minutes on one GPU (an estimate, never timed)
SIZES = {False: {"examples": 8192, "episodes_per_cell": 100, "judge_rows": 2048, "abstraction_rows": 64},
         True: {"examples": 2048, "episodes_per_cell": 10, "judge_rows": 256, "abstraction_rows": 16}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2,048 SFT rows, 10 episodes per cell, fewer vLLM rows")
    p.add_argument("--json", metavar="OUT", help="write every number as JSON to OUT")
    p.add_argument("--config", default=str(REPO / "jobs" / "tiny.yaml"), help="job YAML (default jobs/tiny.yaml)")
    p.add_argument("--gpus", type=int, default=1, help="Ray Train workers, one GPU each (default 1)")
    p.add_argument("--width", type=int, default=1024, help="sft.tiny_hidden (default 1024)")
    p.add_argument("--layers", type=int, default=8, help="sft.tiny_layers (default 8)")
    p.add_argument("--heads", type=int, default=None, help="sft.tiny_heads (default width / 64)")
    p.add_argument("--intermediate", type=int, default=None, help="sft.tiny_intermediate (default 4 x width)")
    p.add_argument("--lora-rank", type=int, default=16, help="sft.lora_rank (default 16)")
    p.add_argument("--batch-size", type=int, default=32, help="sft.batch_size per GPU (default 32)")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s of one GPU for MFU (default: table)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides (applied last)")
    args = p.parse_args(argv)
    args.heads = args.heads or max(1, args.width // 64)
    args.intermediate = args.intermediate or 4 * args.width
    if args.width % args.heads:
        p.error(f"--heads {args.heads} must divide --width {args.width}")
    return args


def skip_reason(cuda_available: bool) -> str | None:
    """Why the check cannot run here (None = it can): it needs a CUDA device and nothing else."""
    return None if cuda_available else "no CUDA device is visible (torch.cuda.is_available() is False)"


def config_overrides(args: argparse.Namespace, run_dir: str) -> list[str]:
    """The job's config turned into the GPU check: every GPU setting of issue 14 is explicit here.

    ``sft.max_seq_len`` is raised to the vLLM processors' context length because the tiny
    model's positions follow it and vLLM refuses a ``max_model_len`` beyond the model's.
    """
    from teduo_ray.llm.processors import MAX_MODEL_LEN

    n = SIZES[args.quick]
    return [f"run_dir={run_dir}", "sft.model=tiny", "sft.use_gpu=true", "sft.bf16=true", "sft.zero_stage=2",
            f"sft.lora_rank={args.lora_rank}", "sft.gradient_checkpointing=true", f"sft.num_workers={args.gpus}",
            "sft.epochs=1", f"sft.batch_size={args.batch_size}", f"sft.max_seq_len={MAX_MODEL_LEN}",
            f"sft.tiny_hidden={args.width}", f"sft.tiny_layers={args.layers}", f"sft.tiny_heads={args.heads}",
            f"sft.tiny_intermediate={args.intermediate}", f"eval.episodes_per_cell={n['episodes_per_cell']}",
            "eval.temperature=0", "eval.llm_batch_size=256", *args.overrides]


def labeling_overrides(model_dir: str, batch_size: int = 64) -> list[str]:
    """The abstraction processor's settings: the vLLM backend on a local model, one engine."""
    return ["labeling.backend=vllm", f"labeling.model={model_dir}", "labeling.num_actors=1",
            f"labeling.batch_size={batch_size}", "labeling.tensor_parallel=1"]


def peak_tflops(device_name: str, override: float | None = None) -> tuple[float | None, str]:
    """(peak TFLOP/s of one GPU, where it came from); matched on whole words of the name, so
    "NVIDIA L40S" is not taken for an L4 (None: MFU is not reported)."""
    if override:
        return override, "--peak-tflops"
    words = set(re.split(r"[\s_-]+", device_name.upper()))
    for keys, tflops in PEAK_BF16_TFLOPS:
        if set(keys) <= words:
            return tflops, f"table: {' '.join(keys)} bf16 dense"
    return None, f"unknown device {device_name!r}: pass --peak-tflops for MFU"


def flops_per_token(params: int, trainable: int, checkpointing: bool) -> dict[str, int]:
    """Model (6N) and hardware (4N + 2T, + 2N with checkpointing) FLOPs per trained token."""
    return {"model": 6 * params, "hardware": 4 * params + 2 * trainable + (2 * params if checkpointing else 0)}


def utilization(flops: float, tokens_per_s: float, peak: float | None, gpus: int) -> float | None:
    """Achieved FLOP/s (``flops`` per token x tokens/s over all GPUs) over the GPUs' peak."""
    return None if not peak else flops * tokens_per_s / (peak * 1e12 * gpus)


def rates(rows: int, seconds: float, first_rows: int, first_seconds: float) -> dict[str, Any]:
    """Rows/s end to end and after the first batch (which waits for the engine to start)."""
    rest = seconds - first_seconds
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds else None,
            "first_batch_seconds": first_seconds,
            "rows_per_s_after_first_batch": (rows - first_rows) / rest if rest > 0 and rows > first_rows else None}


def versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (None = not installed), read from metadata without importing."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def model_info(s: Any, params: int, trainable: int) -> dict[str, Any]:
    """The trained model's shape and settings as the config says (overrides included)."""
    return {"width": s.tiny_hidden, "layers": s.tiny_layers, "heads": s.tiny_heads, "intermediate": s.tiny_intermediate,
            "parameters": params, "trainable_parameters": trainable, "lora_rank": s.lora_rank,
            "gradient_checkpointing": s.gradient_checkpointing, "bf16": s.bf16, "zero_stage": s.zero_stage}


def build_report(env: dict[str, Any], model: dict[str, Any], finetune: dict[str, Any], evaluation: dict[str, Any],
                 vllm: dict[str, Any] | str, peak: tuple[float | None, str]) -> dict[str, Any]:
    """Every number of the run in one JSON-able dict, with FLOPs and MFU / HFU derived here."""
    flops = flops_per_token(model["parameters"], model["trainable_parameters"], model["gradient_checkpointing"])
    tps, gpus = finetune["tokens_per_s"], env["gpus_used"]
    return {"skipped": False, **env, "model": model, "finetune": finetune, "evaluation": evaluation, "vllm": vllm,
            "flops_per_token": flops, "peak_tflops": peak[0], "peak_source": peak[1],
            "mfu": utilization(flops["model"], tps, peak[0], gpus),
            "hfu": utilization(flops["hardware"], tps, peak[0], gpus)}


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def format_lines(r: dict[str, Any]) -> list[str]:
    """The console summary; the last line is the headline, as in the other benchmarks."""
    m, ft, ev, v = r["model"], r["finetune"], r["evaluation"], r["versions"]
    lines = [f"device={r['device']} x{r['gpus_used']} (visible {r['gpus_visible']}); torch {v['torch']}, "
             f"ray {v['ray']}, deepspeed {v['deepspeed']}, vllm {v['vllm']}",
             f"model: width {m['width']}, {m['layers']} layers, {m['heads']} heads, MLP {m['intermediate']}; "
             f"{m['parameters'] / 1e6:.1f}M parameters, {m['trainable_parameters'] / 1e6:.2f}M trainable",
             f"finetune (Ray Train, nccl, bf16={m['bf16']}, ZeRO-{m['zero_stage']}, LoRA r={m['lora_rank']}, "
             f"gradient checkpointing={m['gradient_checkpointing']}): "
             f"{ft['tokens_per_s']:,.0f} tokens/s, {ft['steps']} steps; worker start-up {ft['startup_seconds']:.1f} s, "
             f"stage {ft['seconds']:.1f} s",
             f"MFU {_num(r['mfu'])} (6N), HFU {_num(r['hfu'])}; peak {_num(r['peak_tflops'], '.0f')} TFLOP/s "
             f"({r['peak_source']})",
             f"evaluation (LLM policy on cuda): {ev['episodes']} episodes, {ev['steps']} steps in {ev['seconds']:.1f} s: "
             f"{ev['episodes_per_s']:.2f} episodes/s, {ev['steps_per_s']:.0f} steps/s"]
    if isinstance(r["vllm"], str):
        lines.append(f"vllm: {r['vllm']}")
    else:
        for name, x in r["vllm"].items():
            lines.append(f"vllm {name}: {x['rows']} rows in {x['seconds']:.1f} s: {_num(x['rows_per_s'], ',.0f')} "
                         f"rows/s ({_num(x['rows_per_s_after_first_batch'], ',.0f')} after the first batch, "
                         f"{x['first_batch_seconds']:.1f} s)")
    lines.append(f"tokens_per_s={ft['tokens_per_s']:.0f} mfu={_num(r['mfu'])} episodes_per_s={ev['episodes_per_s']:.2f}")
    return lines


def count_params(model_dir: str, lora_rank: int, targets: tuple[str, ...]) -> tuple[int, int]:
    """(all, trainable) parameters of the model as training builds it (LoRA on top), counted on
    the meta device: nothing is allocated, whatever the width."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from teduo_ray.llm.loading import local_model_dir

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(local_model_dir(model_dir)))
        if lora_rank > 0:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=lora_rank, target_modules=list(targets), task_type="CAUSAL_LM"))
    return (sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.parameters() if p.requires_grad))


def run_evaluation(cfg: Any, model_dir: str) -> dict[str, Any]:
    """``benchmarks.evaluate``'s candidate path with the policy on cuda, in the driver."""
    import gc

    import numpy as np
    import ray
    import torch

    from teduo_ray.evaluation.episodes import plan_episodes
    from teduo_ray.evaluation.llm_policy import LLMPolicy
    from teduo_ray.evaluation.rollout import make_actors, run_episodes
    from teduo_ray.evaluation.selection import _rules

    specs, _ = plan_episodes(cfg)
    selections = {s.goal_id: _rules(s.goal_text)[0] for s in specs}
    ev = cfg.eval
    policy = LLMPolicy(model_dir, cfg.env.text_mode, 0.0, ev.llm_batch_size, ev.torch_threads, "finetuned", "cuda")
    actors = make_actors(cfg)
    ray.get([a.start.remote([], ev.max_steps) for a in actors])
    t0 = time.perf_counter()
    results = run_episodes(cfg, policy, specs, selections, np.random.default_rng(cfg.seed), actors)
    seconds = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    del policy
    gc.collect()
    torch.cuda.empty_cache()  # the vLLM engines that follow size themselves on free memory
    steps = sum(r.steps for r in results)
    return {"episodes": len(specs), "steps": steps, "seconds": seconds, "episodes_per_s": len(specs) / seconds,
            "steps_per_s": steps / seconds, "success": float(np.mean([r.success for r in results])),
            "max_steps": ev.max_steps, "llm_batch_size": ev.llm_batch_size}


def _timed(ds: Any) -> dict[str, Any]:
    t0, first, first_rows, rows = time.perf_counter(), 0.0, 0, 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows += batch.num_rows
        if not first:
            first, first_rows = time.perf_counter() - t0, rows
    return rates(rows, time.perf_counter() - t0, first_rows, first)


def run_vllm(cfg: Any, config: str, overrides: list[str], model_dir: str, n: dict[str, int]) -> dict[str, Any] | str:
    """The judge and the abstraction processor on ``model_dir``, one vLLM engine at a time."""
    if importlib.util.find_spec("vllm") is None:
        return "skipped: not installed"
    import ray

    from teduo_ray.config import load_config
    from teduo_ray.labeling.abstraction import abstraction_messages
    from teduo_ray.labeling.generate import abstraction_processor
    from teduo_ray.labeling.stages import build_vllm_judge
    from teduo_ray.rl.distill import SFT
    from teduo_ray.rundir import RunDir

    table = RunDir(cfg.run_dir).read_shards(SFT, ["goal_id", "goal_text", "state_id", "state_text"])
    rows = table.slice(0, n["judge_rows"]).to_pylist()
    judge = build_vllm_judge(model_dir, 64, 1, tensor_parallel=1)
    out = {"judge": _timed(judge(ray.data.from_items([{**r, "shard": 0} for r in rows])))}
    lab_cfg = load_config(config, [*overrides, *labeling_overrides(model_dir)])
    items = [{"goal_id": r["goal_id"], "messages_json": json.dumps(abstraction_messages(r["goal_text"]))}
             for r in rows[: n["abstraction_rows"]]]
    out["abstraction"] = _timed(abstraction_processor(lab_cfg)(ray.data.from_items(items)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch

        with warnings.catch_warnings():  # a driver without a device warns: the skip stays one line
            warnings.simplefilter("ignore")
            reason = skip_reason(torch.cuda.is_available())
    except ImportError:
        reason = "torch is not importable"
    if reason is not None:
        if args.json:
            Path(args.json).write_text(json.dumps({"skipped": True, "reason": reason, "versions": versions()}, indent=2))
        print(SKIP_PREFIX + reason)
        return 0
    if args.gpus > torch.cuda.device_count():
        print(f"benchmarks.gpu: --gpus {args.gpus} but {torch.cuda.device_count()} CUDA device(s) visible", file=sys.stderr)
        return 2

    import logging
    import os

    from benchmarks.finetune import write_sft
    from teduo_ray.config import load_config
    from teduo_ray.runtime import init_ray
    from teduo_ray.sft.finetune import finetune
    from teduo_ray.sft.models import base_model_dir, final_model_dir

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start, n = time.perf_counter(), SIZES[args.quick]
    env = {"device": torch.cuda.get_device_name(0), "gpus_visible": torch.cuda.device_count(),
           "gpus_used": args.gpus, "versions": versions()}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        overrides = config_overrides(args, tmp)
        cfg = load_config(args.config, overrides)
        write_sft(tmp, n["examples"], cfg.seed)
        base = base_model_dir(cfg)
        params, trainable = count_params(base, cfg.sft.lora_rank, cfg.sft.lora_targets)
        model = model_info(cfg.sft, params, trainable)
        init_ray(cfg.ray)
        import ray

        try:
            res = finetune(cfg, progress=False)
            ft = {"tokens_per_s": res.tokens_per_s, "steps": res.steps, "startup_seconds": res.startup_seconds,
                  "seconds": res.seconds, "examples": n["examples"], "train_examples": res.train_examples,
                  "val_first_action_acc": res.val_first_action_acc}
            evaluation = run_evaluation(cfg, final_model_dir(cfg))
            vllm = run_vllm(cfg, args.config, overrides, base, n)
        finally:
            ray.shutdown()
    report = build_report(env, model, ft, evaluation, vllm, peak_tflops(env["device"], args.peak_tflops))
    report.update(seconds=time.perf_counter() - start, config=args.config, overrides=overrides[1:])
    lines = format_lines(report)
    print("\n".join(lines[:-1]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(lines[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
