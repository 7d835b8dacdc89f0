"""The LLM agent as a batched :class:`~teduo_ray.evaluation.policy.Policy`.

Every step, the prompts of all live episodes go through ONE batched forward pass (left
padding + attention mask, micro-batched), built exactly as the SFT data was: the state is
abstracted with the goal's selection, rendered in the run's text mode and wrapped in the
shared chat prompt (sft/prompt.py), followed by the answer's opening "[". Only valid action
tokens are decoded: the next-token logits are restricted to the digits "0".."6" (the action
ids), then argmax (temperature 0) or a sample from softmax(logits / T). Where a tokenizer does
not give each digit its own token after "[", each of the 7 candidate continuations is scored
instead (sum of its token log-probabilities), which needs 7 sequences per query.

Scores are cached per distinct query (bounded LRU, ``cache_entries``): an agent that fails
walks in circles, turns in place and bumps into walls for up to 500 steps, so the same
(state, goal) query comes back again and again. A prompt's scores do not depend on what else
is in the batch (up to float rounding), so the cache changes no action's distribution, only
how many prompts an evaluation renders and runs through the model.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from teduo_ray.envs.babyai.constants import NUM_ACTIONS
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.evaluation.policy import Query
from teduo_ray.labeling.abstraction import abstract_blobs, parse_selection
from teduo_ray.sft.prompt import messages

log = logging.getLogger(__name__)
ANSWER_OPEN = "["


@lru_cache(maxsize=4096)
def _selection(text: str):  # type: ignore[no-untyped-def]
    return parse_selection(text) if text else None


def state_texts(queries: Sequence[Query], text_mode: str) -> list[str]:
    """The (abstract) state text of each query, as the SFT data renders it.

    Queries that share a selection and a grid size are abstracted in one vectorised call.
    """
    blobs: list[bytes] = [q.state for q in queries]
    groups: dict[tuple[str, int], list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault((q.selection, len(q.state)), []).append(i)
    for (sel_text, _), idx in groups.items():
        selection = _selection(sel_text)
        if selection is None:
            continue
        for i, blob in zip(idx, abstract_blobs([blobs[i] for i in idx], selection)):
            blobs[i] = blob
    return [render_state(b, text_mode) for b in blobs]


def digit_token_ids(tokenizer: Any, probe_prompt: str) -> list[int] | None:
    """Token ids of "0".."6" when each is ONE token right after ``probe_prompt + "["``, else None.

    Checked on a real prompt: byte-level BPE pre-tokenisation splits punctuation from digits,
    so "[3" encodes as the tokens of "[" then "3"; a tokenizer that merges them fails the check.
    """
    head = tokenizer(probe_prompt + ANSWER_OPEN, add_special_tokens=False)["input_ids"]
    ids = []
    for d in range(NUM_ACTIONS):
        full = tokenizer(probe_prompt + ANSWER_OPEN + str(d), add_special_tokens=False)["input_ids"]
        if len(full) != len(head) + 1 or full[: len(head)] != head:
            return None
        ids.append(int(full[-1]))
    return ids if len(set(ids)) == NUM_ACTIONS else None


def _common_prefix(ids: list[list[int]]) -> int:
    """Length of the longest common prefix, leaving every sequence at least one token."""
    lo, hi = min(ids), max(ids)  # the LCP of a set is the LCP of its lexicographic extremes
    k = 0
    while k < len(lo) and lo[k] == hi[k]:
        k += 1
    return min(k, min(len(x) for x in ids) - 1)


class LLMPolicy:
    """A Hugging Face causal LM that answers the agent prompt; one forward pass per step.

    Args:
        model_dir: Hugging Face directory or hub id.
        text_mode: state text mode of the run (``env.text_mode``), as in the SFT data.
        temperature: 0 = greedy; > 0 = sample from softmax(logits / temperature).
        micro_batch: prompts per forward pass.
        torch_threads: CPU threads (fixed, for reproducible scores on a loaded machine).
        name: the method's name in the results table.
        device: "cpu", "cuda", ... (None = cuda when available).
        share_prefix: encode the prompts' common prefix once per micro-batch and share its
            KV cache (same scores up to float rounding; off = whole prompts, left-padded).
        cache_entries: distinct queries whose scores are kept (LRU; 0 = no cache). Memory
            is about 200 bytes per entry (a 16-byte digest and NUM_ACTIONS floats).
    """

    def __init__(
        self,
        model_dir: str,
        text_mode: str,
        temperature: float = 0.0,
        micro_batch: int = 64,
        torch_threads: int = 1,
        name: str = "llm",
        device: str | None = None,
        share_prefix: bool = True,
        cache_entries: int = 0,
    ) -> None:
        import torch

        from teduo_ray.llm.loading import load_causal_lm

        torch.set_num_threads(torch_threads)
        self.name = name
        self.text_mode = text_mode
        self.temperature = temperature
        self.micro_batch = micro_batch
        self.tokenizer, self.model, self.device = load_causal_lm(model_dir, device)
        self.share_prefix = share_prefix
        self.cache = ScoreCache(cache_entries)
        # transformers renamed the KV-cache argument past_key_values -> cache (5.2x); take either
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT
        self._cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        probe = self.prompt("the agent is in a room", "go to the red ball")
        self.digit_ids = digit_token_ids(self.tokenizer, probe[: -len(ANSWER_OPEN)])
        if self.digit_ids is None:
            log.warning("%s: the tokenizer does not encode each action digit as one token after '['; "
                        "scoring the %d candidate continuations instead (slower)", model_dir, NUM_ACTIONS)

    def prompt(self, state_text: str, goal_text: str) -> str:
        """The generation prompt, ending with the answer's opening bracket."""
        chat = self.tokenizer.apply_chat_template(
            messages(state_text, goal_text), add_generation_prompt=True, tokenize=False
        )
        return chat + ANSWER_OPEN

    def prompts(self, queries: Sequence[Query]) -> list[str]:
        texts = state_texts(queries, self.text_mode)
        return [self.prompt(s, q.goal_text) for s, q in zip(texts, queries)]

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        """(N, NUM_ACTIONS) action scores of the queries; cached queries (and repeats within
        the batch) are neither rendered nor run through the model again."""
        return self.cache.scores(queries, lambda qs: self.action_logits(self.prompts(qs)))

    def action_logits(self, prompts: list[str]) -> np.ndarray:
        """(N, NUM_ACTIONS) scores of the actions after each prompt.

        Prompts are sorted by token length into micro-batches (less padding), then restored.
        """
        import torch

        if not prompts:
            return np.zeros((0, NUM_ACTIONS), np.float32)
        if self.digit_ids is None:
            with torch.inference_mode():
                parts = [self._candidate_scores(prompts[i : i + self.micro_batch])
                         for i in range(0, len(prompts), self.micro_batch)]
            return np.concatenate(parts) if parts else np.zeros((0, NUM_ACTIONS), np.float32)
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(prompts), NUM_ACTIONS), np.float32)
        with torch.inference_mode():
            for i in range(0, len(order), self.micro_batch):
                rows = order[i : i + self.micro_batch]
                out[rows] = self._next_token_logits([ids[r] for r in rows])
        return out

    def _next_token_logits(self, ids: list[list[int]]) -> np.ndarray:
        """Digit logits after each prompt; the prompts' common prefix (system prompt, action
        list) is encoded once and its KV cache shared by the whole micro-batch."""
        prefix = _common_prefix(ids)
        if self.share_prefix and prefix >= 8:
            try:
                return self._logits_shared_prefix(ids, prefix)
            except (TypeError, ValueError, AttributeError, NotImplementedError, RuntimeError) as exc:
                log.warning("%s: prefix sharing unavailable (%s); encoding whole prompts", self.name, exc)
                self.share_prefix = False
        enc = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        logits = self.model(**enc, logits_to_keep=1).logits[:, -1, :]
        return logits[:, self.digit_ids].float().cpu().numpy()

    def _logits_shared_prefix(self, ids: list[list[int]], prefix: int) -> np.ndarray:
        """Suffixes right-padded after the cached prefix, so every real token keeps its position."""
        import torch

        n = len(ids)
        head = torch.tensor([ids[0][:prefix]], device=self.device)
        out = self.model(input_ids=head, use_cache=True)
        cache = out.cache if self._cache_kw == "cache" else out.past_key_values
        cache.batch_repeat_interleave(n)
        lengths = [len(x) - prefix for x in ids]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id
        tail = torch.tensor([x[prefix:] + [pad] * (width - len(x) + prefix) for x in ids], device=self.device)
        mask = torch.zeros((n, prefix + width), dtype=torch.long, device=self.device)
        for r, k in enumerate(lengths):
            mask[r, : prefix + k] = 1
        last = torch.tensor(lengths, device=self.device) - 1
        keep = torch.unique(last)
        logits = self.model(input_ids=tail, attention_mask=mask, use_cache=True, logits_to_keep=keep,
                            **{self._cache_kw: cache}).logits
        rows = logits[torch.arange(n, device=self.device), torch.searchsorted(keep, last)]
        return rows[:, self.digit_ids].float().cpu().numpy()

    def _candidate_scores(self, prompts: list[str]) -> np.ndarray:
        """Sum of log-probabilities of each continuation "0".."6" (any tokenisation)."""
        import torch

        tok = self.tokenizer
        texts = [p + str(d) for p in prompts for d in range(NUM_ACTIONS)]
        heads = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        logp = torch.log_softmax(self.model(**enc).logits.float(), dim=-1)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        lengths = mask.sum(dim=1)
        width = ids.shape[1]
        scores = torch.zeros(len(texts))
        for r in range(len(texts)):
            start = width - int(lengths[r]) + heads[r // NUM_ACTIONS]  # left padding
            pos = torch.arange(start, width)
            scores[r] = logp[r, pos - 1, ids[r, pos]].sum()
        return scores.view(len(prompts), NUM_ACTIONS).numpy()

    def stats(self) -> dict[str, int]:
        """Prompts scored by a forward pass (``forward_prompts``) and answered from the cache."""
        return {"forward_prompts": self.cache.misses, "cached_prompts": self.cache.hits}

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.int64)
        return choose(self.scores(queries), self.temperature, rng)


class ScoreCache:
    """Bounded LRU of per-query action scores, keyed by a 16-byte digest of what the prompt is
    made of (state bytes, goal wording, abstraction): a hit skips rendering and the forward.

    Args:
        entries: capacity (0 = off: every call computes every query).
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self.rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(q: Query) -> bytes:
        h = hashlib.blake2b(q.state, digest_size=16)
        h.update(b"\0" + q.goal_text.encode() + b"\0" + q.selection.encode())
        return h.digest()

    def scores(self, queries: Sequence[Query], compute) -> np.ndarray:  # type: ignore[no-untyped-def]
        """(N, NUM_ACTIONS) scores; ``compute(distinct missing queries)`` fills the misses."""
        if self.entries <= 0:
            self.misses += len(queries)
            return compute(list(queries))
        out = np.zeros((len(queries), NUM_ACTIONS), np.float32)
        missing: dict[bytes, list[int]] = {}
        for i, q in enumerate(queries):
            k = self.key(q)
            row = self.rows.get(k)
            if row is None:
                missing.setdefault(k, []).append(i)
            else:
                self.rows.move_to_end(k)
                out[i] = row
        self.hits += len(queries) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute([queries[rows[0]] for rows in missing.values()])
            for (k, rows), row in zip(missing.items(), fresh):
                out[rows] = row
                self.rows[k] = row.copy()
            while len(self.rows) > self.entries:
                self.rows.popitem(last=False)
        return out


def choose(scores: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Greedy (temperature 0; ties -> lowest action) or a sample from softmax(scores / T)."""
    if temperature == 0.0:
        return np.argmax(scores, axis=1).astype(np.int64)
    z = scores / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(len(p))[:, None]
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), NUM_ACTIONS - 1).astype(np.int64)
