"""A tiny Llama-architecture model and a tokenizer trained on the environment's own words.

Nothing is downloaded: the tokenizer is a byte-level BPE trained with ``tokenizers`` on the
texts the agent is trained on (training goals, state descriptions, prompts, actions; never
a test goal's wording), so any unseen word still encodes (bytes) instead of crashing or
becoming a silent UNK. The model and
tokenizer are saved as a normal Hugging Face directory and loaded back through
``from_pretrained``, so tests and the default job run the same loading path as a real model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from teduo_ray.rundir import UPLOADED, RunDir, is_remote, run_uri, upload_dir

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
PAD = "<|pad|>"


@dataclass(frozen=True)
class TinyModelConfig:
    """Size of the tiny model.

    Args:
        vocab_size: BPE vocabulary size (byte alphabet + merges + specials).
        hidden_size: transformer width.
        intermediate_size: MLP width.
        num_layers: transformer blocks.
        num_heads: attention heads.
        max_positions: longest sequence.
        seed: initialisation seed.
        pad_token: give the tokenizer a ``<|pad|>`` token. False builds it like Llama-3's:
            no pad token, eos (``<|end|>``) the only end token, so tests exercise the
            pad-token fallback (:func:`teduo_ray.llm.loading.load_tokenizer`) real models need.

    Weights start at std ``hidden_size ** -0.5`` (fan-in), not Hugging Face's 0.02, which is
    tuned for widths of 768 and more: at width 128 it leaves every attention logit near zero,
    attention stays uniform over the ~160-token prompt and the model takes hundreds of steps
    to start reading the state (measured on a rule "answer left/right/forward by where the goal
    object is": 68% held-out accuracy after 300 steps at 0.02, 97% at 0.1, which is close to
    the 0.088 this gives at width 128).
    """

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 2048
    seed: int = 0
    pad_token: bool = True


def train_tokenizer(texts: Iterable[str], vocab_size: int, pad_token: bool = True):  # type: ignore[no-untyped-def]
    """A byte-level BPE ``PreTrainedTokenizerFast`` with a chat template (and ``<|pad|>`` when
    ``pad_token``; without it the tokenizer has no pad token, like Llama-3's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[t for t in SPECIAL_TOKENS if pad_token or t != PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD if pad_token else None,
        eos_token="<|end|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, texts: Iterable[str], cfg: TinyModelConfig | None = None) -> Path:
    """Train a tokenizer on ``texts``, build a tiny ``LlamaForCausalLM``, save both to ``out_dir``.

    Args:
        out_dir: target Hugging Face directory (written atomically: temp dir, then rename).
        texts: the corpus the tokenizer learns its merges from.
        cfg: model size.

    Returns:
        The directory, loadable with ``AutoModelForCausalLM.from_pretrained``.
    """
    import shutil
    import tempfile

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = cfg or TinyModelConfig()
    out = Path(out_dir)
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.pad_token)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads,
            max_position_embeddings=cfg.max_positions,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
            initializer_range=cfg.hidden_size ** -0.5,
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def run_tiny_model(run: RunDir, parts: tuple[str, ...], corpus: Callable[[], list[str]],
                   cfg: TinyModelConfig | None, what: str, needs: str = "actions") -> str:
    """The URI of a run's tiny model at ``parts`` of the run directory, built on first use.

    The one factory of the tiny agent and the tiny judge: built locally (its tokenizer trained
    on ``corpus()``, which is only called when the model is missing) and, on a remote run
    directory, uploaded (``_uploaded`` marks a finished copy). The result is checked like any
    user model before a Ray worker loads it.

    Raises:
        ModelError: the stored model cannot be loaded (the message says to delete it).
    """
    import tempfile

    from teduo_ray.llm.loading import local_model_dir
    from teduo_ray.modelcheck import validate_model_dir

    if not run.exists(*parts, UPLOADED if is_remote(run) else "config.json"):
        if not is_remote(run):
            build_tiny_model(run.path(*parts), corpus(), cfg)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                build_tiny_model(os.path.join(tmp, "model"), corpus(), cfg)
                upload_dir(os.path.join(tmp, "model"), run, *parts)
    uri = run_uri(run, *parts)
    fix = f"delete {uri} and re-run (it is rebuilt)"
    local = local_model_dir(uri)
    validate_model_dir(local, what, needs=needs, fix=fix)
    if cfg is not None:
        check_tiny_size(local, cfg, what, fix)
    return uri


def check_tiny_size(path: str, cfg: TinyModelConfig, what: str, fix: str) -> None:
    """Stop when a stored tiny model has another size than the config asks for.

    The model is built once per run, so without this a later ``sft.tiny_layers=4`` (say) on the
    same run would silently fine-tune the stored 3-layer model.

    Raises:
        ModelError: the stored size differs (the message names each differing setting).
    """
    import json

    from teduo_ray.errors import ModelError

    with open(os.path.join(path, "config.json")) as f:
        stored = json.load(f)
    wanted = {"num_hidden_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
              "intermediate_size": cfg.intermediate_size, "num_attention_heads": cfg.num_heads}
    differ = [f"{k} {stored.get(k)} (the config: {v})" for k, v in wanted.items() if stored.get(k) != v]
    if differ:
        raise ModelError(f"{what} stored in the run was built with {', '.join(differ)}; {fix}")
