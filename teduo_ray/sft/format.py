"""SFT examples: chat-template prompt -> action-list answer, loss on the answer only.

Each ``sft/`` row (goal_text, state_text, actions) becomes
``input_ids = prompt + answer + eos`` where the prompt is the model's chat template applied
to :func:`teduo_ray.sft.prompt.messages` with the generation prompt, exactly what the agent
is asked at evaluation time. ``labels`` are -100 on every prompt token, so only the answer
(and its end token) is learned.

Validation split: a row is held out when a hash of ``(seed, goal_id, state_id)`` falls below
``sft.val_fraction``, so the split is deterministic, independent of file order and worker
count, and a (goal, state) pair is never in both splits (the same state under another goal
may be; that is a different example).

Tokenising is one Ray Data ``map_batches`` stage (:class:`TokenizeStage`, run as tasks) so it
streams into the trainer's shards and scales with the cluster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IGNORE = -100
REQUIRED_KEYS = {
    "goal_id": "goal id (split key)",
    "state_id": "state id (split key)",
    "goal_text": "the goal as the agent reads it",
    "state_text": "the (abstract) state as the agent reads it",
    "actions": "the action list the agent should output",
}


def split_score(seed: int, goal_id: np.ndarray, state_id: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) number per (goal, state), fixed by the seed (splitmix64)."""
    x = (np.asarray(goal_id, dtype=np.uint64) << np.uint64(32)) ^ np.asarray(state_id, dtype=np.uint64)
    x = x ^ np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64))
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def drop_goal_words(goal_text: str, rate: float, rng: np.random.Generator) -> str:
    """``goal_text`` with each word replaced, with probability ``rate``, by a random string of
    3-8 lowercase letters: words the model has never seen, as a test goal's unseen synonyms
    are to a model trained from scratch. Trained this way it learns to act from the state
    (where the abstraction marks the goal object) when the goal's words are unfamiliar,
    instead of guessing from an unknown verb."""
    words = goal_text.split()
    for i in np.flatnonzero(rng.random(len(words)) < rate):
        words[i] = "".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(3, 9)))
    return " ".join(words)


def encode(tokenizer: Any, state_text: str, goal_text: str, actions: Any, answer_actions: int = 0) -> dict[str, Any]:
    """Token ids, labels (prompt masked) and where the first action ends, for one example.

    ``answer_actions`` > 0 keeps only that many leading actions of the answer (0 = the whole
    list, the paper's format): the agent only ever acts on the first one, and a long answer
    spreads a small model's loss over later, more ambiguous actions.

    Returns:
        ``input_ids``, ``labels`` (int lists), ``prompt_len`` and ``first_len``: answer tokens
        up to and including the one holding the first action's digit (for first-action
        accuracy under teacher forcing).
    """
    from teduo_ray.sft import prompt

    text = tokenizer.apply_chat_template(prompt.messages(state_text, goal_text), tokenize=False,
                                         add_generation_prompt=True)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    target = prompt.answer(list(actions)[:answer_actions] if answer_actions > 0 else actions)
    enc = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
    answer_ids = list(enc["input_ids"]) + [tokenizer.eos_token_id]
    first_len = next(i + 1 for i, (a, b) in enumerate(enc["offset_mapping"]) if b > 1)
    return {
        "input_ids": list(prompt_ids) + answer_ids,
        "labels": [IGNORE] * len(prompt_ids) + answer_ids,
        "prompt_len": len(prompt_ids),
        "first_len": first_len,
    }


class TokenizeStage:
    """Ray Data stage: tokenise SFT rows and tag each with its split.

    Adds ``input_ids``, ``labels``, ``prompt_len``, ``first_len``, ``num_tokens``, ``val``;
    drops the text columns. Rows longer than ``max_seq_len`` get ``num_tokens = -1`` and are
    filtered out by :func:`tokenized_datasets` (counted, never truncated).
    """

    def __init__(self, model_dir: str, seed: int, val_fraction: float, max_seq_len: int,
                 answer_actions: int = 0, goal_word_dropout: float = 0.0) -> None:
        from teduo_ray.llm.loading import load_tokenizer

        self.tokenizer = load_tokenizer(model_dir)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"the tokenizer at {model_dir} has no chat template")
        self.seed, self.val_fraction, self.max_seq_len = seed, val_fraction, max_seq_len
        self.answer_actions, self.goal_word_dropout = answer_actions, goal_word_dropout

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        missing = [k for k in REQUIRED_KEYS if k not in batch]
        if missing:
            raise KeyError(f"TokenizeStage needs columns {missing} ({[REQUIRED_KEYS[k] for k in missing]})")
        val = split_score(self.seed, batch["goal_id"], batch["state_id"]) < self.val_fraction
        goals = list(batch["goal_text"])
        if self.goal_word_dropout > 0:  # training rows only; the same words every epoch (seeded per pair)
            for i in np.flatnonzero(~val):
                rng = np.random.default_rng([self.seed, int(batch["goal_id"][i]), int(batch["state_id"][i])])
                goals[i] = drop_goal_words(goals[i], self.goal_word_dropout, rng)
        rows = [encode(self.tokenizer, s, g, a, self.answer_actions)
                for s, g, a in zip(batch["state_text"], goals, batch["actions"])]
        lengths = np.array([len(r["input_ids"]) for r in rows], dtype=np.int64)
        return {
            "goal_id": np.asarray(batch["goal_id"]),
            "input_ids": np.array([np.asarray(r["input_ids"], np.int32) for r in rows] + [None], dtype=object)[:-1],
            "labels": np.array([np.asarray(r["labels"], np.int32) for r in rows] + [None], dtype=object)[:-1],
            "prompt_len": np.array([r["prompt_len"] for r in rows], np.int64),
            "first_len": np.array([r["first_len"] for r in rows], np.int64),
            "num_tokens": np.where(lengths <= self.max_seq_len, lengths, -1),
            "val": val,
        }


_STAGES: dict[tuple[Any, ...], TokenizeStage] = {}


def tokenize_batch(batch: dict[str, np.ndarray], **kwargs: Any) -> dict[str, Any]:
    """Task form of :class:`TokenizeStage` (the tokenizer is built once per worker process)."""
    key = tuple(sorted(kwargs.items()))
    if key not in _STAGES:
        _STAGES[key] = TokenizeStage(**kwargs)
    return _STAGES[key](batch)


def tokenized_datasets(sft: Any, model_dir: str, seed: int, val_fraction: float, max_seq_len: int,
                       num_cpus: float = 0.25, answer_actions: int = 0,
                       goal_word_dropout: float = 0.0) -> dict[str, Any]:
    """Lazy Ray Datasets ``{"train", "val"}`` of tokenised SFT examples.

    Args:
        sft: the SFT rows as a pyarrow Table (a few MB even at the paper's scale), trained in a
            random order fixed by ``seed``. It is handed to Ray Data by the driver rather than
            read with ``read_parquet``, whose file-listing task takes a whole CPU: next to the
            trainer's workers on a 2-CPU node it never gets scheduled and training hangs
            without an error.
        model_dir: tokenizer directory or run-directory URI.
        seed / val_fraction: the split (see the module docstring).
        max_seq_len: longer examples are dropped.
        answer_actions: leading actions kept in each answer (0 = all; see :func:`encode`).
        goal_word_dropout: share of goal words replaced in training rows (:func:`drop_goal_words`).
        num_cpus: CPUs of each tokenising task (tasks, not an actor pool: they release their
            CPUs, so they cannot starve the trainer or the other way round).
    """
    import ray
    from ray.data.expressions import col

    # distill writes the rows goal by goal: trained in that order, a batch holds one goal's
    # examples and the model drifts towards the goals it saw last (a 0.6M model never learned
    # "pick up" when facing the object). Shuffled once, seeded, as Hugging Face's Trainer does.
    sft = sft.take(np.random.default_rng(seed).permutation(sft.num_rows))
    tokenized = ray.data.from_arrow(sft).map_batches(
        tokenize_batch,
        fn_kwargs={"model_dir": model_dir, "seed": seed, "val_fraction": val_fraction, "max_seq_len": max_seq_len,
                   "answer_actions": answer_actions, "goal_word_dropout": goal_word_dropout},
        num_cpus=num_cpus,
        batch_size=256,
        batch_format="numpy",
    ).filter(expr=col("num_tokens") >= 0)
    return {"train": tokenized.filter(expr=col("val") == False),  # noqa: E712 (a Ray Data expression)
            "val": tokenized.filter(expr=col("val") == True)}  # noqa: E712


def collate(batch: dict[str, np.ndarray], pad_id: int) -> dict[str, Any]:
    """Pad a numpy batch of examples into torch tensors (right padding, labels -100 on pads)."""
    import torch

    ids, labels = batch["input_ids"], batch["labels"]
    width = max(len(x) for x in ids)
    n = len(ids)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    out_labels = torch.full((n, width), IGNORE, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    first_mask = torch.zeros((n, width), dtype=torch.bool)
    for i, (x, y) in enumerate(zip(ids, labels)):
        input_ids[i, : len(x)] = torch.as_tensor(np.asarray(x, np.int64))
        out_labels[i, : len(y)] = torch.as_tensor(np.asarray(y, np.int64))
        attention[i, : len(x)] = 1
        p, f = int(batch["prompt_len"][i]), int(batch["first_len"][i])
        first_mask[i, p: p + f] = True
    return {"input_ids": input_ids, "labels": out_labels, "attention_mask": attention, "first_mask": first_mask}
