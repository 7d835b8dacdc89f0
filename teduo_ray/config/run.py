"""The whole run's config and the stable hash stages key their outputs on."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from teduo_ray.config._validate import require
from teduo_ray.config.env import DataConfig, EnvConfig
from teduo_ray.config.evaluation import EvalConfig
from teduo_ray.config.labeling import LabelingConfig
from teduo_ray.config.ray_cluster import RayConfig
from teduo_ray.config.rl import RLConfig
from teduo_ray.config.sft import SFTConfig


@dataclass(frozen=True)
class RunConfig:
    """One pipeline run.

    Args:
        run_dir: where every stage reads and writes (local path or a pyarrow.fs URI such
            as s3://bucket/run); stages talk only through Parquet files here.
        seed: the one seed every stage derives its randomness from.
    """

    run_dir: str = "runs/tiny"
    seed: int = 0
    env: EnvConfig = field(default_factory=EnvConfig)
    data: DataConfig = field(default_factory=DataConfig)
    labeling: LabelingConfig = field(default_factory=LabelingConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        require(bool(self.run_dir), "run_dir", "must not be empty")
        require(self.seed >= 0, "seed", "must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return _to_plain(dataclasses.asdict(self))

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections (plus the seed): what a stage's output depends on."""
        full = self.to_dict()
        return stable_hash({name: full[name] for name in ("seed", *sections)})


def stable_hash(payload: Any) -> str:
    """Short hash of a JSON-able value, independent of key order."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- loading
