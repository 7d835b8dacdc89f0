"""Which model the agent starts from and where the fine-tuned one lives.

``sft.model`` is a Hugging Face directory or hub id, or "tiny": a tiny Llama built once per
run directory (``RUN/models/tiny-agent``) with a byte-level BPE tokenizer trained on what the
agent will read during training: the SFT prompt (system prompt, action list), the training
goals' texts, state texts from ``sft/`` and the answers. No test goal text: words only the
test goals use stay unseen until evaluation (byte-level fallback). The fine-tuned model is exported by
``teduo finetune`` to ``RUN/finetune/model``.

Models are loaded by the LLM layer (llm/loading.py) and the tiny model is built by
llm/tiny.py; this module only decides which directory (local or a run-directory URI).
"""

from __future__ import annotations

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.text import TEXT_FORMAT
from teduo_ray.errors import ModelError, TeduoError
from teduo_ray.layout import SFT
from teduo_ray.llm.loading import local_model_dir
from teduo_ray.modelcheck import validate_model_dir
from teduo_ray.rundir import RunDir, run_uri
from teduo_ray.schemas import SFT_TABLE

TINY_DIR = ("models", "tiny-agent")
FINETUNE = "finetune"
EXPORT = "model"


def tiny_model_config(cfg: RunConfig):  # type: ignore[no-untyped-def]
    """The tiny model's size from ``sft.tiny_*`` (positions cover ``sft.max_seq_len``)."""
    from teduo_ray.llm.tiny import TinyModelConfig

    s = cfg.sft
    return TinyModelConfig(vocab_size=s.tiny_vocab, hidden_size=s.tiny_hidden, intermediate_size=s.tiny_intermediate,
                           num_layers=s.tiny_layers, num_heads=s.tiny_heads, max_positions=max(2048, s.max_seq_len),
                           seed=cfg.seed)


def sft_corpus(cfg: RunConfig, max_rows: int = 4000) -> list[str]:
    """Texts the tiny tokenizer learns from: training goals, the agent prompt, SFT states and answers."""
    from teduo_ray.labeling.vocabulary import vocabulary_corpus
    from teduo_ray.sft import prompt

    texts = vocabulary_corpus(cfg)
    texts += [prompt.SYSTEM_PROMPT, prompt.USER_TEMPLATE, prompt.ACTION_LIST] * 20
    texts += [prompt.answer([a, b, c]) for a in range(7) for b in range(7) for c in range(7)]
    run = RunDir(cfg.run_dir)
    if run.exists("sft", "_manifest.json"):
        table = run.read(SFT_TABLE, ["goal_text", "state_text", "actions"])
        step = max(1, table.num_rows // max_rows)
        rows = table.take(list(range(0, table.num_rows, step))).to_pylist()
        for r in rows:
            texts.append(prompt.USER_TEMPLATE.format(actions=prompt.ACTION_LIST, state=r["state_text"],
                                                     goal=r["goal_text"]))
            texts.append(prompt.answer(r["actions"]))
    return texts


def base_model_dir(cfg: RunConfig) -> str:
    """The model before fine-tuning: ``sft.model``, or the run's tiny model (built on first use).

    Raises:
        ModelError: the model directory or hub id cannot serve as the agent (checked here, in
            the driver, before Ray workers load it).
    """
    if cfg.sft.model != "tiny":
        validate_model_dir(cfg.sft.model, "sft.model")
        return cfg.sft.model
    from teduo_ray.llm.tiny import run_tiny_model

    return run_tiny_model(RunDir(cfg.run_dir), TINY_DIR, lambda: sft_corpus(cfg), tiny_model_config(cfg),
                          "the tiny model")


def text_format(cfg: RunConfig) -> int:
    """The version of the state text the agent reads (``env.text_mode``'s rendering)."""
    return TEXT_FORMAT[cfg.env.text_mode]


def final_model_dir(cfg: RunConfig) -> str:
    """The exported fine-tuned model (``RUN/finetune/model``; a URI on a remote run directory).

    Raises:
        TeduoError: ``teduo finetune`` has not finished for this run directory.
        ModelError: the model was fine-tuned on another version of the state text.
    """
    run = RunDir(cfg.run_dir)
    manifest = run.read_json(FINETUNE, "_manifest.json") if run.exists(FINETUNE, "_manifest.json") else {}
    if not manifest.get("complete") or not run.exists(FINETUNE, EXPORT, "config.json") and not run.exists(
            FINETUNE, EXPORT, "adapter_config.json"):
        raise TeduoError(f"no fine-tuned model in {run.path(FINETUNE, EXPORT)}: run `teduo finetune` first")
    trained_on = manifest.get("text_format", 1)  # runs from before the version was recorded: 1
    if trained_on != text_format(cfg):
        raise ModelError(
            f"the fine-tuned model in {run.path(FINETUNE, EXPORT)} was trained on {cfg.env.text_mode} state text "
            f"of format {trained_on}, this version of teduo-ray writes format {text_format(cfg)} (see "
            f"envs/babyai/text.py TEXT_FORMAT): delete {run.path(SFT)} and {run.path(FINETUNE)} (and "
            f"{run.path(*TINY_DIR)} with sft.model=tiny), then run `teduo distill` and `teduo finetune` again")
    uri = run_uri(run, FINETUNE, EXPORT)
    validate_model_dir(local_model_dir(uri), "the fine-tuned model",
                       fix=f"delete {run.path(FINETUNE)} and run `teduo finetune` again")
    return uri



