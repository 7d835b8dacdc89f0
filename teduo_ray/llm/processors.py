"""One builder for the labeling LLM's ``ray.data.llm`` processors (vLLM engine or an
OpenAI-compatible HTTP endpoint).

Both calls the labeler makes go through it — the per-goal abstraction answer
(labeling/generate.py) and the yes/no judge (labeling/stages.py) — so they load the model the
same way: a 70B model spans ``labeling.tensor_parallel`` GPUs for both, with the same
context length and the model's own chat template (Ray Data's chat-template stage, applied to
the ``messages`` column). Before, the abstraction's processor was built separately and ran a
70B model on one GPU. vLLM itself is an optional extra (``pip install -e ".[gpu]"``); building a
processor (not running it) works on CPU without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_MODEL_LEN = 8192  # a 22x22 Synth state in full text plus the prompt fits in ~2k tokens


def engine_config(backend: str, model: str, batch_size: int, concurrency: int, *, tensor_parallel: int = 1,
                  url: str = "", api_key: str | None = None, qps: int | None = None,
                  max_model_len: int = MAX_MODEL_LEN) -> Any:
    """The processor config for ``backend`` ("vllm" or "http")."""
    from ray.data.llm import HttpRequestProcessorConfig, vLLMEngineProcessorConfig

    if backend == "vllm":
        return vLLMEngineProcessorConfig(
            model_source=model,
            engine_kwargs={"max_model_len": max_model_len, "enable_prefix_caching": True,
                           "tensor_parallel_size": tensor_parallel},
            concurrency=concurrency,
            batch_size=batch_size,
            chat_template_stage=True,
            tokenize_stage=True,
            detokenize_stage=True,
        )
    if backend == "http":
        return HttpRequestProcessorConfig(
            url=url,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            qps=qps,
            batch_size=batch_size,
            concurrency=concurrency,
            max_retries=3,
        )
    raise ValueError(f"no ray.data.llm processor for backend {backend!r}")


def build(backend: str, model: str, batch_size: int, concurrency: int,
          messages: Callable[[dict[str, Any]], list[dict[str, str]]], max_tokens: int,
          postprocess: Callable[[dict[str, Any]], dict[str, Any]], **kwargs: Any) -> Any:
    """A processor that sends ``messages(row)`` greedily (temperature 0, ``max_tokens``) and
    maps each answer row through ``postprocess``; ``kwargs`` go to :func:`engine_config`."""
    from ray.data.llm import build_processor

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        return request(backend, model, messages(row), max_tokens)

    config = engine_config(backend, model, batch_size, concurrency, **kwargs)
    return build_processor(config, preprocess=preprocess, postprocess=postprocess)


def request(backend: str, model: str, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """One greedy chat request as the processor's stages read it (HTTP: an OpenAI payload)."""
    if backend == "http":
        return {"payload": {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}}
    return {"messages": messages, "sampling_params": {"temperature": 0.0, "max_tokens": max_tokens}}


def answer_text(row: dict[str, Any]) -> str:
    """The generated text of a vLLM row or an OpenAI-compatible HTTP response row."""
    text = row.get("generated_text")
    if text is None:
        choices = (row.get("http_response") or {}).get("choices") or [{}]
        text = (choices[0].get("message") or {}).get("content", "")
    return "" if text is None else str(text)
