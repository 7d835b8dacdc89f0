"""The labeling LLM's free-form answers (one abstraction call per goal) and its model path.

Used by the abstraction sub-step and by evaluation (the test goals' abstraction): the same
backend dispatch for both, so they cannot drift apart.
"""

from __future__ import annotations

import json
import os
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.rundir import RunDir

ABSTRACTION_MAX_TOKENS = 256


def generate(cfg: RunConfig, run: RunDir, prompts: list[tuple[int, list[dict[str, str]]]]) -> dict[int, str]:
    """Greedy answers of the labeling LLM to a few prompts (the abstraction calls), via Ray Data.

    Args:
        cfg: the run config (labeling backend, model, batch size).
        run: the run directory (where a "tiny" model is built).
        prompts: (goal id, chat messages) pairs.

    Returns:
        goal id -> the model's answer.
    """
    import ray

    from teduo_ray.runtime import init_ray

    init_ray(cfg.ray)
    lab = cfg.labeling
    ds = ray.data.from_items([{"goal_id": gid, "messages_json": json.dumps(m)} for gid, m in prompts])
    if lab.backend == "hf":
        from teduo_ray.labeling.stages import HFGenerateStage

        ds = ds.map_batches(
            HFGenerateStage,
            fn_constructor_kwargs={"model_path": resolve_model(cfg, run), "torch_threads": lab.torch_threads},
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=lab.actor_cpus,
            num_gpus=lab.actor_gpus or None,
            batch_size=lab.batch_size,
        )
        return {int(r["goal_id"]): str(r["answer"]) for r in ds.take_all()}
    return {int(r["goal_id"]): str(r["answer"]) for r in abstraction_processor(cfg)(ds).take_all()}


def abstraction_processor(cfg: RunConfig) -> Any:
    """The vLLM / HTTP processor of the abstraction calls: llm/processors.py's builder, as
    the judge's (same tensor parallelism, context length and chat template)."""
    from teduo_ray.llm import processors

    lab = cfg.labeling

    def post(row: dict[str, Any]) -> dict[str, Any]:
        return {"goal_id": row["goal_id"], "answer": processors.answer_text(row)}

    return processors.build(
        lab.backend, lab.model, lab.batch_size, lab.num_actors, lambda row: json.loads(row["messages_json"]),
        ABSTRACTION_MAX_TOKENS, post, tensor_parallel=lab.tensor_parallel, url=lab.http_url,
        api_key=os.environ.get(lab.http_api_key_env))


def resolve_model(cfg: RunConfig, run: RunDir) -> str:
    """The labeling model's path: "tiny" builds (once) a tiny model in the run directory; any
    other value is a Hugging Face directory or hub id, checked in the driver before Ray Data
    starts (config, tokenizer, and Yes / No as distinct tokens: one clear error)."""
    from teduo_ray.modelcheck import validate_model_dir

    lab = cfg.labeling
    if lab.model == "tiny":
        from teduo_ray.labeling.vocabulary import vocabulary_corpus
        from teduo_ray.llm.tiny import run_tiny_model

        return run_tiny_model(run, ("models", "tiny-judge"), lambda: vocabulary_corpus(cfg), None, "the tiny judge",
                              needs="yes_no")
    validate_model_dir(lab.model, "labeling.model", needs="yes_no")
    return lab.model
