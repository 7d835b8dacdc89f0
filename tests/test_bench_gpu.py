"""benchmarks.gpu, the device check: its one-line skip on a machine without CUDA (this one) and
the parts that need no GPU (overrides, FLOPs / MFU, the peak table, the report); the check
itself runs only under ``pytest -m gpu`` on a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu
from teduo_ray.config import load_config
from tests.conftest import REPO

SKIP_LINE = "benchmarks.gpu: skipped: no CUDA device is visible (torch.cuda.is_available() is False)"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible: the check runs, no skip")


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


@no_cuda
def test_without_cuda_it_prints_one_skip_line_and_exits_0() -> None:
    proc = run_module()
    assert proc.returncode == 0
    assert (proc.stdout + proc.stderr).splitlines() == [SKIP_LINE]


@no_cuda
def test_without_cuda_the_json_says_skipped(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = run_module("--json", str(out), "--width", "256")
    assert proc.returncode == 0 and proc.stdout.splitlines() == [SKIP_LINE]
    report = json.loads(out.read_text())
    assert report["skipped"] is True and "no CUDA device" in report["reason"]
    assert report["versions"]["torch"] == torch.__version__


def test_skip_decision() -> None:
    assert gpu.skip_reason(True) is None
    assert gpu.SKIP_PREFIX + str(gpu.skip_reason(False)) == SKIP_LINE


def test_overrides_ask_for_every_gpu_setting_and_user_overrides_win(tmp_path: Path) -> None:
    args = gpu.parse_args([])
    overrides = gpu.config_overrides(args, str(tmp_path))
    s = load_config(args.config, overrides).sft
    assert s.use_gpu and s.bf16 and s.zero_stage == 2 and s.lora_rank == 16 and s.gradient_checkpointing
    assert s.num_workers == 1 and s.epochs == 1 and s.model == "tiny"
    assert (s.tiny_hidden, s.tiny_layers, s.tiny_heads, s.tiny_intermediate) == (1024, 8, 16, 4096)
    assert s.max_seq_len >= 8192  # the tiny model's positions cover the vLLM processors' context
    cfg = load_config(args.config, gpu.config_overrides(gpu.parse_args(
        ["--quick", "--gpus", "2", "--width", "512", "--layers", "2", "sft.lora_rank=0"]), str(tmp_path)))
    assert (cfg.sft.num_workers, cfg.sft.tiny_hidden, cfg.sft.tiny_heads, cfg.sft.tiny_intermediate) == (2, 512, 8, 2048)
    assert cfg.sft.lora_rank == 0 and cfg.eval.episodes_per_cell == gpu.SIZES[True]["episodes_per_cell"]
    lab = load_config(args.config, [*overrides, *gpu.labeling_overrides("/models/tiny")]).labeling
    assert (lab.backend, lab.model, lab.num_actors, lab.tensor_parallel) == ("vllm", "/models/tiny", 1, 1)


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(SystemExit):
        gpu.parse_args(["--width", "100", "--heads", "3"])


def test_flops_and_utilization_arithmetic() -> None:
    full = gpu.flops_per_token(1000, 1000, checkpointing=False)
    assert full == {"model": 6000, "hardware": 6000}  # full fine-tuning, no recomputation: 6N both ways
    lora = gpu.flops_per_token(1000, 10, checkpointing=True)
    assert lora == {"model": 6000, "hardware": 4000 + 20 + 2000}  # 6N + 2T
    assert gpu.utilization(6e9, 1e4, 100.0, 2) == pytest.approx(0.3)  # 6e13 FLOP/s of 2 x 100 TFLOP/s
    assert gpu.utilization(6e9, 1e4, None, 1) is None


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA H100 80GB HBM3", 989.0),
    ("NVIDIA H100 PCIe", 756.0), ("NVIDIA L4", 121.0), ("NVIDIA A10G", 125.0), ("NVIDIA L40S", None),
    ("NVIDIA GeForce RTX 4090", None)])
def test_peak_table(name: str, peak: float | None) -> None:
    value, source = gpu.peak_tflops(name)
    assert value == peak
    assert ("unknown device" in source) == (peak is None)
    assert gpu.peak_tflops(name, 200.0) == (200.0, "--peak-tflops")


def test_rates_split_off_the_first_batch() -> None:
    r = gpu.rates(rows=100, seconds=10.0, first_rows=20, first_seconds=2.0)
    assert r["rows_per_s"] == pytest.approx(10.0) and r["rows_per_s_after_first_batch"] == pytest.approx(10.0)
    assert gpu.rates(20, 2.0, 20, 2.0)["rows_per_s_after_first_batch"] is None


def report(device: str, vllm: dict | str = "skipped: not installed") -> dict:
    env = {"device": device, "gpus_visible": 2, "gpus_used": 1, "versions": gpu.versions()}
    model = {"width": 1024, "layers": 8, "heads": 16, "intermediate": 4096, "parameters": 10**8,
             "trainable_parameters": 10**6, "lora_rank": 16, "gradient_checkpointing": True, "bf16": True,
             "zero_stage": 2}
    ft = {"tokens_per_s": 50_000.0, "steps": 200, "startup_seconds": 30.0, "seconds": 90.0}
    ev = {"episodes": 400, "steps": 9000, "seconds": 20.0, "episodes_per_s": 20.0, "steps_per_s": 450.0}
    return gpu.build_report(env, model, ft, ev, vllm, gpu.peak_tflops(device))


def test_report_and_its_lines() -> None:
    r = report("NVIDIA L4")
    assert r["mfu"] == pytest.approx(6e8 * 5e4 / 121e12) and r["hfu"] == pytest.approx((6e8 + 2e6) * 5e4 / 121e12)
    lines = gpu.format_lines(r)
    assert lines[-1] == f"tokens_per_s=50000 mfu={r['mfu']:.3f} episodes_per_s=20.00"
    assert "vllm: skipped: not installed" in lines and any("121 TFLOP/s" in line for line in lines)
    json.dumps(r)  # JSON-able as it stands

    rates = gpu.rates(256, 40.0, 64, 35.0)
    unknown = report("NVIDIA L40S", {"judge": rates, "abstraction": rates})
    assert unknown["mfu"] is None and unknown["peak_source"].startswith("unknown device")
    lines = gpu.format_lines(unknown)
    assert lines[-1] == "tokens_per_s=50000 mfu=n/a episodes_per_s=20.00"
    assert any(line.startswith("vllm judge: 256 rows") for line in lines)


def test_versions_of_missing_packages_are_none() -> None:
    v = gpu.versions(("pyarrow", "no-such-package-teduo"))
    assert v["pyarrow"] and v["no-such-package-teduo"] is None


def test_parameters_counted_on_the_meta_device(tmp_path: Path) -> None:
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, tie_word_embeddings=True).save_pretrained(tmp_path)
    base, _ = gpu.count_params(str(tmp_path), 0, ())
    total, trainable = gpu.count_params(str(tmp_path), 8, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"))
    per_layer = 4 * 64 * 64 + 3 * 64 * 128 + 2 * 64  # attention, MLP, two norms
    assert base == 1000 * 64 + 2 * per_layer + 64  # tied embeddings once, final norm
    lora = 2 * (4 * 8 * (64 + 64) + 3 * 8 * (64 + 128))  # r x (in + out) per adapted projection
    assert (total, trainable) == (base + lora, lora)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quick_check_end_to_end_on_a_gpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    assert gpu.main(["--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["finetune"]["tokens_per_s"] > 0 and r["finetune"]["steps"] > 0
    assert r["evaluation"]["episodes_per_s"] > 0 and r["device"] and r["gpus_used"] == 1
    assert r["vllm"] == "skipped: not installed" or r["vllm"]["judge"]["rows"] == gpu.SIZES[True]["judge_rows"]
