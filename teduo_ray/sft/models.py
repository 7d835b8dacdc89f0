"""Which model the agent starts from and where the fine-tuned one lives.

``sft.model`` is a Hugging Face directory or hub id, or "tiny": a tiny Llama built once per
run directory (``RUN/models/tiny-agent``) with a byte-level BPE tokenizer trained on what the
agent will read during training: the SFT prompt (system prompt, action list), the training
goals' texts, state texts from ``sft/`` and the answers. No test goal text: words only the
test goals use stay unseen until evaluation (byte-level fallback). The fine-tuned model is exported by
``teduo finetune`` to ``RUN/finetune/model``.

Every model in the system is loaded here (:func:`load_tokenizer`, :func:`load_model`: the SFT
workers, the tokenising tasks, the evaluated agent and the Hugging Face judge), so two things
hold everywhere at once:

- a tokenizer without a pad token (Llama-3's) pads with its eos token; SFT masks pads out of
  the loss by length, not by id, so eos keeps its meaning as the answer's end;
- a model directory may be a run-directory URI (``s3://bucket/run/finetune/model``): it is
  downloaded once per node to a local cache (Hugging Face loaders need a local directory),
  keyed by the URI and the files' sizes and times, so a re-exported model is fetched again.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.errors import TeduoError
from teduo_ray.modelcheck import validate_model_dir
from teduo_ray.rundir import RunDir
from teduo_ray.schemas import SFT_TABLE

TINY_DIR = ("models", "tiny-agent")
FINETUNE = "finetune"
EXPORT = "model"
UPLOADED = "_uploaded"


def tiny_model_config(cfg: RunConfig):  # type: ignore[no-untyped-def]
    """The tiny model's size from ``sft.tiny_*`` (positions cover ``sft.max_seq_len``)."""
    from teduo_ray.sft.tiny_model import TinyModelConfig

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


def is_remote(run: RunDir) -> bool:
    """True when the run directory is not on a local (or mounted) filesystem."""
    import pyarrow.fs as pafs

    return not isinstance(run.fs, pafs.LocalFileSystem)


def run_uri(run: RunDir, *parts: str) -> str:
    """The URI of a run-directory entry: a local path, or ``scheme://root/parts``."""
    if not is_remote(run):
        return run.path(*parts)
    scheme = run.uri.split("://", 1)[0]
    return f"{scheme}://{run.path(*parts)}"


def upload_dir(local: str, run: RunDir, *parts: str) -> None:
    """Copy a local directory to a run-directory folder, replacing what was there; ``UPLOADED``
    is written last (object stores have no atomic folder rename: a killed upload lacks it)."""
    import pyarrow.fs as pafs

    if run.exists(*parts):
        run.fs.delete_dir(run.path(*parts))
    run.fs.create_dir(run.path(*parts), recursive=True)
    pafs.copy_files(local, run.path(*parts), source_filesystem=pafs.LocalFileSystem(), destination_filesystem=run.fs)
    run.write_bytes(b"", *parts, UPLOADED)


def cache_dir() -> str:
    """Where remote models are downloaded (``TEDUO_CACHE``, else ``~/.cache/teduo``)."""
    return os.path.join(os.environ.get("TEDUO_CACHE") or os.path.expanduser("~/.cache/teduo"), "models")


def local_model_dir(path: str) -> str:
    """A local directory holding the model at ``path`` (a local path or hub id is returned as is).

    A URI (``s3://...``) is downloaded into :func:`cache_dir` under a key of the URI and the
    listing's sizes and times, through a temporary folder renamed into place (concurrent
    loaders on one node never read a half-copied model).
    """
    import shutil
    import tempfile

    import pyarrow.fs as pafs

    if "://" not in path or path.startswith("file://"):
        return path.removeprefix("file://")
    fs, root = pafs.FileSystem.from_uri(path)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    if not infos:
        raise TeduoError(f"no model files under {path}")
    listing = sorted((i.path, i.size, str(i.mtime)) for i in infos if i.type == pafs.FileType.File)
    key = hashlib.sha256(repr((path, listing)).encode()).hexdigest()[:16]
    out = os.path.join(cache_dir(), f"{posixpath.basename(root.rstrip('/'))}-{key}")
    if os.path.isdir(out):
        return out
    os.makedirs(cache_dir(), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".download-", dir=cache_dir())
    try:
        pafs.copy_files(root, tmp, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        os.replace(tmp, out)
    except OSError:
        if not os.path.isdir(out):  # not a concurrent loader's rename winning the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def base_model_dir(cfg: RunConfig) -> str:
    """The model before fine-tuning: ``sft.model``, or the run's tiny model (built on first use).

    Raises:
        ModelError: the model directory or hub id cannot serve as the agent (checked here, in
            the driver, before Ray workers load it).
    """
    run = RunDir(cfg.run_dir)
    if cfg.sft.model != "tiny":
        validate_model_dir(cfg.sft.model, "sft.model")
        return cfg.sft.model
    if not run.exists(*TINY_DIR, UPLOADED if is_remote(run) else "config.json"):
        import tempfile

        from teduo_ray.sft.tiny_model import build_tiny_model

        if not is_remote(run):
            build_tiny_model(run.path(*TINY_DIR), sft_corpus(cfg), tiny_model_config(cfg))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                build_tiny_model(os.path.join(tmp, "model"), sft_corpus(cfg), tiny_model_config(cfg))
                upload_dir(os.path.join(tmp, "model"), run, *TINY_DIR)
    uri = run_uri(run, *TINY_DIR)
    validate_model_dir(local_model_dir(uri), "the tiny model", fix=f"delete {uri} and re-run (it is rebuilt)")
    return uri


def final_model_dir(cfg: RunConfig) -> str:
    """The exported fine-tuned model (``RUN/finetune/model``; a URI on a remote run directory).

    Raises:
        TeduoError: ``teduo finetune`` has not finished for this run directory.
    """
    run = RunDir(cfg.run_dir)
    manifest = run.read_json(FINETUNE, "_manifest.json") if run.exists(FINETUNE, "_manifest.json") else {}
    if not manifest.get("complete") or not run.exists(FINETUNE, EXPORT, "config.json") and not run.exists(
            FINETUNE, EXPORT, "adapter_config.json"):
        raise TeduoError(f"no fine-tuned model in {run.path(FINETUNE, EXPORT)}: run `teduo finetune` first")
    uri = run_uri(run, FINETUNE, EXPORT)
    validate_model_dir(local_model_dir(uri), "the fine-tuned model",
                       fix=f"delete {run.path(FINETUNE)} and run `teduo finetune` again")
    return uri


def load_tokenizer(path: str):  # type: ignore[no-untyped-def]
    """The tokenizer at ``path``; one without a pad token pads with its eos token.

    Llama-3's tokenizers define no pad token, so ``pad_token_id`` is None and padding a batch
    fails on the first one. eos is safe as the pad: padded positions are masked out of the
    attention and the loss by length, never found by comparing ids.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(local_model_dir(path))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TeduoError(f"the tokenizer at {path!r} has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: Any = None):  # type: ignore[no-untyped-def]
    """Tokenizer (:func:`load_tokenizer`) + causal LM from a directory, run-directory URI or hub
    id; a PEFT adapter directory loads on its base model."""
    from transformers import AutoModelForCausalLM

    path = local_model_dir(path)
    try:
        if os.path.exists(posixpath.join(path, "adapter_config.json")):
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tokenizer = load_tokenizer(path)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeduoError(f"cannot load the model at {path!r}: {first}") from None
    return tokenizer, model
