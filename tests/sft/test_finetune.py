"""Ray Train fine-tuning for real: 2 DeepSpeed ZeRO-2 workers on CPU (gloo), LoRA over DDP,
restart from a checkpoint after a worker failure, export, and the GPU wiring.

DeepSpeed compiles its C++ ops on first use (+25-45 s once); they are cached in
TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions), so later runs skip it.
"""

from __future__ import annotations

import glob
import json
import os

import pytest
import torch

from teduo_ray.llm.loading import load_model
from teduo_ray.sft.finetune import export, finetune, make_trainer
from teduo_ray.sft.models import final_model_dir
from tests.sft.helpers import sft_config, write_sft


def _history(run_dir) -> dict:
    with open(os.path.join(run_dir, "finetune", "history.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_zero2_two_workers_lowers_the_loss_exports_and_reruns_as_noop(ray_local_2cpu, tmp_path) -> None:
    write_sft(tmp_path)
    cfg = sft_config(tmp_path, "sft.zero_stage=2", "sft.num_workers=2", "sft.eval_every_steps=3")
    result = finetune(cfg, progress=False)
    hist = _history(tmp_path)
    vals = [h for h in hist["history"] if h["kind"] == "val"]
    train = [h["loss"] for h in hist["history"] if h["kind"] == "train"]
    assert len(train) == result.steps >= 10
    assert vals[-1]["val_loss"] < vals[0]["val_loss"]
    assert sum(train[-3:]) < sum(train[:3])
    assert result.best_val_loss == min(v["val_loss"] for v in vals)
    assert 0.0 <= result.val_first_action_acc <= 1.0 and result.tokens_per_s > 0 and result.startup_seconds > 0
    assert result.resumed_from_step is None
    tok, model = load_model(final_model_dir(cfg))
    assert tok.chat_template and model.config.model_type == "llama"
    again = finetune(cfg, progress=False)
    assert again.skipped and "already finished" in str(again)


@pytest.mark.slow
def test_worker_failure_resumes_from_the_latest_checkpoint(ray_local_2cpu, tmp_path) -> None:
    write_sft(tmp_path)
    cfg = sft_config(tmp_path, "sft.zero_stage=2", "sft.num_workers=2", "sft.eval_every_steps=4",
                     "sft.max_failures=1")
    result = finetune(cfg, progress=False, fail_at_step=6)
    summary = _history(tmp_path)["summary"]
    assert summary["restarts"] == 1 and result.resumed_from_step == 4
    steps = [h["step"] for h in _history(tmp_path)["history"] if h["kind"] == "train"]
    assert steps == list(range(1, result.steps + 1))  # continued at step 5, not from scratch


@pytest.mark.slow
def test_lora_over_ddp_exports_merged_and_adapter_models(ray_local_2cpu, tmp_path) -> None:
    write_sft(tmp_path)
    cfg = sft_config(tmp_path, "sft.zero_stage=0", "sft.num_workers=1", "sft.lora_rank=4", "sft.lora_alpha=8",
                     "sft.epochs=1", "sft.learning_rate=1.0e-2")
    finetune(cfg, progress=False)
    merged = final_model_dir(cfg)
    assert not os.path.exists(os.path.join(merged, "adapter_config.json"))
    best = glob.glob(str(tmp_path / "finetune" / "ray" / "*" / "checkpoint_*" / "hf"))[0]
    adapter_dir = str(tmp_path / "adapter")
    export(best, adapter_dir, lora=True, merge=False)
    assert os.path.exists(os.path.join(adapter_dir, "adapter_config.json"))
    tok, plain = load_model(merged)
    _, peft_model = load_model(adapter_dir)
    ids = tok("goal object 2 steps left.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, peft_model(ids).logits, atol=1e-4)
    _, base = load_model(os.path.join(str(tmp_path), "models", "tiny-agent"))
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, base(ids).logits, atol=1e-4)  # the adapters trained


def test_gpu_wiring_builds_a_nccl_bf16_trainer_without_a_gpu(ray_local_2cpu, tmp_path) -> None:
    from teduo_ray.sft.train_loop import ds_config

    cfg = sft_config(tmp_path, "sft.use_gpu=true", "sft.bf16=true", "sft.num_workers=4", "sft.zero_stage=3")
    trainer = make_trainer(cfg, {}, {"x": 1}, str(tmp_path / "ray"), "wiring")
    assert trainer.scaling_config.use_gpu and trainer.scaling_config.num_workers == 4
    assert trainer.backend_config.backend == "nccl"
    assert trainer.run_config.checkpoint_config.checkpoint_score_attribute == "val_loss"
    assert trainer.scaling_config.resources_per_worker == {"CPU": 0.5}
    ds = ds_config({"batch_size": 10, "grad_accum": 4, "max_grad_norm": 0.3, "zero_stage": 3, "bf16": True})
    assert ds["bf16"]["enabled"] and ds["zero_optimization"]["stage"] == 3 and ds["gradient_clipping"] == 0.3
    assert ds["gradient_accumulation_steps"] == 4 and ds["train_micro_batch_size_per_gpu"] == 10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_zero2_fit_on_gpu(ray_local_2cpu, tmp_path) -> None:
    write_sft(tmp_path)
    cfg = sft_config(tmp_path, "sft.use_gpu=true", "sft.bf16=true", "sft.num_workers=1", "sft.zero_stage=2")
    result = finetune(cfg, progress=False)
    assert result.steps > 0 and result.best_val_loss < 10


@pytest.mark.slow
def test_killed_driver_rerun_continues_from_the_latest_checkpoint(ray_local_2cpu, tmp_path) -> None:
    """kill -9 the whole `finetune` process tree (driver + its local Ray) after the first
    checkpoint; the same config re-run restores Ray Train's run and does not start over."""
    import subprocess
    import sys
    import time

    from tests.conftest import REPO, kill_tree

    write_sft(tmp_path)
    overrides = ("sft.zero_stage=2", "sft.num_workers=2", "sft.eval_every_steps=4", "sft.epochs=8")
    script = ("import sys; from tests.sft.helpers import sft_config; from teduo_ray.sft.finetune import finetune; "
              "finetune(sft_config(sys.argv[1], *sys.argv[2:]), progress=False)")
    driver = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), *overrides], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # a checkpoint counts once Ray Train has registered it in the run's snapshot
    pattern = str(tmp_path / "finetune" / "ray" / "*" / "checkpoint_manager_snapshot.json")
    deadline = time.time() + 300
    try:
        while not glob.glob(pattern) and driver.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert glob.glob(pattern) and driver.poll() is None, "the driver wrote no checkpoint (or ended) before the kill"
    finally:
        kill_tree(driver)
    assert not os.path.exists(tmp_path / "finetune" / "model")  # killed before the export

    result = finetune(sft_config(tmp_path, *overrides), progress=False)
    assert result.resumed_from_step is not None and result.resumed_from_step >= 4
    steps = [h["step"] for h in _history(tmp_path)["history"] if h["kind"] == "train"]
    assert steps == list(range(1, result.steps + 1))  # the history carried over, no step twice
    tok, model = load_model(final_model_dir(sft_config(tmp_path, *overrides)))
    assert model.config.model_type == "llama"
