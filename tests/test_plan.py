"""`teduo run --dry-run`: the plan states per-worker memory, and it does not grow with goals."""

from __future__ import annotations

from teduo_ray.config import load_config
from teduo_ray.plan import plan, plan_rows
from tests.conftest import REPO


def rows(*overrides: str) -> dict[str, dict[str, str]]:
    cfg = load_config(REPO / "jobs" / "scale.yaml", list(overrides))
    return {r["stage"]: r for r in plan_rows(cfg)}


def test_worker_memory_is_printed_and_independent_of_the_goal_count() -> None:
    few, many = rows("env.num_train_goals=1000"), rows("env.num_train_goals=10000")
    assert "MiB/reward-model fit task" in few["label"]["resources"]
    for stage in ("label", "learn", "distill"):
        assert "MiB/" in few[stage]["resources"]
        assert few[stage]["resources"] == many[stage]["resources"], stage
    assert few["label"]["units"] != many["label"]["units"]  # more goal blocks, same worker
    smaller = rows("env.num_train_goals=1000", "labeling.state_block=8192")
    assert smaller["label"]["resources"] != few["label"]["resources"]


def test_paper_plan_has_no_goals_x_states_table() -> None:
    text = plan(load_config(REPO / "jobs" / "paper.yaml", []))
    assert "(goal, state) policy rows" not in text and "G (state, goal) pairs" not in text
    assert "rows written" in text and "labeler calls" in text
    assert "G SFT examples" not in text and "uncapped" in text  # no goals x states bound
    capped = {r["stage"]: r for r in plan_rows(load_config(REPO / "jobs" / "paper-cpu.yaml", []))}
    assert capped["distill"]["size"].startswith("<= 20 SFT examples per goal")
    assert "optimizer steps" in capped["finetune"]["size"]
