"""Issue #14's bug tests, run against the code the issue was filed on (aa14869).

Each test is the new test from main (tests/sft/test_train_loop.py, tests/labeling/test_stages.py,
tests/test_s3.py) with only its imports pointed at what aa14869 had (the new tests import
modules that did not exist then). Model directories (a Llama-3-style no-pad tokenizer) are built
beforehand by main's factory, since aa14869's factory cannot build one. Expected: every test
FAILS here, at the bug, and passes on main. Run by docs/checks/issue14/run.sh.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from teduo_ray.config import load_config
from tests.verify14.helpers import build_small_model, equal_answer_batch, loop_config, write_sft

NO_PAD = build_small_model("", pad_token=False)
PADDED = build_small_model("", pad_token=True)


def _fit(train_fn, config: dict, num_workers: int, datasets: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(train_fn, train_loop_config=config, datasets=datasets or {},
                           scaling_config=ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": 0.5}),
                           torch_config=TorchConfig(backend="gloo"),
                           run_config=RunConfig(name="test", storage_path=config["out_dir"]))
    result = trainer.fit()
    assert result.error is None, result.error


# bug: Llama-3 tokenizers have no pad token; SFT collation pads with None
def test_sft_collation_and_a_training_step_without_a_pad_token() -> None:
    from teduo_ray.sft.train_loop import build_model

    tokenizer, model = build_model(loop_config(NO_PAD))
    batch = equal_answer_batch(tokenizer, 4)
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.eos_token_id).all()
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert torch.isfinite(loss)


# bug: validation and checkpoint code all-reduce tensors made on the default (CPU) device
@pytest.mark.timeout(600)
def test_validation_and_checkpoint_collectives_use_the_workers_device(ray_local_2cpu, tmp_path: Path) -> None:
    from teduo_ray.rundir import RunDir
    from teduo_ray.sft.finetune import SFT
    from teduo_ray.sft.format import REQUIRED_KEYS, tokenized_datasets
    from tests.verify14.workers import recording_train_func

    write_sft(tmp_path / "run", rows=80)
    table = RunDir(str(tmp_path / "run")).read_shards(SFT, list(REQUIRED_KEYS))
    datasets = tokenized_datasets(table, PADDED, seed=0, val_fraction=0.25, max_seq_len=256)
    config = loop_config(PADDED, batch_size=8, eval_every_steps=2, out_dir=str(tmp_path))
    _fit(recording_train_func, config, num_workers=2, datasets=datasets)
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"collectives-{rank}.json").read_text())
        ours = [r for r in seen["records"] if "teduo_ray" in r["caller"]]
        assert len(ours) >= 4, seen["records"]
        assert all(r["device"] == seen["device"] for r in ours), ours
        assert not [r for r in ours if r["default_device"]], "tensors made on the default device, not the worker's"


# bug: no gradient accumulation or checkpointing
def test_config_validates_grad_accum() -> None:
    cfg = load_config(None, ["sft.grad_accum=4", "sft.gradient_checkpointing=true"])
    assert cfg.sft.grad_accum == 4 and cfg.sft.gradient_checkpointing


@pytest.mark.timeout(600)
def test_grad_accum_equals_a_larger_batch_and_learns_under_zero2_and_zero3(ray_local_2cpu, tmp_path: Path) -> None:
    from tests.verify14.workers import accumulation_train_func

    config = loop_config(NO_PAD, gradient_checkpointing=True, zero_stages=[2, 3], out_dir=str(tmp_path))
    _fit(accumulation_train_func, config, num_workers=1)
    runs = json.loads((tmp_path / "accumulation-0.json").read_text())
    for zero in ("2", "3"):
        run = runs[zero]
        assert run["checkpointing"] and run["moved"] > 1e-4
        assert run["accum_loss"] == pytest.approx(run["whole_loss"], abs=1e-5)
        np.testing.assert_allclose(run["accum_weights"], run["whole_weights"], atol=1e-5)


# bug: the abstraction's vLLM processor is built without tensor parallelism (a twin of the judge's)
@pytest.mark.timeout(300)
def test_abstraction_processor_gets_tensor_parallel_and_context(ray_local_2cpu, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """aa14869 had no abstraction_processor(); its _generate built the processor inline. The
    config it hands to ray.data.llm.build_processor is captured and checked like main's test."""
    import ray.data.llm

    from teduo_ray.labeling import label
    from teduo_ray.rundir import RunDir
    from tests.conftest import small_config

    captured = {}

    def capture(config, **kwargs):  # type: ignore[no-untyped-def]
        captured["config"] = config
        raise RuntimeError("captured")

    monkeypatch.setattr(ray.data.llm, "build_processor", capture)
    cfg = small_config(tmp_path, "labeling.backend=vllm", f"labeling.model={NO_PAD}",
                       "labeling.tensor_parallel=4", "labeling.num_actors=2")
    with pytest.raises(RuntimeError, match="captured"):
        label._generate(cfg, RunDir(str(tmp_path)), [(0, [{"role": "user", "content": "x"}])])
    engine = captured["config"].engine_kwargs
    assert engine.get("tensor_parallel_size") == 4, engine
    assert engine.get("max_model_len") == 8192, engine


# bug: finetune refuses non-local run directories (README says use s3://)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(900)
def test_tiny_job_until_finetune_on_s3(tmp_path: Path) -> None:
    """main's tests/test_s3.py fixture: the shrunken tiny job up to finetune on moto's S3."""
    from tests.conftest import run_teduo

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "TEDUO_CACHE": str(tmp_path / "cache")}
        os.environ.update(env)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True).create_dir("teduo")
        shrunk = ("env.train_layouts=4", "data.episodes_per_layout=5", "data.episodes_per_shard=3",
                  "data.max_episode_steps=20", "labeling.llm_states_per_goal=30", "labeling.reward_epochs=3",
                  "rl.baselines=[bc]", "rl.baseline_iterations=1", "rl.baseline_updates_per_iteration=2",
                  "sft.epochs=1", "sft.tiny_hidden=32", "sft.tiny_intermediate=64", "sft.tiny_layers=1",
                  "sft.tiny_heads=2", "sft.eval_every_steps=4")
        done = run_teduo("run", "jobs/tiny.yaml", "run_dir=s3://teduo/tiny", *shrunk, "--until", "finetune",
                         "--no-progress", timeout=850)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        server.kill()
        server.wait(timeout=30)
