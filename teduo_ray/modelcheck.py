"""Model directories are checked in the driver, before any Ray actor or worker loads them.

A model directory that lacks its tokenizer, has an unreadable config or a tokenizer that
cannot write the answers the stage reads (the action digits, "Yes"/"No") otherwise fails
inside a Ray actor, minutes later, as an ``ActorDiedError`` with a remote traceback. These
checks load only the config and the tokenizer (no weights), so they take about a second.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from teduo_ray.errors import ModelError

Needs = Literal["actions", "yes_no", "none"]
ACTION_DIGITS = "0123456"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_config(path: str) -> None:
    """The model's (or, for a PEFT adapter, its base model's) config."""
    from transformers import AutoConfig

    adapter = os.path.join(path, "adapter_config.json")
    if os.path.isfile(adapter):
        with open(adapter) as f:
            base = json.load(f).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{adapter} names no base_model_name_or_path")
        AutoConfig.from_pretrained(base)
        return
    AutoConfig.from_pretrained(path)


def _check_actions(tokenizer: Any) -> str | None:
    """Why the agent's answers ("[3, 1, ...]") cannot be written with this tokenizer, if so."""
    if not getattr(tokenizer, "chat_template", None):
        return "the tokenizer has no chat template (the agent's prompt is a chat)"
    unk = tokenizer.unk_token_id
    for d in ACTION_DIGITS:
        ids = tokenizer("[" + d, add_special_tokens=False)["input_ids"]
        if not ids or (unk is not None and unk in ids) or tokenizer.decode(ids).strip() != "[" + d:
            return f"the tokenizer cannot encode the action digit {d!r}"
    return None


def _check_yes_no(tokenizer: Any) -> str | None:
    yes = tokenizer("Yes", add_special_tokens=False)["input_ids"]
    no = tokenizer("No", add_special_tokens=False)["input_ids"]
    if not yes or not no or yes[0] == no[0]:
        return "the tokenizer cannot tell 'Yes' from 'No' by their first token"
    return None


def validate_model_dir(path: str, what: str, needs: Needs = "actions", fix: str = "") -> None:
    """Raise one :class:`ModelError` if a model directory (or hub id) cannot serve a stage.

    Checks: the directory exists (for local paths), its config loads, its tokenizer loads,
    and the tokenizer can write what the stage reads from the model.

    Args:
        path: model directory or Hugging Face hub id.
        what: the config key or role named in the error, e.g. "sft.model".
        needs: "actions" (the agent: a chat template and the digits 0-6), "yes_no" (the
            labeling judge) or "none".
        fix: the fix to suggest; by default, pointing ``what`` at a complete directory.
    """
    fix = fix or f"point {what} at a complete Hugging Face model directory"
    looks_local = path.startswith((".", "/", "~")) or os.path.exists(path)
    if looks_local and not os.path.isdir(os.path.expanduser(path)):
        raise ModelError(f"{what}: model directory {path} does not exist; {fix}")
    try:
        _load_config(path)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ModelError(f"{what}: the config of {path} cannot be loaded ({_first_line(exc)}); {fix}") from None
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{what}: no usable tokenizer in {path} ({_first_line(exc)}); {fix}") from None
    check = {"actions": _check_actions, "yes_no": _check_yes_no}.get(needs)
    problem = check(tokenizer) if check is not None else None
    if problem is not None:
        raise ModelError(f"{what}: {path}: {problem}; {fix}")
