"""The GPU-shaped failures of fine-tuning, caught on CPU (issue #14).

- a tokenizer without a pad token (built like Llama-3's) goes through SFT collation, the
  evaluated LLM policy and the Hugging Face judge;
- every tensor the train loop's validation and checkpoint code hands to a collective is on
  the worker's device and was not made on the process's default device (NCCL would reject a
  CPU tensor after a whole epoch);
- gradient accumulation and gradient checkpointing under DeepSpeed ZeRO-2 and ZeRO-3: one
  step of two micro-batches of 4 equals one step of a batch of 8, and the loss decreases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from teduo_ray.config import load_config
from teduo_ray.errors import ConfigError
from tests.sft.helpers import build_small_model, equal_answer_batch, loop_config, write_sft

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def no_pad_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_small_model(tmp_path_factory.mktemp("nopad") / "model", pad_token=False)


@pytest.fixture(scope="module")
def padded_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_small_model(tmp_path_factory.mktemp("padded") / "model", pad_token=True)


def _fit(train_fn, config: dict, num_workers: int, datasets: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(train_fn, train_loop_config=config, datasets=datasets or {},
                           scaling_config=ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": 0.5}),
                           torch_config=TorchConfig(backend="gloo"),
                           run_config=RunConfig(name="test", storage_path=config["out_dir"]))
    result = trainer.fit()
    assert result.error is None, result.error


def test_the_no_pad_tokenizer_is_built_like_llama3_and_loads_with_eos_as_pad(no_pad_model: str) -> None:
    from transformers import AutoTokenizer

    from teduo_ray.llm.loading import load_tokenizer

    raw = AutoTokenizer.from_pretrained(no_pad_model)
    assert raw.pad_token is None and raw.eos_token == "<|end|>" and "<|pad|>" not in raw.get_vocab()
    tok = load_tokenizer(no_pad_model)
    assert tok.pad_token_id == tok.eos_token_id is not None


def test_sft_collation_and_a_training_step_without_a_pad_token(no_pad_model: str) -> None:
    """The workers' loader gives a pad id; collation pads with it and the loss ignores pads."""
    from teduo_ray.sft.train_loop import build_model

    tokenizer, model = build_model(loop_config(no_pad_model))
    batch = equal_answer_batch(tokenizer, 4)
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.eos_token_id).all()
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert torch.isfinite(loss)


def test_llm_policy_and_hf_judge_without_a_pad_token(no_pad_model: str) -> None:
    from teduo_ray.evaluation.llm_policy import LLMPolicy
    from teduo_ray.labeling.stages import HFJudgeStage

    policy = LLMPolicy(no_pad_model, "egocentric", micro_batch=4, share_prefix=False)
    prompts = [policy.prompt("goal object 1 steps left." + " obstacle ahead." * k, "go to the red ball")
               for k in range(3)]
    scores = policy.action_logits(prompts)
    assert scores.shape == (3, 7) and np.isfinite(scores).all()
    alone = policy.action_logits(prompts[:1])  # padding to the longer prompts changes nothing
    np.testing.assert_allclose(scores[0], alone[0], atol=1e-4)
    goals = np.array(["go to the red ball", "pick up the blue key"], dtype=object)
    states = np.array(["goal object 1 steps left.", "obstacle ahead. obstacle ahead."], dtype=object)
    p = HFJudgeStage(no_pad_model, micro_batch=2)({"goal_text": goals, "state_text": states})["p_llm"]
    assert p.shape == (2,) and np.isfinite(p).all()


def test_config_validates_grad_accum() -> None:
    cfg = load_config(None, ["sft.grad_accum=4", "sft.gradient_checkpointing=true"])
    assert cfg.sft.grad_accum == 4 and cfg.sft.gradient_checkpointing
    with pytest.raises(ConfigError, match="sft.grad_accum"):
        load_config(None, ["sft.grad_accum=0"])


@pytest.mark.slow
def test_validation_and_checkpoint_collectives_use_the_workers_device(ray_local_2cpu, tmp_path: Path,
                                                                      padded_model: str) -> None:
    """The real train_func on 2 gloo workers, validating every 2 steps and at the epoch's end
    (a tokenizer with a pad token: this test is about devices only)."""
    import ray.data

    from teduo_ray.rundir import RunDir
    from teduo_ray.sft.finetune import SFT
    from teduo_ray.sft.format import REQUIRED_KEYS, tokenized_datasets
    from tests.sft.workers import recording_train_func

    write_sft(tmp_path / "run", rows=80)
    table = RunDir(str(tmp_path / "run")).read_shards(SFT, list(REQUIRED_KEYS))
    datasets = tokenized_datasets(table, padded_model, seed=0, val_fraction=0.25, max_seq_len=256)
    config = loop_config(padded_model, batch_size=8, eval_every_steps=2, out_dir=str(tmp_path))
    _fit(recording_train_func, config, num_workers=2, datasets=datasets)
    assert isinstance(datasets["train"], ray.data.Dataset)
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"collectives-{rank}.json").read_text())
        ours = [r for r in seen["records"] if "teduo_ray" in r["caller"]]
        assert len(ours) >= 4, seen["records"]  # validation + throughput, per validation point
        assert all(r["device"] == seen["device"] for r in ours), ours
        assert not [r for r in ours if r["default_device"]], "tensors made on the default device, not the worker's"


@pytest.mark.slow
def test_grad_accum_equals_a_larger_batch_and_learns_under_zero2_and_zero3(ray_local_2cpu, tmp_path: Path,
                                                                           no_pad_model: str) -> None:
    from tests.sft.workers import accumulation_train_func

    config = loop_config(no_pad_model, gradient_checkpointing=True, zero_stages=[2, 3], out_dir=str(tmp_path))
    _fit(accumulation_train_func, config, num_workers=1)
    runs = json.loads((tmp_path / "accumulation-0.json").read_text())
    for zero in ("2", "3"):
        run = runs[zero]
        assert run["checkpointing"] and run["moved"] > 1e-4
        assert run["accum_loss"] == pytest.approx(run["whole_loss"], abs=1e-5)
        np.testing.assert_allclose(run["accum_weights"], run["whole_weights"], atol=1e-5)
        assert run["losses"][-1] < 0.8 * run["losses"][0], run["losses"]
