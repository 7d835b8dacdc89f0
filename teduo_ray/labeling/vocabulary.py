"""Texts the tiny model's tokenizer is trained on (goals, prompts, rendered states)."""

from __future__ import annotations

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.envs import get_adapter


def vocabulary_corpus(cfg: RunConfig, max_states: int = 2000) -> list[str]:
    """Texts the tiny model's tokenizer learns from: training goals, judge prompts, states.

    Training-split goals only, in their training wording: no test goal and no paraphrase
    reaches the tokenizer, so words only test goals use stay unseen until evaluation (the
    byte-level fallback encodes them). tests/sft/test_tokenizer_corpus.py checks this.
    """
    from teduo_ray.labeling.stages import JUDGE_SYSTEM, JUDGE_USER

    adapter = get_adapter(cfg.env, cfg.seed)
    texts = [e.text for e in adapter.goal_catalogue() if e.split == "train"] * 4
    texts += [JUDGE_SYSTEM, JUDGE_USER, "Yes", "No", "Yes.", "No."] * 20
    for blob in sample_states(cfg, max_states):
        texts.append(adapter.render(blob))
    return texts


def sample_states(cfg: RunConfig, max_states: int) -> list[bytes]:
    """About ``max_states`` interned states spread over the whole table (none before
    `label` has interned them), read without loading every state."""
    from teduo_ray.data.intern import STATES, StateReader
    from teduo_ray.errors import DataError
    from teduo_ray.rundir import RunDir

    run = RunDir(cfg.run_dir)
    if not run.exists(STATES, "states.parquet"):
        return []
    try:
        reader = StateReader(run)
    except DataError:
        return []
    return reader.take(np.arange(0, reader.num_states, max(1, reader.num_states // max_states)))
