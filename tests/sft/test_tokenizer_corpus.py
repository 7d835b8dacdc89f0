"""No test-goal text before evaluation: the tiny tokenizer learns from training texts only.

Test goals are reworded (paraphrase.py): their synonyms ("grab", "azure", "crate", ...) are
what makes them unseen words. If the tokenizer's corpus contained them, the "unseen goals"
cells would measure unseen colour-object combinations in familiar words, not unseen words.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teduo_ray.envs import get_adapter
from teduo_ray.labeling.stages import JUDGE_SYSTEM, JUDGE_USER
from teduo_ray.labeling.vocabulary import vocabulary_corpus
from teduo_ray.llm.tiny import train_tokenizer
from teduo_ray.sft import prompt
from teduo_ray.sft.models import sft_corpus
from tests.conftest import small_config
from tests.sft.helpers import write_sft

pytestmark = pytest.mark.timeout(120)


def _words(texts: list[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tokenizer_sees_no_test_goal_words(tmp_path: Path, seed: int) -> None:
    cfg = small_config(tmp_path / "run", f"seed={seed}")
    write_sft(tmp_path / "run")  # the agent's corpus also reads the SFT rows (training goals only)
    catalogue = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    train = [e.text for e in catalogue if e.split == "train"]
    test = [e.text for e in catalogue if e.split == "test"]
    # words every prompt shows anyway ("move" of "2 move forward") are not the test goals' own
    fixed = [JUDGE_SYSTEM, JUDGE_USER, prompt.SYSTEM_PROMPT, prompt.USER_TEMPLATE, prompt.ACTION_LIST]
    test_only = _words(test) - _words(train) - _words(fixed)
    assert test_only, "the test goals are reworded, so some of their words are test-only"

    for corpus in (vocabulary_corpus(cfg), sft_corpus(cfg)):
        assert set(train) <= set(corpus), "the training goals are in the corpus"
        assert not set(test) & set(corpus), "a test goal's text is in the tokenizer corpus"
        leaked = test_only & _words(corpus)
        assert not leaked, f"test-only words in the tokenizer corpus: {sorted(leaked)}"

    vocab = train_tokenizer(sft_corpus(cfg), cfg.sft.tiny_vocab).get_vocab()
    whole = sorted(w for w in test_only if "\u0120" + w in vocab)  # byte-level BPE: "Ġword"
    assert not whole, f"test-only words are whole tokens of the tokenizer: {whole}"
