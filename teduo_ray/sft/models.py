"""Which model the agent starts from and where the fine-tuned one lives.

``sft.model`` is a Hugging Face directory or hub id, or "tiny": a tiny Llama built once per
run directory (``RUN/models/tiny-agent``) with a byte-level BPE tokenizer trained on what the
agent will read during training: the SFT prompt (system prompt, action list), the training
goals' texts, state texts from ``sft/`` and the answers. No test goal text: words only the
test goals use stay unseen until evaluation (byte-level fallback). The fine-tuned model is exported by
``teduo finetune`` to ``RUN/finetune/model``.
"""

from __future__ import annotations

import posixpath
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.errors import TeduoError
from teduo_ray.rundir import RunDir

TINY_DIR = ("models", "tiny-agent")
FINETUNE = "finetune"
EXPORT = "model"


def tiny_model_config(cfg: RunConfig):  # type: ignore[no-untyped-def]
    """The tiny model's size from ``sft.tiny_*`` (positions cover ``sft.max_seq_len``)."""
    from teduo_ray.sft.tiny_model import TinyModelConfig

    s = cfg.sft
    return TinyModelConfig(vocab_size=s.tiny_vocab, hidden_size=s.tiny_hidden, intermediate_size=s.tiny_intermediate,
                           num_layers=s.tiny_layers, num_heads=s.tiny_heads, max_positions=max(2048, s.max_seq_len),
                           seed=cfg.seed)


def sft_corpus(cfg: RunConfig, max_rows: int = 4000) -> list[str]:
    """Texts the tiny tokenizer learns from: training goals, the agent prompt, SFT states and answers."""
    from teduo_ray.labeling.label import vocabulary_corpus
    from teduo_ray.sft import prompt

    texts = vocabulary_corpus(cfg)
    texts += [prompt.SYSTEM_PROMPT, prompt.USER_TEMPLATE, prompt.ACTION_LIST] * 20
    texts += [prompt.answer([a, b, c]) for a in range(7) for b in range(7) for c in range(7)]
    run = RunDir(cfg.run_dir)
    if run.exists("sft", "_manifest.json"):
        table = run.read_shards("sft", ["goal_text", "state_text", "actions"])
        step = max(1, table.num_rows // max_rows)
        rows = table.take(list(range(0, table.num_rows, step))).to_pylist()
        for r in rows:
            texts.append(prompt.USER_TEMPLATE.format(actions=prompt.ACTION_LIST, state=r["state_text"],
                                                     goal=r["goal_text"]))
            texts.append(prompt.answer(r["actions"]))
    return texts


def _local_dir(run: RunDir, *parts: str) -> str:
    """A local path for a run-directory folder (HF loaders need a local directory)."""
    if type(run.fs).__name__ != "LocalFileSystem":
        raise TeduoError(f"sft.model=tiny needs a local or mounted run_dir; {run.uri} is remote")
    return run.path(*parts)


def base_model_dir(cfg: RunConfig) -> str:
    """The model before fine-tuning: ``sft.model``, or the run's tiny model (built on first use).

    Raises:
        TeduoError: the model directory or hub id cannot be loaded.
    """
    run = RunDir(cfg.run_dir)
    if cfg.sft.model != "tiny":
        check_loadable(cfg.sft.model)
        return cfg.sft.model
    out = _local_dir(run, *TINY_DIR)
    if not run.exists(*TINY_DIR, "config.json"):
        from teduo_ray.sft.tiny_model import build_tiny_model

        build_tiny_model(out, sft_corpus(cfg), tiny_model_config(cfg))
    return out


def final_model_dir(cfg: RunConfig) -> str:
    """The exported fine-tuned model (``RUN/finetune/model``).

    Raises:
        TeduoError: ``teduo finetune`` has not finished for this run directory.
    """
    run = RunDir(cfg.run_dir)
    manifest = run.read_json(FINETUNE, "_manifest.json") if run.exists(FINETUNE, "_manifest.json") else {}
    if not manifest.get("complete") or not run.exists(FINETUNE, EXPORT, "config.json") and not run.exists(
            FINETUNE, EXPORT, "adapter_config.json"):
        raise TeduoError(f"no fine-tuned model in {run.path(FINETUNE, EXPORT)}: run `teduo finetune` first")
    return _local_dir(run, FINETUNE, EXPORT)


def check_loadable(name: str) -> None:
    """One clear error when a model directory or hub id has no loadable config/tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(name)
        AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeduoError(f"sft.model={name!r} cannot be loaded as a Hugging Face causal LM: {first}") from None


def load_model(path: str, dtype: Any = None):  # type: ignore[no-untyped-def]
    """Tokenizer + causal LM from a directory or hub id; a PEFT adapter dir loads on its base."""
    import os

    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        if os.path.exists(posixpath.join(path, "adapter_config.json")):
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeduoError(f"cannot load the model at {path!r}: {first}") from None
    return tokenizer, model
