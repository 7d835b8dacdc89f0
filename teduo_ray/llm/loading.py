"""Loading causal LMs and tokenizers: the one loader every model in the system goes through.

The SFT workers, the tokenising tasks, the evaluated agent and the Hugging Face judge and
abstraction call all load here, so three things hold everywhere at once:

- a tokenizer without a pad token (Llama-3's) pads with its eos token; SFT masks pads out of
  the loss by length, not by id, so eos keeps its meaning as the answer's end;
- a model directory may be a run-directory URI (``s3://bucket/run/finetune/model``): it is
  downloaded once per node to a local cache (Hugging Face loaders need a local directory),
  keyed by the URI and the files' sizes and times, so a re-exported model is fetched again;
- a PEFT adapter directory loads on its base model.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Any

from teduo_ray.errors import TeduoError


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


def load_causal_lm(model_path: str, device: str | None = None) -> tuple[Any, Any, str]:
    """(tokenizer, model, device) from a Hugging Face directory, run-directory URI or hub id,
    through :func:`load_model` (pad-token fallback, remote download);
    left padding for batched scoring."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer, model = load_model(model_path, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    tokenizer.padding_side = "left"
    return tokenizer, model.to(device).eval(), device
