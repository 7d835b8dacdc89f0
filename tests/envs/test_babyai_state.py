"""State bytes: encode/decode round trip and encoding of a live minigrid env."""

from __future__ import annotations

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from teduo_ray.envs.babyai.goals import all_goals
from teduo_ray.envs.babyai.state import HEADER_SIZE, decode_state, encode_state
from teduo_ray.envs.babyai.world import BabyAIWorld

EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)


def _grid(width: int, height: int) -> np.ndarray:
    grid = np.zeros((width, height, 3), dtype=np.uint8)
    grid[:, :] = EMPTY
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    return grid


def _hand_grid() -> np.ndarray:
    grid = _grid(7, 5)  # deliberately not square: catches width/height mix-ups
    grid[3, 2] = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"], 0)
    grid[5, 1] = (OBJECT_TO_IDX["door"], COLOR_TO_IDX["blue"], 2)
    grid[2, 3] = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["yellow"], 0)
    return grid


@pytest.mark.parametrize(
    "carrying", [None, (OBJECT_TO_IDX["box"], COLOR_TO_IDX["purple"]), (OBJECT_TO_IDX["key"], 0)]
)
@pytest.mark.parametrize("direction", [0, 1, 2, 3])
def test_round_trip(carrying: tuple[int, int] | None, direction: int) -> None:
    grid = _hand_grid()
    blob = encode_state(grid, (4, 3), direction, carrying)
    assert isinstance(blob, bytes)
    assert len(blob) == HEADER_SIZE + grid.size
    state = decode_state(blob)
    assert state.width == 7 and state.height == 5
    assert state.grid.shape == (7, 5, 3)
    np.testing.assert_array_equal(state.grid, grid)
    assert state.agent == (4, 3)
    assert state.direction == direction
    assert state.carrying == carrying
    # decode -> encode is the identity on bytes
    assert encode_state(state.grid, state.agent, state.direction, state.carrying) == blob


def test_front_tile() -> None:
    blob = encode_state(_hand_grid(), (2, 2), 0, None)
    fronts = {}
    for d in range(4):
        s = decode_state(encode_state(_hand_grid(), (2, 2), d, None))
        fronts[d] = s.front
    assert fronts == {0: (3, 2), 1: (2, 3), 2: (1, 2), 3: (2, 1)}
    assert decode_state(blob).front == (3, 2)


def test_equal_states_equal_bytes() -> None:
    a = encode_state(_hand_grid(), (1, 1), 0, None)
    b = encode_state(_hand_grid().copy(), (1, 1), 0, None)
    assert a == b
    assert a != encode_state(_hand_grid(), (1, 1), 1, None)
    assert a != encode_state(_hand_grid(), (1, 2), 0, None)
    assert a != encode_state(_hand_grid(), (1, 1), 0, (OBJECT_TO_IDX["ball"], 0))


def test_non_contiguous_grid_is_encoded_by_value() -> None:
    grid = _hand_grid()
    fortran = np.asfortranarray(grid)
    assert encode_state(fortran, (1, 1), 0, None) == encode_state(grid, (1, 1), 0, None)


@pytest.mark.parametrize("level", ["BabyAI-GoToLocal-v0", "BabyAI-Open-v0"])
def test_state_from_env_on_reset(level: str) -> None:
    world = BabyAIWorld(level)
    for layout_seed in range(3):
        blob = world.reset(layout_seed, np.random.default_rng(layout_seed))
        u = world.u
        assert u.carrying is None
        expected = encode_state(u.grid.encode(), tuple(u.agent_pos), int(u.agent_dir), None)
        assert blob == expected == world.state()
        state = decode_state(blob)
        np.testing.assert_array_equal(state.grid, u.grid.encode())
        assert state.agent == tuple(int(v) for v in u.agent_pos)
        assert state.direction == u.agent_dir
        assert state.carrying is None
        assert (state.width, state.height) == world.grid_size()
        # the agent is not part of the grid encoding
        assert not (state.grid[:, :, 0] == OBJECT_TO_IDX["agent"]).any()


def test_state_from_env_while_carrying() -> None:
    world = BabyAIWorld("BabyAI-PickupLoc-v0")
    goals = all_goals(("pick_up",))
    for layout_seed in range(5):
        world.reset(layout_seed, np.random.default_rng(0))
        goal = next(g for g in goals if world.feasible(g))
        world.reset(layout_seed, np.random.default_rng(1), goal)
        for _ in range(200):
            if world.step(world.bot_action()):
                break
        else:
            continue
        u = world.u
        assert u.carrying is not None
        state = decode_state(world.state())
        assert state.carrying == (OBJECT_TO_IDX[goal.obj], COLOR_TO_IDX[goal.color])
        assert state.carrying == tuple(u.carrying.encode()[:2])
        np.testing.assert_array_equal(state.grid, u.grid.encode())
        assert state.agent == tuple(int(v) for v in u.agent_pos)
        return
    pytest.fail("the bot picked up nothing on 5 layouts")


def test_the_world_reuses_the_grid_encoding_only_while_the_grid_is_unchanged() -> None:
    """BabyAIWorld.state() caches the grid's encoding between grid-changing actions; over
    random episodes with many pickups, drops and door toggles it always equals a full
    encoding of the env."""
    from teduo_ray.envs.babyai.state import state_from_env
    from teduo_ray.envs.babyai.world import GRID_ACTIONS, BabyAIWorld

    world = BabyAIWorld("BabyAI-Synth-v0")
    rng = np.random.default_rng(0)
    changed = 0
    for episode in range(6):
        assert world.reset(episode, rng) == state_from_env(world.u)
        for _ in range(150):
            action = int(rng.choice([0, 1, 2, 3, 4, 5], p=[0.15, 0.15, 0.25, 0.15, 0.15, 0.15]))
            before = world.u.grid.encode()
            world.step(action)
            after = world.u.grid.encode()
            if not np.array_equal(before, after):
                assert action in GRID_ACTIONS
                changed += 1
            assert world.state() == state_from_env(world.u)
    assert changed > 10  # the episodes did pick up, drop and toggle


def test_mirror_image_is_an_involution_on_a_non_square_grid() -> None:
    from teduo_ray.envs.babyai.state import StateBatch

    blobs = [encode_state(_hand_grid(), (4, 3), d, None) for d in range(4)]
    once = StateBatch.from_blobs(blobs).mirrored()
    assert once.to_blobs() != blobs
    assert once.mirrored().to_blobs() == blobs
    first = decode_state(once.to_blobs()[0])  # facing east -> west, x -> width - 1 - x
    assert first.agent == (2, 3) and first.direction == 2
    assert tuple(first.grid[3, 2]) == (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"], 0)
    assert tuple(first.grid[1, 1]) == (OBJECT_TO_IDX["door"], COLOR_TO_IDX["blue"], 2)


def test_mirrored_actions_in_the_mirrored_world_give_the_mirrored_states() -> None:
    """What rl.sft_mirror relies on: minigrid's dynamics are mirror-symmetric. A real world
    plays random actions; a second real world, set to the mirror image, plays the mirrored
    actions; after every step its state is the mirror image of the first's."""
    from minigrid.core.grid import Grid

    from teduo_ray.envs.babyai.constants import MIRROR_ACTION
    from teduo_ray.envs.babyai.state import StateBatch

    rng = np.random.default_rng(0)
    for layout in range(6):
        world, twin = BabyAIWorld("BabyAI-GoToLocal-v0"), BabyAIWorld("BabyAI-GoToLocal-v0")
        start = world.reset(layout, np.random.default_rng(layout))
        twin.reset(layout, np.random.default_rng(layout))
        image = decode_state(StateBatch.from_blobs([start]).mirrored().to_blobs()[0])
        twin.u.grid = Grid.decode(np.array(image.grid))[0]
        twin.u.agent_pos, twin.u.agent_dir, twin.u.carrying = image.agent, image.direction, None
        twin._grid = None
        for action in rng.integers(0, 6, size=40):
            world.step(int(action))
            twin.step(MIRROR_ACTION[int(action)])
            assert twin.state() == StateBatch.from_blobs([world.state()]).mirrored().to_blobs()[0]
