"""The Ray section: how to reach Ray and how much of it each stage takes."""

from __future__ import annotations

from dataclasses import dataclass

from teduo_ray.config._validate import require


@dataclass(frozen=True)
class RayConfig:
    """How to reach Ray and how much of it each stage takes.

    Args:
        address: cluster address ("auto", "ray://host:10001", ...); None starts a local Ray
            unless the RAY_ADDRESS environment variable names one.
        num_cpus: CPUs of a locally started Ray (None = all).
        object_store_memory_mb: object store of a locally started Ray (None = Ray's default).
        collect_cpus_per_task: CPUs one collection task reserves (fractions allowed).
        dashboard: start a locally started Ray with its dashboard (Ray's default). It serves
            the State API that Ray Train's placement-group cleaner polls (without it the
            cleaner logs a warning every second), ``ray list ...`` and the web UI on
            127.0.0.1:8265; it costs ~0.9 GB of memory. A joined cluster has its own.
    """

    address: str | None = None
    num_cpus: int | None = None
    object_store_memory_mb: int | None = None
    collect_cpus_per_task: float = 1.0
    dashboard: bool = True

    def __post_init__(self) -> None:
        require(self.num_cpus is None or self.num_cpus >= 1, "ray.num_cpus", "must be >= 1")
        require(
           self.object_store_memory_mb is None or self.object_store_memory_mb >= 64,
           "ray.object_store_memory_mb",
           "must be >= 64",
       )
        require(self.collect_cpus_per_task > 0, "ray.collect_cpus_per_task", "must be > 0")