"""Goal predicates against minigrid's own BabyAI verifiers on bot rollouts, plus hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from teduo_ray.envs.babyai.goals import Goal, all_goals
from teduo_ray.envs.babyai.predicates import achieved, achieved_bytes
from teduo_ray.envs.babyai.state import GridState, decode_state, encode_state
from teduo_ray.envs.babyai.world import BabyAIWorld, make_instr

MAX_STEPS = 200


def rollout(world: BabyAIWorld, layout_seed: int, goal: Goal, rng_seed: int) -> tuple[list[bytes], bool]:
    """States s_0..s_T of a bot episode, and whether the verifier reported success at step T."""
    states = [world.reset(layout_seed, np.random.default_rng(rng_seed), goal)]
    for _ in range(MAX_STEPS):
        success = world.step(world.bot_action())
        states.append(world.state())
        if success:
            return states, True
    return states, False


CASES = [
    # (level, goal type, restrict the goal's object, must the predicate first turn true at success?)
    ("BabyAI-GoToLocal-v0", "go_to", None, True),
    ("BabyAI-Open-v0", "go_to", "door", True),
    ("BabyAI-PickupLoc-v0", "pick_up", None, True),
    ("BabyAI-PutNextLocal-v0", "put_next", None, False),
    ("BabyAI-Open-v0", "open", None, False),
]
LAYOUTS = 12


@pytest.mark.parametrize(("level", "goal_type", "obj", "first_true_at_success"), CASES)
def test_predicate_agrees_with_babyai_verifier(
    level: str, goal_type: str, obj: str | None, first_true_at_success: bool
) -> None:
    world = BabyAIWorld(level)
    goals = [g for g in all_goals((goal_type,)) if obj is None or g.obj == obj]
    pick = np.random.default_rng(1234)
    episodes = successes = 0
    for layout_seed in range(LAYOUTS):
        world.reset(layout_seed, np.random.default_rng(0))
        feasible = [g for g in goals if world.feasible(g)]
        if not feasible:
            continue
        goal = feasible[int(pick.integers(len(feasible)))]
        states, success = rollout(world, layout_seed, goal, rng_seed=100 + layout_seed)
        episodes += 1
        if not success:
            continue
        successes += 1
        assert achieved_bytes(goal, states[-1]), (level, layout_seed, goal.key)
        if first_true_at_success:
            earlier = [achieved_bytes(goal, s) for s in states[:-1]]
            assert not any(earlier), (level, layout_seed, goal.key, earlier.index(True), len(states) - 1)
    assert episodes >= 10, f"only {episodes} feasible episodes"
    assert successes >= 0.8 * episodes, f"bot succeeded on {successes}/{episodes}"


def test_predicate_false_for_other_goals_at_pickup_success() -> None:
    """At a pick_up success, pick_up predicates of other objects are False."""
    world = BabyAIWorld("BabyAI-PickupLoc-v0")
    goals = all_goals(("pick_up",))
    checked = 0
    for layout_seed in range(5):
        world.reset(layout_seed, np.random.default_rng(0))
        goal = next(g for g in goals if world.feasible(g))
        states, success = rollout(world, layout_seed, goal, rng_seed=7)
        if not success:
            continue
        final = decode_state(states[-1])
        assert [g for g in goals if achieved(g, final)] == [goal]
        checked += 1
    assert checked >= 4


def test_make_instr() -> None:
    from minigrid.envs.babyai.core.verifier import GoToInstr, OpenInstr, PickupInstr, PutNextInstr

    assert make_instr(Goal("go_to_tile", tile=(1, 1))) is None
    go = make_instr(Goal("go_to", "red", "ball"))
    assert isinstance(go, GoToInstr) and (go.desc.color, go.desc.type) == ("red", "ball")
    pick = make_instr(Goal("pick_up", "blue", "key"))
    assert isinstance(pick, PickupInstr) and (pick.desc.color, pick.desc.type) == ("blue", "key")
    op = make_instr(Goal("open", "green", "door"))
    assert isinstance(op, OpenInstr) and (op.desc.color, op.desc.type) == ("green", "door")
    put = make_instr(Goal("put_next", "red", "ball", "grey", "box"))
    assert isinstance(put, PutNextInstr)
    assert (put.desc_move.color, put.desc_move.type) == ("red", "ball")
    assert (put.desc_fixed.color, put.desc_fixed.type) == ("grey", "box")


def test_mission_is_the_goal_text() -> None:
    world = BabyAIWorld("BabyAI-PutNextLocal-v0")
    world.reset(0, np.random.default_rng(0))
    for goal_type in ("go_to", "pick_up", "put_next"):
        goal = next(g for g in all_goals((goal_type,)) if world.feasible(g))
        world.reset(0, np.random.default_rng(0), goal)
        assert world.u.mission == goal.text


def test_world_rejects_goal_without_instruction() -> None:
    world = BabyAIWorld("BabyAI-GoToLocal-v0")
    goal = Goal("go_to_tile", tile=(2, 2))
    assert not world.feasible(goal)
    with pytest.raises(ValueError):
        world.reset(0, np.random.default_rng(0), goal)


# ---------------------------------------------------------------- hand-made states

EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)


def room(width: int = 7, height: int = 7) -> np.ndarray:
    grid = np.zeros((width, height, 3), dtype=np.uint8)
    grid[:, :] = EMPTY
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    return grid


def obj(name: str, color: str, door_state: int = 0) -> tuple[int, int, int]:
    return OBJECT_TO_IDX[name], COLOR_TO_IDX[color], door_state


def test_go_to_tile() -> None:
    grid = room(6, 5)
    for x in range(1, 5):
        for y in range(1, 4):
            for d in range(4):
                state = GridState(grid, (x, y), d, None)
                for tx in range(1, 5):
                    for ty in range(1, 4):
                        goal = Goal("go_to_tile", tile=(tx, ty))
                        assert achieved(goal, state) == ((x, y) == (tx, ty))
    blob = encode_state(grid, (2, 3), 1, None)
    assert achieved_bytes(Goal("go_to_tile", tile=(2, 3)), blob)
    assert not achieved_bytes(Goal("go_to_tile", tile=(3, 2)), blob)


def test_go_to_needs_facing() -> None:
    grid = room()
    grid[3, 3] = obj("ball", "red")
    goal = Goal("go_to", "red", "ball")
    assert achieved(goal, GridState(grid, (2, 3), 0, None))  # west of it, facing east
    assert not achieved(goal, GridState(grid, (2, 3), 2, None))  # adjacent, facing away
    assert not achieved(goal, GridState(grid, (1, 3), 0, None))  # two tiles away
    assert not achieved(Goal("go_to", "blue", "ball"), GridState(grid, (2, 3), 0, None))
    assert not achieved(Goal("go_to", "red", "key"), GridState(grid, (2, 3), 0, None))
    # facing out of the grid (agent on the border) is simply False
    assert not achieved(goal, GridState(grid, (0, 3), 2, None))


def test_pick_up_and_open_and_put_next() -> None:
    grid = room()
    grid[1, 3] = obj("door", "blue", 1)  # closed
    grid[5, 3] = obj("door", "yellow", 0)  # open
    grid[3, 3] = obj("box", "green")
    grid[3, 4] = obj("key", "red")  # 4-adjacent to the box
    grid[4, 5] = obj("ball", "grey")  # diagonal to the key
    carrying = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["purple"])
    state = GridState(grid, (2, 2), 0, carrying)
    assert achieved(Goal("pick_up", "purple", "ball"), state)
    assert not achieved(Goal("pick_up", "grey", "ball"), state)
    assert not achieved(Goal("pick_up", "purple", "ball"), GridState(grid, (2, 2), 0, None))
    assert achieved(Goal("open", "yellow", "door"), state)
    assert not achieved(Goal("open", "blue", "door"), state)
    grid_locked = grid.copy()
    grid_locked[5, 3] = obj("door", "yellow", 2)
    assert not achieved(Goal("open", "yellow", "door"), GridState(grid_locked, (2, 2), 0, None))
    assert achieved(Goal("put_next", "red", "key", "green", "box"), state)
    assert achieved(Goal("put_next", "green", "box", "red", "key"), state)
    assert not achieved(Goal("put_next", "grey", "ball", "red", "key"), state)  # diagonal
    assert not achieved(Goal("put_next", "purple", "ball", "green", "box"), state)  # carried


def test_unknown_goal_type() -> None:
    with pytest.raises(ValueError):
        achieved(Goal("fly"), GridState(room(), (1, 1), 0, None))
