"""Texts the tiny model's tokenizer is trained on (goals, prompts, rendered states)."""

from __future__ import annotations

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.envs import get_adapter


def vocabulary_corpus(cfg: RunConfig, max_states: int = 2000) -> list[str]:
    """Texts the tiny model's tokenizer learns from: goals, paraphrases, prompts, states."""
    from teduo_ray.envs.babyai.goals import all_goals
    from teduo_ray.envs.babyai.paraphrase import paraphrase
    from teduo_ray.labeling.stages import JUDGE_SYSTEM, JUDGE_USER

    rng = np.random.default_rng(0)
    goals = all_goals(("go_to", "pick_up", "open", "put_next"))
    texts = [g.text for g in goals] + [paraphrase(g, rng) for g in goals for _ in range(3)]
    texts += [JUDGE_SYSTEM, JUDGE_USER, "Yes", "No", "Yes.", "No."] * 20
    adapter = get_adapter(cfg.env, cfg.seed)
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
