"""Tiny model factory round trip, SFT masking, the validation split and the schedule (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from teduo_ray.errors import TeduoError
from teduo_ray.llm.loading import load_model
from teduo_ray.modelcheck import validate_model_dir
from teduo_ray.sft import prompt
from teduo_ray.sft.format import IGNORE, TokenizeStage, collate, encode, split_score
from teduo_ray.sft.models import base_model_dir, final_model_dir
from teduo_ray.sft.train_loop import lr_lambda
from tests.sft.helpers import sft_config, write_sft


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    run = tmp_path_factory.mktemp("run")
    write_sft(run, rows=30)
    return base_model_dir(sft_config(run))


def test_tiny_model_round_trip_same_outputs(tiny: str, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(tiny), AutoModelForCausalLM.from_pretrained(tiny)
    model.save_pretrained(tmp_path / "again")
    tok.save_pretrained(tmp_path / "again")
    tok2, model2 = load_model(str(tmp_path / "again"))
    text = tok.apply_chat_template(prompt.messages("goal object 2 steps forward.", "go to the azure orb"),
                                   tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|system|>\n" + prompt.SYSTEM_PROMPT) and text.endswith("<|assistant|>\n")
    ids = tok(text, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, tok2(text, return_tensors="pt")["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, model2(ids).logits)
    # unseen words still encode (byte fallback) and decode back
    assert tok.decode(tok("zyzzyva crate")["input_ids"]) == "zyzzyva crate"


def test_tiny_model_is_built_once(tiny: str) -> None:
    import os

    stamp = os.path.getmtime(os.path.join(tiny, "config.json"))
    from pathlib import Path

    run = Path(tiny).parents[1]
    assert base_model_dir(sft_config(run)) == tiny
    assert os.path.getmtime(os.path.join(tiny, "config.json")) == stamp


def test_tiny_model_of_another_size_is_a_clear_error(tiny: str) -> None:
    from pathlib import Path

    run = Path(tiny).parents[1]
    layers = sft_config(run).sft.tiny_layers
    with pytest.raises(TeduoError, match=f"num_hidden_layers {layers} \\(the config: {layers + 1}\\); delete"):
        base_model_dir(sft_config(run, f"sft.tiny_layers={layers + 1}"))


def test_masking_labels_only_on_the_answer(tiny: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    ex = encode(tok, "goal object 3 steps left.", "go to the red ball", [0, 2, 2])
    n = ex["prompt_len"]
    assert ex["labels"][:n] == [IGNORE] * n
    assert ex["labels"][n:] == ex["input_ids"][n:]
    assert tok.decode(ex["input_ids"][n:]) == "[0, 2, 2]<|end|>"
    assert ex["input_ids"][-1] == tok.eos_token_id
    prefix = tok.decode(ex["input_ids"][n: n + ex["first_len"]])
    assert prefix.startswith("[0") and prompt.first_action(prefix) == 0
    prompt_text = tok.apply_chat_template(prompt.messages("goal object 3 steps left.", "go to the red ball"),
                                          tokenize=False, add_generation_prompt=True)
    assert tok.decode(ex["input_ids"][:n]) == prompt_text

    batch = collate({"input_ids": np.array([np.array(ex["input_ids"]), np.array(ex["input_ids"][:-3])], dtype=object),
                     "labels": np.array([np.array(ex["labels"]), np.array(ex["labels"][:-3])], dtype=object),
                     "prompt_len": np.array([n, n]), "first_len": np.array([ex["first_len"]] * 2)},
                    pad_id=tok.pad_token_id)
    assert batch["attention_mask"][1].sum() == len(ex["input_ids"]) - 3
    assert (batch["labels"][1, -3:] == IGNORE).all() and (batch["input_ids"][1, -3:] == tok.pad_token_id).all()
    assert batch["first_mask"][0].sum() == ex["first_len"]


def test_tokenize_stage_split_is_deterministic_and_drops_long_rows(tiny: str) -> None:
    batch = {"goal_id": np.arange(40) % 4, "state_id": np.arange(40), "goal_text": np.array(["go to the red ball"] * 40),
             "state_text": np.array(["goal object 1 steps forward."] * 39 + ["obstacle far away. " * 40]),
             "actions": np.array([np.array([2], np.int8)] * 40, dtype=object)}
    short = int(TokenizeStage(tiny, seed=0, val_fraction=0.3, max_seq_len=10_000)(batch)["num_tokens"][0])
    out = TokenizeStage(tiny, seed=0, val_fraction=0.3, max_seq_len=short + 5)(batch)
    assert out["num_tokens"][-1] == -1 and (out["num_tokens"][:-1] > 0).all()
    again = split_score(0, batch["goal_id"][::-1], batch["state_id"][::-1])[::-1]
    assert np.array_equal(out["val"], again < 0.3)
    assert 0 < out["val"].sum() < 40
    assert not np.array_equal(split_score(0, batch["goal_id"], batch["state_id"]),
                              split_score(1, batch["goal_id"], batch["state_id"]))


def test_split_fraction_is_close_to_the_setting() -> None:
    score = split_score(7, np.repeat(np.arange(50), 200), np.tile(np.arange(200), 50))
    assert abs((score < 0.1).mean() - 0.1) < 0.01


def test_warmup_then_cosine() -> None:
    values = [lr_lambda(s, warmup=10, total=100) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:]))
    assert values[-1] < 0.01


def test_missing_model_and_unfinished_finetune_are_clear_errors(tmp_path) -> None:
    with pytest.raises(TeduoError, match="sft.model: model directory /nonexistent/model does not exist"):
        validate_model_dir("/nonexistent/model", "sft.model")
    with pytest.raises(TeduoError, match="cannot load the model"):
        load_model(str(tmp_path))
    with pytest.raises(TeduoError, match="run `teduo finetune` first"):
        final_model_dir(sft_config(tmp_path))


def test_lora_trains_only_adapter_parameters(tiny: str) -> None:
    from teduo_ray.sft.train_loop import build_model

    _, model = build_model({"model_dir": tiny, "bf16": False, "lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.0,
                            "lora_targets": ["q_proj", "v_proj"], "gradient_checkpointing": False})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    _, full = build_model({"model_dir": tiny, "bf16": False, "lora_rank": 0, "gradient_checkpointing": False})
    assert all(p.requires_grad for p in full.parameters())


def test_answer_actions_keeps_only_the_leading_actions(tiny: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    full = encode(tok, "goal object 3 steps left.", "go to the red ball", [0, 2, 2])
    one = encode(tok, "goal object 3 steps left.", "go to the red ball", [0, 2, 2], answer_actions=1)
    two = encode(tok, "goal object 3 steps left.", "go to the red ball", [0, 2, 2], answer_actions=2)
    n = one["prompt_len"]
    assert n == full["prompt_len"] and one["input_ids"][:n] == full["input_ids"][:n]
    assert tok.decode(one["input_ids"][n:]) == "[0]<|end|>"
    assert tok.decode(two["input_ids"][n:]) == "[0, 2]<|end|>"
    assert one["first_len"] == full["first_len"]  # the first action is the same tokens


def test_training_rows_are_a_seeded_shuffle_not_goal_by_goal(ray_local_2cpu, tiny: str) -> None:
    """distill writes SFT rows goal by goal; training must not see them in that order."""
    import pyarrow as pa

    from teduo_ray.sft.format import tokenized_datasets

    n = 400
    table = pa.table({"goal_id": np.repeat(np.arange(8), n // 8), "state_id": np.tile(np.arange(n // 8), 8),
                      "goal_text": ["go to the red ball"] * n, "state_text": ["goal object 1 step left."] * n,
                      "actions": [[0, 2]] * n})

    def train_order(seed: int) -> np.ndarray:
        ds = tokenized_datasets(table, tiny, seed=seed, val_fraction=0.1, max_seq_len=256)["train"]
        return np.concatenate([b["goal_id"] for b in ds.iter_batches(batch_size=None, batch_format="numpy")])

    order = train_order(0)
    assert sorted(order.tolist()) == sorted(g for g, v in zip(table["goal_id"].to_pylist(),
                                                              split_score(0, table["goal_id"], table["state_id"]) < 0.1)
                                            if not v)
    assert (order[1:] != order[:-1]).sum() > 100  # goal-sorted input: 7 changes


def test_goal_word_dropout_replaces_training_goal_words_only(tiny: str) -> None:
    from teduo_ray.sft.format import drop_goal_words

    rng = np.random.default_rng(0)
    assert drop_goal_words("pick up the red ball", 0.0, rng) == "pick up the red ball"
    out = [drop_goal_words("pick up the red ball", 0.5, np.random.default_rng(i)).split() for i in range(200)]
    assert all(len(w) == 5 for w in out)
    changed = np.mean([a != b for w in out for a, b in zip(w, "pick up the red ball".split())])
    assert 0.4 < changed < 0.6
    assert all(x.isalpha() and x.islower() for w in out for x in w)

    n = 64
    batch = {"goal_id": np.arange(n) % 4, "state_id": np.arange(n), "goal_text": np.array(["go to the red ball"] * n),
             "state_text": np.array(["goal object 1 step left."] * n), "actions": np.array([[0]] * n, dtype=object)}
    plain = TokenizeStage(tiny, seed=0, val_fraction=0.25, max_seq_len=256)(batch)
    dropped = TokenizeStage(tiny, seed=0, val_fraction=0.25, max_seq_len=256, goal_word_dropout=0.5)(batch)
    again = TokenizeStage(tiny, seed=0, val_fraction=0.25, max_seq_len=256, goal_word_dropout=0.5)(batch)
    same = [np.array_equal(a, b) for a, b in zip(plain["input_ids"], dropped["input_ids"])]
    assert all(s for s, v in zip(same, plain["val"]) if v)  # validation rows keep the real goal
    assert not all(s for s, v in zip(same, plain["val"]) if not v)
    assert all(np.array_equal(a, b) for a, b in zip(dropped["input_ids"], again["input_ids"]))  # seeded per pair
