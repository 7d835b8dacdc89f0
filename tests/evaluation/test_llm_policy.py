"""LLMPolicy on a tiny Llama: prompts as in SFT, valid actions only, batched == per-query loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from teduo_ray.envs import get_adapter
from teduo_ray.envs.babyai.constants import NUM_ACTIONS
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.envs.babyai.world import BabyAIWorld
from teduo_ray.evaluation.llm_policy import ANSWER_OPEN, LLMPolicy, ScoreCache, digit_token_ids, state_texts
from teduo_ray.evaluation.policy import Query
from teduo_ray.labeling.abstraction import abstract_blobs, rules_selection
from teduo_ray.labeling.vocabulary import vocabulary_corpus
from teduo_ray.llm.tiny import build_tiny_model
from teduo_ray.sft.prompt import messages
from tests.conftest import small_config

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    cfg = small_config(out.parent / "run")
    return build_tiny_model(out, vocabulary_corpus(cfg))


@pytest.fixture(scope="module")
def policy(model_dir: Path) -> LLMPolicy:
    p = LLMPolicy(str(model_dir), "egocentric", micro_batch=8)
    # An untrained tiny model answers the same digit everywhere; perturb the output head so
    # the batched/looped comparison has different answers to agree on.
    import torch

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in p.model.parameters():
            param.add_(torch.randn(param.shape, generator=g) * 0.5)
    return p


@pytest.fixture(scope="module")
def queries() -> list[Query]:
    cfg = small_config("unused")
    entries = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    world = BabyAIWorld(cfg.env.level)
    out = []
    for i in range(21):
        e = entries[(5 * i) % len(entries)]
        state = world.reset(i % 4, np.random.default_rng(i))
        selection = rules_selection(e.goal).to_json() if i % 3 else ""
        out.append(Query(state, e.text, e.goal.key, e.goal_id, selection))
    return out


def test_each_digit_is_one_token_after_the_bracket(policy: LLMPolicy) -> None:
    assert policy.digit_ids is not None and len(set(policy.digit_ids)) == NUM_ACTIONS
    probe = policy.prompt("you face north.", "go to the red ball")[: -len(ANSWER_OPEN)]
    assert digit_token_ids(policy.tokenizer, probe) == policy.digit_ids


def test_prompt_is_the_sft_prompt_on_the_abstract_state(policy: LLMPolicy, queries: list[Query]) -> None:
    from teduo_ray.labeling.abstraction import parse_selection

    q = next(q for q in queries if q.selection)
    abstract = abstract_blobs([q.state], parse_selection(q.selection))[0]
    expected = policy.tokenizer.apply_chat_template(
        messages(render_state(abstract, "egocentric"), q.goal_text), add_generation_prompt=True, tokenize=False
    ) + "["
    assert policy.prompts([q]) == [expected]
    raw = next(q for q in queries if not q.selection)
    assert state_texts([raw], "egocentric") == [render_state(raw.state, "egocentric")]


def test_batched_equals_per_query_loop(policy: LLMPolicy, queries: list[Query]) -> None:
    rng = np.random.default_rng(0)
    actions = policy.act(queries, rng)
    assert actions.dtype == np.int64 and actions.shape == (len(queries),)
    assert ((actions >= 0) & (actions < NUM_ACTIONS)).all()
    batched = policy.action_logits(policy.prompts(queries))
    looped = np.concatenate([policy.action_logits(policy.prompts([q])) for q in queries])
    np.testing.assert_allclose(batched, looped, rtol=1e-3, atol=1e-3)  # padding reorders float sums
    per_query = np.concatenate([policy.act([q], rng) for q in queries])
    np.testing.assert_array_equal(actions, per_query)
    assert len(set(actions.tolist())) > 1, "the perturbed model should not answer one action everywhere"


def test_candidate_scoring_fallback_picks_the_same_actions(policy: LLMPolicy, queries: list[Query]) -> None:
    greedy = policy.act(queries[:6], np.random.default_rng(0))
    ids = policy.digit_ids
    try:
        policy.digit_ids = None
        fallback = policy.act(queries[:6], np.random.default_rng(0))
    finally:
        policy.digit_ids = ids
    np.testing.assert_array_equal(greedy, fallback)


def test_sampling_is_valid_and_seeded(model_dir: Path, queries: list[Query]) -> None:
    p = LLMPolicy(str(model_dir), "egocentric", temperature=0.7)
    a = p.act(queries, np.random.default_rng(3))
    b = p.act(queries, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert ((a >= 0) & (a < NUM_ACTIONS)).all()
    assert p.act([], np.random.default_rng(0)).shape == (0,)


def test_shared_prefix_cache_matches_whole_prompts(policy: LLMPolicy, queries: list[Query]) -> None:
    prompts = policy.prompts(queries)
    shared = policy.action_logits(prompts)
    assert policy.share_prefix, "the prefix path fell back"
    policy.share_prefix = False
    try:
        plain = policy.action_logits(prompts)
    finally:
        policy.share_prefix = True
    np.testing.assert_allclose(shared, plain, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(shared.argmax(axis=1), plain.argmax(axis=1))


@pytest.mark.parametrize("replicas", [1, 2])
def test_llm_replicas_act_like_the_local_policy(model_dir: Path, queries: list[Query], ray_local_2cpu: None,
                                                replicas: int) -> None:
    """eval.llm_in_actor / eval.llm_replicas: the LLM lives in Ray actors (GPU nodes on a
    cluster) that each score a slice of the step; the sampled actions and the driver's random
    stream are exactly those of the in-driver policy, whatever the number of replicas."""
    from teduo_ray.evaluation.methods import LLMReplicas

    def factory() -> LLMPolicy:  # the replicas cache scores, the local policy does not
        return LLMPolicy(str(model_dir), "egocentric", temperature=0.7, cache_entries=1000)

    remote = LLMReplicas(factory, "finetuned", replicas, num_cpus=0.25, num_gpus=0.0, temperature=0.7)
    local = LLMPolicy(str(model_dir), "egocentric", temperature=0.7)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(2):
        np.testing.assert_array_equal(remote.act(queries, r1), local.act(queries, r2))
    assert r1.integers(1 << 30) == r2.integers(1 << 30)
    assert remote.act([], r1).shape == (0,)
    distinct = len({ScoreCache.key(q) for q in queries})
    assert remote.stats() == {"forward_prompts": distinct, "cached_prompts": 2 * len(queries) - distinct}
    remote.close()


def test_score_cache_changes_no_action_and_stays_bounded(model_dir: Path, queries: list[Query]) -> None:
    """eval.llm_cache_entries: repeated queries (an agent stuck in a loop) are answered from
    the cache; the sampled actions are those of the uncached policy, and the cache never
    holds more than its capacity."""
    plain = LLMPolicy(str(model_dir), "egocentric", temperature=0.7)
    cached = LLMPolicy(str(model_dir), "egocentric", temperature=0.7, cache_entries=8)
    steps = [queries[i : i + 6] + queries[:3] for i in range(0, len(queries), 4)] * 2
    r1, r2 = np.random.default_rng(1), np.random.default_rng(1)
    for step in steps:
        np.testing.assert_array_equal(cached.act(step, r1), plain.act(step, r2))
        assert len(cached.cache.rows) <= 8
    st = cached.stats()
    assert st["forward_prompts"] + st["cached_prompts"] == sum(map(len, steps))
    assert 0 < st["forward_prompts"] < sum(map(len, steps))
    assert plain.stats()["cached_prompts"] == 0
    # a different goal wording or abstraction of the same state is a different query
    q = queries[1]
    assert ScoreCache.key(q) != ScoreCache.key(Query(q.state, q.goal_text + " now", q.goal_key, q.goal_id, q.selection))
    assert ScoreCache.key(q) != ScoreCache.key(Query(q.state, q.goal_text, q.goal_key, q.goal_id, ""))


@pytest.mark.gpu
def test_llm_policy_actor_on_a_gpu(model_dir: Path, queries: list[Query], ray_local_2cpu: None) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from teduo_ray.evaluation.methods import LLMReplicas

    remote = LLMReplicas(lambda: LLMPolicy(str(model_dir), "egocentric"), "finetuned", 1, num_cpus=1, num_gpus=1,
                         temperature=0.0)
    assert remote.act(queries, np.random.default_rng(0)).shape == (len(queries),)
