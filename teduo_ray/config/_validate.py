"""The one way a config section reports an impossible value: a ConfigError naming the key."""

from __future__ import annotations

import difflib

from teduo_ray.envs.babyai.constants import BABYAI_LEVELS
from teduo_ray.errors import ConfigError


def require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def unknown_level(level: str) -> str:
    """The message for a level minigrid does not register, with the closest names."""
    close = difflib.get_close_matches(level, sorted(BABYAI_LEVELS), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else "e.g. BabyAI-GoToLocal-v0 or BabyAI-Synth-v0"
    return f"{level!r} is not a registered BabyAI level ({hint})"
