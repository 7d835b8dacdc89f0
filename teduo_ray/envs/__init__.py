"""Environments behind one protocol (see base.py); BabyAI is shipped."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from teduo_ray.config import EnvConfig
    from teduo_ray.envs.babyai.adapter import BabyAIAdapter


def get_adapter(cfg: EnvConfig, seed: int) -> BabyAIAdapter:
    """The adapter named by ``cfg.name``."""
    if cfg.name == "babyai":
        from teduo_ray.envs.babyai.adapter import BabyAIAdapter

        return BabyAIAdapter(cfg, seed)
    raise ValueError(f"unknown environment {cfg.name!r}")  # config validation prevents this
