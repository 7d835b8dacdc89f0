"""`baselines`: the goal-conditioned RLlib export, BC and discrete CQL with RLlib's offline
API on real labeled data, their evaluation policies, the Q-table policy from a run, resume and
bad upstream."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from teduo_ray.data.collect import collect
from teduo_ray.envs import get_adapter
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.errors import DataError
from teduo_ray.evaluation.policy import Query
from teduo_ray.labeling.abstraction import abstract_batch, parse_selection, rules_selection
from teduo_ray.labeling.label import label
from teduo_ray.rl.baselines import algo_hash, build_algo_config, load_policy, train_baselines, train_one
from teduo_ray.rl.learn import learn
from teduo_ray.rl.qtable import QTablePolicy
from teduo_ray.rl.rllib_data import ObsSpec, export, featurize, goal_segments
from teduo_ray.rundir import RunDir
from tests.conftest import small_config

FAST = ("labeling.llm_states_per_goal=30", "labeling.reward_epochs=3", "rl.goals_per_shard=8")
TRAIN = ("rl.baselines=[bc, cql]", "rl.baseline_iterations=4", "rl.baseline_updates_per_iteration=15",
         "rl.baseline_batch_size=64", "rl.baseline_hiddens=[64]", "rl.baseline_max_rows=3000")
RLLIB_COLUMNS = ["eps_id", "t", "obs", "actions", "rewards", "new_obs", "terminateds", "truncateds"]


def test_goal_segments_on_a_hand_checked_episode() -> None:
    # episode 0: s0 -> s1 -> s2* -> s3 -> s0 ; episode 1: s2* -> s1 -> s2*   (* = achieved)
    episode = np.array([0, 0, 0, 0, 1, 1])
    state = np.array([0, 1, 2, 3, 2, 1])
    next_state = np.array([1, 2, 3, 0, 1, 2])
    achieved = np.array([False, False, True, False])
    seg = goal_segments(episode, state, next_state, achieved)
    # the transition out of s2 (achieved) is dropped; ep0 splits into a success and a truncated tail
    assert seg.rows.tolist() == [0, 1, 3, 5]
    assert seg.segment.tolist() == [0, 0, 1, 2]
    assert seg.reward.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert seg.success.tolist() == [True, True, False, True]


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory, ray_local_2cpu: None) -> Path:
    run = tmp_path_factory.mktemp("baselines")
    cfg = small_config(run, *FAST)
    collect(cfg, progress=False)
    label(cfg, progress=False)
    learn(cfg, progress=False)
    return run


def labels_of(run: Path) -> defaultdict[tuple[int, int], bool]:
    """The sparse labels as a lookup: a pair that is not written is "not achieved"."""
    t = pq.read_table(run / "rewards" / "labels", columns=["goal_id", "state_id", "label"])
    out: defaultdict[tuple[int, int], bool] = defaultdict(bool)
    out.update({(g, s): y for g, s, y in zip(*(t[c].to_pylist() for c in ("goal_id", "state_id", "label")))})
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_export_has_rllib_columns_and_label_rewards(learned: Path) -> None:
    cfg = small_config(learned, *FAST, *TRAIN)
    result = export(cfg)
    assert result.written and result.rows["all"] > 0 and 0 < result.rows["successful"] <= result.rows["all"]
    assert result.rows["all"] <= 3000
    labels = labels_of(learned)
    states = pq.read_table(learned / "states" / "states.parquet")["state"].to_pylist()
    goals = {e.goal_id: e for e in get_adapter(cfg.env, cfg.seed).goal_catalogue()}
    for name in ("all", "successful"):
        t = pq.read_table(learned / "baselines" / "data" / name).to_pandas()
        assert set(RLLIB_COLUMNS) <= set(t.columns)
        assert len(t) == result.rows[name]
        # rows in a random order (RLlib trains in file order), not goal by goal
        assert (t["goal_id"].to_numpy()[1:] != t["goal_id"].to_numpy()[:-1]).sum() > len(t) // 4
        for eps, ep in t.groupby("eps_id", sort=False):
            ep = ep.sort_values("t")
            assert ep["t"].tolist() == list(range(len(ep)))
            assert not ep["terminateds"].iloc[:-1].any() and not ep["truncateds"].iloc[:-1].any()
            assert ep["terminateds"].iloc[-1] != ep["truncateds"].iloc[-1]  # ends exactly one way
            if name == "successful":
                assert ep["terminateds"].iloc[-1]
        # reward = the label of the next state for the goal; terminated exactly when rewarded;
        # never a transition out of a state where the goal is already achieved
        for g, sid, nid, rew, term in zip(t["goal_id"], t["state_id"], t["next_state_id"], t["rewards"],
                                          t["terminateds"]):
            assert rew == float(labels[(g, nid)]) and term == (rew == 1.0)
            assert not labels[(g, sid)]
        # obs / new_obs are the featurized abstract states of the row's goal
        r = t.iloc[len(t) // 2]
        goal = goals[int(r["goal_id"])].goal
        for col, sid in (("obs", r["state_id"]), ("new_obs", r["next_state_id"])):
            abstract = abstract_batch(StateBatch.from_blobs([states[int(sid)]]), rules_selection(goal))
            assert np.array_equal(np.asarray(r[col], np.float32), featurize(abstract, goal.type, result.obs)[0])
    assert not export(cfg).written  # a second export is a no-op


@pytest.mark.parametrize("algo", ["bc", "cql"])
def test_rllib_baselines_are_seeded_by_the_run_seed(tmp_path: Path, algo: str) -> None:
    """`teduo run ... seed=N` reaches RLlib (``.debugging(seed=N)``: torch, numpy and the
    learner are seeded) and a new seed retrains the baseline (its hash changes)."""
    configs = [small_config(tmp_path, f"seed={seed}") for seed in (0, 7)]
    built = [build_algo_config(c, algo, str(tmp_path), ObsSpec(8, 8, 3)) for c in configs]
    assert [b.seed for b in built] == [0, 7]
    assert algo_hash(configs[0], algo) != algo_hash(configs[1], algo)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bc_and_cql_train_act_and_rerun_is_a_noop(learned: Path) -> None:
    cfg = small_config(learned, *FAST, *TRAIN)
    result = train_baselines(cfg, progress=False)
    runs = {r.algo: r for r in result.runs}
    assert set(runs) == {"bc", "cql"} and all(r.trained for r in runs.values())
    bc, cql = runs["bc"], runs["cql"]
    assert len(bc.losses) == 4 and bc.losses[-1] < bc.losses[0]  # BC's cross-entropy goes down
    assert all(np.isfinite(cql.losses))
    assert "bc" in str(result) and "cql" in str(result)

    catalogue = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    train_goal = next(e for e in catalogue if e.split == "train")
    test_goal = next(e for e in catalogue if e.split == "test")
    states = pq.read_table(learned / "states" / "states.parquet")["state"].to_pylist()[:16]
    queries = [Query(s, e.text, e.goal.key, e.goal_id, rules_selection(e.goal).to_json())
               for s in states for e in (train_goal, test_goal)]
    for algo in ("bc", "cql"):
        policy = load_policy(cfg, algo)
        assert policy.name == algo
        actions = policy.act(queries, np.random.default_rng(0))
        assert actions.dtype == np.int64 and actions.shape == (len(queries),)
        assert actions.min() >= 0 and actions.max() < 7
        # batched == one at a time (deterministic argmax)
        single = [int(policy.act([qq], np.random.default_rng(0))[0]) for qq in queries[:6]]
        assert single == actions[:6].tolist()
        assert parse_selection(queries[1].selection) is not None

    again = train_baselines(cfg, progress=False)
    assert not again.export.written and not any(r.trained for r in again.runs)
    assert [r.losses for r in again.runs] == [bc.losses, cql.losses]

    # the same seed and data train the same BC (Ray Data keeps the file order for RLlib;
    # float sums may differ in the last digits: another batch order differs at ~1e-2)
    shutil.rmtree(learned / "baselines" / "bc")
    retrained = train_one(cfg, RunDir(cfg.run_dir), "bc", again.export)
    assert retrained.trained and retrained.losses == pytest.approx(bc.losses, rel=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_qtable_policy_from_run_follows_policies(learned: Path) -> None:
    cfg = small_config(learned, *FAST)
    policy = QTablePolicy.from_run(cfg)
    table = pq.read_table(learned / "policies").to_pylist()[:20]
    states = pq.read_table(learned / "states" / "states.parquet")["state"].to_pylist()
    queries = [Query(states[r["state_id"]], "", "", r["goal_id"]) for r in table]
    actions = policy.act(queries, np.random.default_rng(0))
    assert actions.tolist() == [r["action"] for r in table]
    unseen = policy.act([Query(b"\x00" * len(states[0]), "", "", table[0]["goal_id"])], np.random.default_rng(0))
    assert 0 <= unseen[0] < 7


def test_no_baselines_configured_is_a_noop(tmp_path: Path) -> None:
    result = train_baselines(small_config(tmp_path, "rl.baselines=[]"), progress=False)
    assert result.runs == [] and "none configured" in str(result)
    assert not (tmp_path / "baselines").exists()


def test_missing_upstream_gives_one_clear_error(tmp_path: Path) -> None:
    cfg = small_config(tmp_path / "empty")
    with pytest.raises(DataError, match="run `teduo label` first"):
        train_baselines(cfg, progress=False)
    with pytest.raises(DataError, match="run `teduo baselines`"):
        load_policy(cfg, "bc")
    with pytest.raises(DataError, match="run `teduo learn` first"):
        QTablePolicy.from_run(cfg)


def test_rllib_reads_the_export_in_file_order() -> None:
    """BC's batches follow the export's seeded row order (Ray Data's default would hand RLlib
    blocks in completion order: other losses on every run), and the setting is scoped."""
    from ray.data import DataContext

    from teduo_ray.rl.baselines import _data_in_file_order

    before = DataContext.get_current().execution_options.preserve_order
    with _data_in_file_order():
        assert DataContext.get_current().execution_options.preserve_order
    assert DataContext.get_current().execution_options.preserve_order == before
