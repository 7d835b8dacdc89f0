"""Functions that run inside Ray Train workers for tests/sft/test_train_loop.py.

They live in an importable module (not the test file) so Ray pickles them by reference, and
write what they saw to JSON files under ``config["out_dir"]`` (a Ray Train V2 result has no
metrics unless a checkpoint was reported).
"""

from __future__ import annotations

import json
import os
import sys
import weakref
from typing import Any

COLLECTIVES = ("all_reduce", "broadcast", "reduce", "all_gather_into_tensor", "reduce_scatter_tensor")


def _write(config: dict[str, Any], name: str, payload: Any) -> None:
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    with open(os.path.join(config["out_dir"], f"{name}-{rank}.json"), "w") as f:
        json.dump(payload, f)


def recording_train_func(config: dict[str, Any]) -> None:
    """The real ``train_func``, with every collective's tensor recorded: its device, and whether
    a factory call (torch.zeros, torch.tensor, ...) made it without a ``device`` argument, i.e.
    on the process's default device. On a GPU worker that is the CPU, and NCCL rejects it; on
    this CPU machine the two coincide, so the second check is what catches it here."""
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from torch.overrides import TorchFunctionMode

    from teduo_ray.sft.train_loop import train_func

    factories = {torch.zeros, torch.ones, torch.empty, torch.full, torch.tensor, torch.as_tensor, torch.arange}
    made_on_default: dict[int, weakref.ref] = {}

    class TagDefaultDevice(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if func in factories and kwargs.get("device") is None and isinstance(out, torch.Tensor):
                made_on_default[id(out)] = weakref.ref(out)
            return out

    records: list[dict[str, Any]] = []

    def wrap(name: str) -> None:
        real = getattr(dist, name)

        def recorded(tensor, *args, **kwargs):  # type: ignore[no-untyped-def]
            ref = made_on_default.get(id(tensor))
            records.append({"op": name, "device": str(tensor.device), "caller": sys._getframe(1).f_code.co_filename,
                            "default_device": ref is not None and ref() is tensor})
            return real(tensor, *args, **kwargs)

        setattr(dist, name, recorded)

    for name in COLLECTIVES:
        wrap(name)
    with TagDefaultDevice():
        train_func(config)
    _write(config, "collectives", {"device": str(ray.train.torch.get_device()), "records": records})


def _flat_weights(trainer: Any) -> list[float]:
    """All parameters of the worker's model as one list (gathered under ZeRO-3)."""
    from contextlib import nullcontext

    import torch

    params = list(trainer.unwrapped.parameters())
    gather = nullcontext()
    if trainer.zero == 3:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    with gather:
        return torch.cat([p.detach().float().flatten().clone() for p in params]).tolist()


def accumulation_train_func(config: dict[str, Any]) -> None:
    """Per ZeRO stage: one optimizer step of 2 micro-batches of 4 vs one batch of 8 (same
    examples, gradient checkpointing on), and the loss over 8 accumulated steps."""
    import torch

    from teduo_ray.llm.loading import load_tokenizer
    from teduo_ray.sft.train_loop import Trainer
    from tests.sft.helpers import equal_answer_batch

    tokenizer = load_tokenizer(config["model_dir"])
    halves = [equal_answer_batch(tokenizer, 4), equal_answer_batch(tokenizer, 4, start=4)]
    whole = equal_answer_batch(tokenizer, 8)
    out: dict[str, Any] = {}
    for zero in config["zero_stages"]:
        run: dict[str, Any] = {}
        for key, batch_size, accum, group in (("accum", 4, 2, halves), ("whole", 8, 1, [whole])):
            torch.manual_seed(0)
            trainer = Trainer({**config, "zero_stage": zero, "batch_size": batch_size, "grad_accum": accum})
            before = _flat_weights(trainer)
            run[f"{key}_loss"] = trainer.step(group)
            run[f"{key}_weights"] = _flat_weights(trainer)
            run["moved"] = max(abs(a - b) for a, b in zip(before, run[f"{key}_weights"]))
            run["checkpointing"] = bool(trainer.unwrapped.is_gradient_checkpointing)
        trainer = Trainer({**config, "zero_stage": zero, "batch_size": 4, "grad_accum": 2})
        run["losses"] = [trainer.step(halves) for _ in range(8)]
        out[str(zero)] = run
    _write(config, "accumulation", out)
