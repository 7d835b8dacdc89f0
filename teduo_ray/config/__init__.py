"""Typed, frozen configs for the whole pipeline.

Raw YAML (plus dotted ``key=value`` overrides from the CLI) becomes these dataclasses once,
in :func:`load_config`. Unknown keys, wrong types and impossible values raise one
:class:`ConfigError` naming the dotted key. Derive variants with ``dataclasses.replace``.
One module per section; import the names from here.
"""

from teduo_ray.config.env import DataConfig, EnvConfig, GoalType, TextMode
from teduo_ray.config.evaluation import EvalConfig
from teduo_ray.config.labeling import LabelingConfig
from teduo_ray.config.loading import from_dict, load_config
from teduo_ray.config.ray_cluster import RayConfig
from teduo_ray.config.rl import RLConfig
from teduo_ray.config.run import RunConfig, stable_hash
from teduo_ray.config.sft import SFTConfig

__all__ = ["DataConfig", "EnvConfig", "EvalConfig", "GoalType", "LabelingConfig", "RLConfig", "RayConfig",
           "RunConfig", "SFTConfig", "TextMode", "from_dict", "load_config", "stable_hash"]
