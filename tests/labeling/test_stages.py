"""Labeling stages: the stage contract, the oracle and Hugging Face judges on a tiny model,
and the vLLM / HTTP processors' wiring on CPU (built, never run: no engine starts)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import StateBatch, encode_state
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.labeling.stages import (
    JUDGE_SYSTEM,
    JUDGE_USER,
    HFJudgeStage,
    OracleJudgeStage,
    RenderStage,
    _judge_postprocess,
    _judge_preprocess,
    answer_is_yes,
    build_http_judge,
    build_vllm_judge,
    judge_messages,
    oracle_flip_rates,
    uniform_hash,
    yes_no_token_ids,
)

EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)


def grid_with(things: dict[tuple[int, int], tuple[str, str]]) -> np.ndarray:
    grid = np.zeros((8, 8, 3), dtype=np.uint8)
    grid[:, :] = EMPTY
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    for (x, y), (name, color) in things.items():
        grid[x, y] = (OBJECT_TO_IDX[name], COLOR_TO_IDX[color], 0)
    return grid


def states() -> list[bytes]:
    """Eight small states: facing the red ball or not, carrying it or not."""
    grid = grid_with({(4, 3): ("ball", "red"), (2, 5): ("key", "blue"), (6, 6): ("box", "green")})
    held = grid_with({(2, 5): ("key", "blue"), (6, 6): ("box", "green")})
    out = [encode_state(grid, (3, 3), d, None) for d in range(4)]
    out += [
        encode_state(held, (3, 3), d, (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"]))
        for d in range(2)
    ]
    out += [encode_state(grid, (2, 4), 1, None), encode_state(grid, (5, 5), 2, None)]
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama and a BPE tokenizer trained on the judge's own words (nothing downloaded)."""
    from teduo_ray.llm.tiny import TinyModelConfig, build_tiny_model

    texts = [JUDGE_SYSTEM, JUDGE_USER, "Yes", "No", "Yes.", "No."] * 10
    texts += [render_state(s, mode) for s in states() for mode in ("full", "egocentric")]
    texts += ["go to the red ball", "pick up the red ball", "open the blue door"]
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny") / "judge", texts, TinyModelConfig(vocab_size=512)
    )


# ----------------------------------------------------------------------------- the stage contract


def test_stage_checks_its_input_columns() -> None:
    with pytest.raises(ValueError, match=r"RenderStage needs columns \['prompt_state'\]"):
        RenderStage("full")({"state": np.array([b"x"], dtype=object)})


def test_render_stage_adds_only_its_column() -> None:
    blobs = states()
    batch = {"prompt_state": np.array(blobs, dtype=object), "goal_id": np.arange(len(blobs))}
    out = RenderStage("egocentric")(batch)
    assert set(out) == {"prompt_state", "goal_id", "state_text"}
    assert out["goal_id"] is batch["goal_id"]
    assert list(out["state_text"]) == [render_state(b, "egocentric") for b in blobs]


def oracle_batch(
    goal_ids: list[int], state_ids: list[int], blobs: list[bytes]
) -> dict[str, np.ndarray]:
    return {
        "goal_id": np.array(goal_ids, np.int32),
        "state_id": np.array(state_ids, np.int32),
        "state": np.array(blobs, dtype=object),
    }


GOALS = {0: Goal("go_to", "red", "ball"), 1: Goal("pick_up", "red", "ball")}


def test_exact_oracle_is_the_ground_truth() -> None:
    blobs = states()
    n = len(blobs)
    batch = oracle_batch([0] * n + [1] * n, list(range(n)) * 2, blobs * 2)
    out = OracleJudgeStage(GOALS, recall=1.0, flip_rates={}, seed=0)(batch)
    truth = np.concatenate([achieved_batch(GOALS[g], StateBatch.from_blobs(blobs)) for g in (0, 1)])
    np.testing.assert_array_equal(out["llm_label"], truth)
    np.testing.assert_array_equal(out["p_llm"], truth.astype(np.float32))
    assert truth.any() and not truth.all()


def test_corrupted_oracle_does_not_depend_on_batching() -> None:
    rng = np.random.default_rng(0)
    blobs = states()
    rows = 400
    gids = rng.integers(0, 2, rows).tolist()
    sids = rng.integers(0, 10_000, rows).tolist()
    picks = [blobs[i] for i in rng.integers(0, len(blobs), rows)]
    stage = OracleJudgeStage(GOALS, recall=0.6, flip_rates={0: 0.3, 1: 0.1}, seed=5)
    whole = stage(oracle_batch(gids, sids, picks))["llm_label"]
    parts = np.concatenate(
        [
            stage(oracle_batch(gids[i : i + 37], sids[i : i + 37], picks[i : i + 37]))["llm_label"]
            for i in range(0, rows, 37)
        ]
    )
    np.testing.assert_array_equal(whole, parts)
    assert 0 < whole.sum() < rows


def test_oracle_flip_rates_hit_the_target_precision() -> None:
    rates = oracle_flip_rates({0: 10, 1: 0, 2: 5}, {0: 100, 1: 50, 2: 5}, precision=0.7, recall=0.8)
    assert rates[1] == 0.0  # no positives: nothing to protect, never flip
    assert rates[2] == 0.0  # no negatives to flip
    tp, fp = 0.8 * 10, rates[0] * 90
    assert tp / (tp + fp) == pytest.approx(0.7)
    assert oracle_flip_rates({0: 10}, {0: 100}, precision=1.0, recall=0.5) == {0: 0.0}
    assert oracle_flip_rates({0: 90}, {0: 100}, precision=0.1, recall=1.0) == {0: 1.0}  # capped


def test_uniform_hash_is_uniform_and_stateless() -> None:
    g = np.repeat(np.arange(50), 200)
    s = np.tile(np.arange(200), 50)
    u = uniform_hash(3, g, s)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(uniform_hash(3, g[::-1], s[::-1]), u[::-1])
    assert not np.array_equal(uniform_hash(4, g, s), u)


# ----------------------------------------------------------------------------- Hugging Face judge


def judge_batch(goals: list[str], texts: list[str]) -> dict[str, np.ndarray]:
    return {"goal_text": np.array(goals, dtype=object), "state_text": np.array(texts, dtype=object)}


def test_hf_judge_scores_a_small_batch(tiny_model: Path) -> None:
    blobs = states()
    a = ("go to the red ball", render_state(blobs[0], "egocentric"))
    b = ("pick up the red ball", render_state(blobs[4], "egocentric"))
    c = (
        "open the blue door",
        render_state(blobs[6], "full") * 3,
    )  # much longer: more padding for the others
    rows = [a, b, a, c, a, b]
    stage = HFJudgeStage(str(tiny_model), micro_batch=2)
    out = stage(judge_batch([r[0] for r in rows], [r[1] for r in rows]))
    p = out["p_llm"]
    assert p.dtype == np.float32 and p.shape == (6,)
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(p))
    np.testing.assert_array_equal(out["llm_label"], p >= 0.5)
    # the same prompt in other positions and micro-batches (other padding) scores the same
    np.testing.assert_allclose(p[[2, 4]], p[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(p[5], p[1], rtol=0, atol=1e-5)
    alone = stage(judge_batch([a[0]], [a[1]]))["p_llm"]
    np.testing.assert_allclose(alone, p[0], rtol=0, atol=1e-5)
    assert abs(p[0] - p[3]) > 1e-6, "different prompts get different scores"


def test_hf_judge_on_an_empty_batch(tiny_model: Path) -> None:
    out = HFJudgeStage(str(tiny_model))(judge_batch([], []))
    assert out["p_llm"].shape == (0,) and out["llm_label"].shape == (0,)


def test_tiny_tokenizer_tells_yes_from_no(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    yes, no = yes_no_token_ids(tokenizer)
    assert yes != no
    assert "Yes".startswith(tokenizer.decode([yes])) and "No".startswith(tokenizer.decode([no]))


def word_level_tokenizer():  # type: ignore[no-untyped-def]
    """A real word-level tokenizer trained on text without "Yes" or "No": both become [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["go to the red ball", "pick up the blue key", "open the door"],
        trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[PAD]"
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    return fast


def test_yes_no_token_ids_refuses_a_tokenizer_that_cannot_tell_them_apart() -> None:
    tokenizer = word_level_tokenizer()
    assert (
        tokenizer("Yes", add_special_tokens=False)["input_ids"]
        == tokenizer("No", add_special_tokens=False)["input_ids"]
    )
    with pytest.raises(ValueError, match="cannot distinguish 'Yes' from 'No'"):
        yes_no_token_ids(tokenizer)


class EmptyTokenizer:
    """A stand-in tokenizer that encodes everything to no tokens."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": []}


def test_yes_no_token_ids_refuses_a_tokenizer_without_tokens() -> None:
    with pytest.raises(ValueError, match="cannot distinguish"):
        yes_no_token_ids(EmptyTokenizer())


def test_hf_judge_with_such_a_tokenizer_fails_at_construction(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_level_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="cannot distinguish 'Yes' from 'No'"):
        HFJudgeStage(str(tmp_path))


# ----------------------------------------------------------------------------- vLLM / HTTP wiring


@pytest.mark.usefixtures("ray_local_2cpu")
@pytest.mark.timeout(300)
def test_vllm_judge_wiring_on_cpu(tiny_model: Path) -> None:
    processor = build_vllm_judge(str(tiny_model), batch_size=16, concurrency=2)
    assert processor.list_stage_names() == [
        "ChatTemplateStage",
        "TokenizeStage",
        "vLLMEngineStage",
        "DetokenizeStage",
    ]
    engine = processor.get_stage_by_name("vLLMEngineStage")
    kwargs = engine.map_batches_kwargs
    assert kwargs["num_gpus"] == 1
    assert kwargs["compute"].max_size == 2  # Ray Data LLM: an int concurrency n = a pool of up to n
    assert engine.fn_constructor_kwargs["model"] == str(tiny_model)
    assert engine.fn_constructor_kwargs["batch_size"] == 16
    assert engine.fn_constructor_kwargs["engine_kwargs"]["enable_prefix_caching"] is True
    for name in ("ChatTemplateStage", "TokenizeStage", "DetokenizeStage"):
        stage = processor.get_stage_by_name(name)
        assert stage.fn_constructor_kwargs["model"] == str(tiny_model)
        assert "num_gpus" not in stage.map_batches_kwargs
    assert "vllm" not in sys.modules, "building the processor must not import vLLM"


@pytest.mark.usefixtures("ray_local_2cpu")
@pytest.mark.timeout(300)
def test_vllm_processor_carries_the_ids_through_pre_and_postprocess(tiny_model: Path) -> None:
    processor = build_vllm_judge(str(tiny_model), batch_size=16, concurrency=2)
    row = {
        "goal_id": 3,
        "state_id": 7,
        "shard": 1,
        "goal_text": "go to the red ball",
        "state_text": "you face east.",
    }
    data = processor.preprocess(dict(row))["__data"]
    assert data["messages"] == judge_messages("go to the red ball", "you face east.")
    out = processor.postprocess({"__data": {**data, "generated_text": "Yes"}})
    assert out == {"goal_id": 3, "state_id": 7, "shard": 1, "p_llm": 1.0, "llm_label": True}


@pytest.mark.usefixtures("ray_local_2cpu")
@pytest.mark.timeout(300)
def test_http_judge_wiring() -> None:
    processor = build_http_judge(
        "http://127.0.0.1:9/v1/chat/completions",
        "judge-model",
        batch_size=8,
        concurrency=2,
        qps=5,
        api_key="secret",
    )
    assert processor.list_stage_names() == ["HttpRequestStage"]
    stage = processor.get_stage_by_name("HttpRequestStage")
    assert stage.fn_constructor_kwargs["url"] == "http://127.0.0.1:9/v1/chat/completions"
    assert stage.fn_constructor_kwargs["additional_header"] == {"Authorization": "Bearer secret"}
    assert stage.fn_constructor_kwargs["qps"] == 5
    assert stage.map_batches_kwargs["compute"].max_size == 2
    assert "num_gpus" not in stage.map_batches_kwargs
    row = {
        "goal_id": 0,
        "state_id": 1,
        "shard": 0,
        "goal_text": "open the blue door",
        "state_text": "s",
    }
    payload = processor.preprocess(dict(row))["__data"]["payload"]
    assert payload == {
        "model": "judge-model",
        "messages": judge_messages("open the blue door", "s"),
        "temperature": 0.0,
        "max_tokens": 2,
    }
    no_key = build_http_judge("http://127.0.0.1:9/v1", "m", 8, 1, None)
    assert (
        no_key.get_stage_by_name("HttpRequestStage").fn_constructor_kwargs["additional_header"]
        is None
    )


# ----------------------------------------------------------------------------- pre / postprocess


def test_judge_preprocess() -> None:
    out = _judge_preprocess(
        {"goal_text": "pick up the red ball", "state_text": "you carry nothing.", "goal_id": 1}
    )
    assert out == {
        "messages": judge_messages("pick up the red ball", "you carry nothing."),
        "sampling_params": {"temperature": 0.0, "max_tokens": 2},
    }
    user = out["messages"][1]["content"]
    assert "STATE: you carry nothing." in user and "GOAL: pick up the red ball" in user


IDS = {"goal_id": 4, "state_id": 11, "shard": 2}


@pytest.mark.parametrize(
    ("text", "yes"),
    [
        ("Yes", True),
        (" no", False),
        ("Yes.", True),
        ("  YES, it is", True),
        ("No.", False),
        ("yes\n", True),
        ("", False),
        ("Maybe", False),
        ("The answer is yes", False),
        ("Nope", False),
    ],
)
def test_judge_postprocess_reads_vllm_output(text: str, yes: bool) -> None:
    out = _judge_postprocess({**IDS, "generated_text": text, "prompt": "ignored"})
    assert out == {**IDS, "p_llm": float(yes), "llm_label": yes}
    assert isinstance(out["p_llm"], np.float32)


def http_row(response: object) -> dict[str, object]:
    return {**IDS, "http_response": response}


@pytest.mark.parametrize(
    ("response", "yes"),
    [
        ({"choices": [{"message": {"role": "assistant", "content": "Yes"}}]}, True),
        ({"choices": [{"message": {"role": "assistant", "content": " No."}}]}, False),
        (
            {"choices": [{"message": {"content": "yes"}}, {"message": {"content": "No"}}]},
            True,
        ),  # the first choice
        ({"choices": [{"message": {"content": None}}]}, False),  # e.g. a refusal or tool call
        ({"choices": [{"message": None}]}, False),
        ({"choices": [{}]}, False),
        ({"choices": []}, False),
        ({"error": {"message": "rate limited"}}, False),
        ({}, False),
        (None, False),
    ],
)
def test_judge_postprocess_reads_openai_http_responses(response: object, yes: bool) -> None:
    assert _judge_postprocess(http_row(response)) == {**IDS, "p_llm": float(yes), "llm_label": yes}


def test_answer_is_yes() -> None:
    assert answer_is_yes("Yes") and answer_is_yes(" yes.") and answer_is_yes("YES!")
    assert not answer_is_yes("No") and not answer_is_yes("")
    assert not answer_is_yes(None)  # type: ignore[arg-type]


@pytest.mark.usefixtures("ray_local_2cpu")
@pytest.mark.timeout(300)
def test_abstraction_and_judge_processors_come_from_one_builder(tiny_model: Path, tmp_path: Path) -> None:
    """A 70B labeler spans labeling.tensor_parallel GPUs for the per-goal abstraction call as
    for the judge (the abstraction's processor used to be built on its own, on one GPU)."""
    import ray

    from teduo_ray.labeling.generate import abstraction_processor
    from teduo_ray.labeling.judge import build_judge_pipeline
    from teduo_ray.rundir import RunDir
    from tests.conftest import small_config

    cfg = small_config(tmp_path, "labeling.backend=vllm", f"labeling.model={tiny_model}",
                       "labeling.tensor_parallel=4", "labeling.num_actors=2")
    abstraction = abstraction_processor(cfg)
    judge = build_vllm_judge(cfg.labeling.model, cfg.labeling.batch_size, cfg.labeling.num_actors,
                             tensor_parallel=cfg.labeling.tensor_parallel)
    for processor in (abstraction, judge):
        assert processor.list_stage_names() == ["ChatTemplateStage", "TokenizeStage", "vLLMEngineStage",
                                                "DetokenizeStage"]
        engine = processor.get_stage_by_name("vLLMEngineStage").fn_constructor_kwargs
        assert engine["engine_kwargs"]["tensor_parallel_size"] == 4
        assert engine["engine_kwargs"]["max_model_len"] == 8192
        assert engine["model"] == str(tiny_model)
    # the stage's own wiring goes through the same builder
    ds = ray.data.from_items([{"prompt_state": b"", "goal_text": "g"}])
    wired = build_judge_pipeline(cfg, RunDir(str(tmp_path)), ds, [], None)  # type: ignore[arg-type]
    assert wired is not None
    assert "vllm" not in sys.modules
