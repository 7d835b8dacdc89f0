"""Ray Data stages of the labeling processor: one class per stage, one ``map_batches`` each.

A stage declares the columns it needs (``REQUIRED_KEYS``, checked on every batch), builds
its expensive state once in ``__init__`` (a model, a tokenizer) and returns the batch with
only its own columns added; a stage that changed the number of rows raises.

Judges answer "is goal g achieved in state s?":
- :class:`OracleJudgeStage` — ground-truth predicates, optionally corrupted to a configured
  precision/recall (to study labeler noise);
- :class:`HFJudgeStage` — any Hugging Face causal LM, batched yes/no scoring from the
  next-token logits of one forward pass (no free-form generation);
- vLLM and OpenAI-compatible HTTP judges are ``ray.data.llm`` processors
  (:func:`build_vllm_judge`, :func:`build_http_judge`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.llm.loading import load_causal_lm

Batch = dict[str, np.ndarray]

JUDGE_SYSTEM = (
    "You are the reward function of a BabyAI grid world. Given the state of the world and a "
    "goal, answer Yes if the goal is achieved in this state and No otherwise."
)
JUDGE_USER = "STATE: {state}\nGOAL: {goal}\nIs the goal achieved in this state? Answer Yes or No."
JUDGE_MAX_TOKENS = 2


def judge_messages(goal_text: str, state_text: str) -> list[dict[str, str]]:
    """The hindsight-labeling prompt for one (state, goal) pair."""
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": JUDGE_USER.format(state=state_text, goal=goal_text)},
    ]


def answer_is_yes(text: str) -> bool:
    """Read a free-form judge answer ("Yes.", " yes", "No")."""
    return str(text).strip().lower().startswith("yes")


class Stage:
    """Base of a labeling stage: checks its input columns, adds columns, keeps every row."""

    REQUIRED_KEYS: dict[str, str] = {}

    def process(self, batch: Batch) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        missing = [k for k in self.REQUIRED_KEYS if k not in batch]
        if missing:
            raise ValueError(f"{type(self).__name__} needs columns {missing}; got {sorted(batch)}")
        n = len(next(iter(batch.values())))
        added = self.process(batch)
        for key, values in added.items():
            if len(values) != n:
                raise RuntimeError(f"{type(self).__name__} returned {len(values)} {key!r} for {n} rows")
        return {**batch, **added}


class RenderStage(Stage):
    """Renders the state the LLM reads as text."""

    REQUIRED_KEYS = {"prompt_state": "state bytes shown to the LLM (abstract or raw)"}

    def __init__(self, text_mode: str) -> None:
        self.text_mode = text_mode

    def process(self, batch: Batch) -> Batch:
        return {"state_text": np.array([render_state(bytes(b), self.text_mode) for b in batch["prompt_state"]], dtype=object)}


def uniform_hash(seed: int, goal_ids: np.ndarray, state_ids: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per (seed, goal, state), independent of batching (splitmix64)."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            goal_ids.astype(np.uint64) << np.uint64(32)
        ) ^ state_ids.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class OracleJudgeStage(Stage):
    """Ground truth as the "LLM", optionally corrupted.

    Args:
        goals: goal_id -> Goal.
        recall: probability that a true positive is labeled positive.
        flip_rates: goal_id -> probability that a true negative is labeled positive (chosen by
            the driver from the goal's positive rate so that precision hits the target).
        seed: corruption seed.
    """

    REQUIRED_KEYS = {
        "goal_id": "goal id",
        "state_id": "state id",
        "state": "abstract state bytes (predicates read them)",
    }

    def __init__(self, goals: dict[int, Goal], recall: float, flip_rates: dict[int, float], seed: int) -> None:
        self.goals, self.recall, self.flip_rates, self.seed = goals, recall, flip_rates, seed

    def process(self, batch: Batch) -> Batch:
        goal_ids = batch["goal_id"].astype(np.int64)
        truth = np.zeros(len(goal_ids), dtype=bool)
        for gid in np.unique(goal_ids):
            rows = np.flatnonzero(goal_ids == gid)
            states = StateBatch.from_blobs([bytes(batch["state"][i]) for i in rows])
            truth[rows] = achieved_batch(self.goals[int(gid)], states)
        u = uniform_hash(self.seed, goal_ids, batch["state_id"].astype(np.int64))
        flip = np.array([self.flip_rates.get(int(g), 0.0) for g in goal_ids])
        label = np.where(truth, u < self.recall, u < flip)
        return {"p_llm": label.astype(np.float32), "llm_label": label}


def oracle_flip_rates(positives: dict[int, int], totals: dict[int, int], precision: float, recall: float) -> dict[int, float]:
    """Per-goal false-positive rates that give the corrupted oracle the target precision.

    precision = R*pos / (R*pos + f*neg)  =>  f = R*pos*(1-P) / (P*neg).
    """
    rates = {}
    for gid, total in totals.items():
        pos, neg = positives.get(gid, 0), total - positives.get(gid, 0)
        rates[gid] = 0.0 if precision >= 1.0 or neg == 0 else min(1.0, recall * pos * (1 - precision) / (precision * neg))
    return rates


def yes_no_token_ids(tokenizer: Any) -> tuple[int, int]:
    """First token ids of "Yes" and "No"; raises if the tokenizer cannot tell them apart."""
    yes = tokenizer("Yes", add_special_tokens=False)["input_ids"]
    no = tokenizer("No", add_special_tokens=False)["input_ids"]
    if not yes or not no or yes[0] == no[0]:
        raise ValueError("the judge model's tokenizer cannot distinguish 'Yes' from 'No' in one token")
    return int(yes[0]), int(no[0])


class HFJudgeStage(Stage):
    """Batched yes/no scoring with a Hugging Face causal LM.

    p(achieved) = softmax over the next-token logits of "Yes" and "No" after the chat prompt.

    Args:
        model_path: Hugging Face directory or hub id.
        micro_batch: prompts per forward pass.
        torch_threads: CPU threads (fixed, so results do not depend on the worker's CPU share).
    """

    REQUIRED_KEYS = {"goal_text": "goal as worded", "state_text": "rendered state"}

    def __init__(self, model_path: str, micro_batch: int = 32, torch_threads: int = 1) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.tokenizer, self.model, self.device = load_causal_lm(model_path)
        self.yes, self.no = yes_no_token_ids(self.tokenizer)
        self.micro_batch = micro_batch

    def prompts(self, batch: Batch) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(judge_messages(str(g), str(s)), tokenize=False, add_generation_prompt=True)
            for g, s in zip(batch["goal_text"], batch["state_text"])
        ]

    def process(self, batch: Batch) -> Batch:
        import torch

        prompts = self.prompts(batch)
        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.micro_batch):
                enc = self.tokenizer(prompts[i : i + self.micro_batch], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
                logits = self.model(**enc).logits[:, -1, :].float()
                pair = torch.stack([logits[:, self.yes], logits[:, self.no]], dim=1)
                out.append(torch.softmax(pair, dim=1)[:, 0].cpu().numpy())
        p = np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
        return {"p_llm": p, "llm_label": p >= 0.5}


class HFGenerateStage(Stage):
    """Greedy generation with a Hugging Face causal LM (the one-per-goal abstraction call)."""

    REQUIRED_KEYS = {"messages_json": "chat messages as JSON"}

    def __init__(self, model_path: str, max_new_tokens: int = 128, torch_threads: int = 1) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.tokenizer, self.model, self.device = load_causal_lm(model_path)
        self.max_new_tokens = max_new_tokens

    def process(self, batch: Batch) -> Batch:
        import json

        import torch

        prompts = [
            self.tokenizer.apply_chat_template(json.loads(str(m)), tokenize=False, add_generation_prompt=True)
            for m in batch["messages_json"]
        ]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        answers = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return {"answer": np.array(answers, dtype=object)}


def _judge_preprocess(row: dict[str, Any]) -> dict[str, Any]:
    from teduo_ray.llm.processors import request

    return request("vllm", "", judge_messages(row["goal_text"], row["state_text"]), JUDGE_MAX_TOKENS)


def _judge_postprocess(row: dict[str, Any]) -> dict[str, Any]:
    from teduo_ray.llm.processors import answer_text

    yes = answer_is_yes(answer_text(row))
    return {
        "goal_id": row["goal_id"],
        "state_id": row["state_id"],
        "shard": row["shard"],
        "p_llm": np.float32(yes),
        "llm_label": yes,
    }


def _judge_row_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return judge_messages(row["goal_text"], row["state_text"])


def build_vllm_judge(model: str, batch_size: int, concurrency: int, max_model_len: int | None = None,
                     tensor_parallel: int = 1) -> Any:
    """A ``ray.data.llm`` vLLM processor that judges rows with goal_text/state_text (built by
    llm/processors.py, as the abstraction calls are). Needs vLLM and GPUs to run; building it
    (and inspecting its stages) works on CPU."""
    from teduo_ray.llm import processors

    return processors.build("vllm", model, batch_size, concurrency, _judge_row_messages, JUDGE_MAX_TOKENS,
                            _judge_postprocess, tensor_parallel=tensor_parallel,
                            max_model_len=max_model_len or processors.MAX_MODEL_LEN)


def build_http_judge(url: str, model: str, batch_size: int, concurrency: int, qps: int | None,
                     api_key: str | None = None) -> Any:
    """A ``ray.data.llm`` processor that judges rows through an OpenAI-compatible endpoint."""
    from teduo_ray.llm import processors

    return processors.build("http", model, batch_size, concurrency, _judge_row_messages, JUDGE_MAX_TOKENS,
                            _judge_postprocess, url=url, api_key=api_key, qps=qps)
