"""A live BabyAI environment for collection and evaluation (imports minigrid).

A *layout* is what the level generator draws for one seed (walls, doors, objects). An
episode re-creates its layout, puts the agent on a random free tile facing a random way, and,
for the bot, replaces the level's mission by a goal from our catalogue.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from teduo_ray.envs.babyai.constants import OBJECT_TO_IDX
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.state import state_from_env


@contextlib.contextmanager
def quiet() -> Any:
    """minigrid prints "Sampling rejected: ..." hundreds of times on resets: swallow it."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield

def make_instr(goal: Goal) -> Any | None:
    """The BabyAI instruction for a goal, or None where BabyAI has none (go_to_tile).

    An "and" goal becomes BabyAI's AndInstr of its parts that have instructions (the bot
    does the first part, then the second: pick up X, then go to Y, and for "and" missions
    it keeps holding X, see BabyAIWorld.bot_action), or that one part alone when the other
    is a go_to_tile (which the bot cannot pursue). The mission only steers the behaviour
    policy: AndInstr succeeds when both parts were done at some point, not necessarily in
    one state, and go_to_tile parts are left out, so collection is NOT guaranteed to reach
    the conjunction; the per-state predicate (predicates.py) is what counts.
    """
    from minigrid.envs.babyai.core.verifier import (
        AndInstr,
        GoToInstr,
        ObjDesc,
        OpenInstr,
        PickupInstr,
        PutNextInstr,
    )

    if goal.type == "and":
        instrs = [i for i in (make_instr(p) for p in goal.parts) if i is not None]
        if not instrs:
            return None
        out = instrs[0]
        for nxt in instrs[1:]:
            out = AndInstr(out, nxt)
        return out
    if goal.type == "go_to":
        return GoToInstr(ObjDesc(goal.obj, goal.color))
    if goal.type == "pick_up":
        return PickupInstr(ObjDesc(goal.obj, goal.color))
    if goal.type == "open":
        return OpenInstr(ObjDesc("door", goal.color))
    if goal.type == "put_next":
        return PutNextInstr(ObjDesc(goal.obj, goal.color), ObjDesc(goal.obj2, goal.color2))
    return None

MAX_BOT_SEARCHES = 200  # path searches per bot action; a normal re-plan needs a handful
# The only minigrid actions that change the grid in BabyAI levels (nothing else moves: the
# agent is not part of the grid's encoding): pickup, drop, toggle, and each changes at most
# the cell in front of the agent (a box toggles into its contents there). So the grid's
# encoding, a Python loop over every cell that was ~60% of an evaluation step on 22x22, is
# made once per episode and then patched at that one cell.
GRID_ACTIONS = frozenset((3, 4, 5))
_EMPTY_CELL = (OBJECT_TO_IDX["empty"], 0, 0)


class BabyAIWorld:
    """One minigrid BabyAI env with layout seeds, random starts and catalogue missions.

    Args:
        level: a registered BabyAI id (e.g. "BabyAI-GoToLocal-v0").
    """

    def __init__(self, level: str) -> None:
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the BabyAI ids)

        with quiet():
            self.env = gym.make(level).unwrapped
        self.level = level
        self.u = self.env
        # Nothing here reads minigrid's observation (states come from state_from_env and the
        # bot renders its own view); building it was ~45% of a collection step.
        self.u.gen_obs = lambda: {}
        self.bot: Any | None = None
        self._grid: np.ndarray | None = None  # the grid's encoding, until an action changes it
        self._searches = 0
        self._last_action: int | None = None
        self._keep_carrying = False

    # ------------------------------------------------------------------ episodes
    def reset(self, layout_seed: int, rng: np.random.Generator, goal: Goal | None = None) -> bytes:
        """Start an episode on a layout from a random start; ``goal`` becomes the mission.

        Returns:
            The encoded start state.
        """
        with quiet():
            self.env.reset(seed=int(layout_seed))
        self.u.np_random = rng
        self.u.place_agent()
        self.u.max_steps = 10**9  # the caller owns the step limit
        self.u.step_count = 0
        self.bot = None
        self._grid = None
        self._last_action = None
        # "and" goals with a pick_up part: keep holding the object (the bot's PickupInstr
        # plan drops it right away), so "carrying X while ..." states appear in the data.
        self._keep_carrying = goal is not None and goal.type == "and" and any(
            p.type == "pick_up" for p in goal.parts
        )
        if goal is not None:
            instr = make_instr(goal)
            if instr is None:
                raise ValueError(f"goal {goal.key} has no BabyAI instruction")
            self.u.instrs = instr
            instr.reset_verifier(self.u)
            self.u.mission = instr.surface(self.u)
        return self.state()

    def state(self) -> bytes:
        """The encoded current state (equal to ``state_from_env``; the grid part is cached)."""
        if self._grid is None:
            self._grid = self.u.grid.encode()
        return state_from_env(self.u, self._grid)

    def step(self, action: int) -> bool:
        """Take an action; True when the current mission's verifier reports success."""
        _, _, terminated, _, _ = self.env.step(int(action))
        self._last_action = int(action)
        if action in GRID_ACTIONS and self._grid is not None:
            fx, fy = self.u.front_pos
            if 0 <= fx < self._grid.shape[0] and 0 <= fy < self._grid.shape[1]:
                cell = self.u.grid.get(int(fx), int(fy))
                self._grid[fx, fy] = cell.encode() if cell is not None else _EMPTY_CELL
        return bool(terminated)

    def bot_action(self) -> int:
        """The BabyAI bot's next action for the current mission (raises if it gives up)."""
        from minigrid.utils.baby_ai_bot import BabyAIBot

        with quiet():
            self._searches = 0
            if self.bot is None:
                from minigrid.utils.baby_ai_bot import DropSubgoal

                self.bot = BabyAIBot(self.u)
                self.bot._shortest_path = self._bounded(self.bot._shortest_path)
                if self._keep_carrying:
                    self.bot.stack = [g for g in self.bot.stack if not isinstance(g, DropSubgoal)]
                return int(self.bot.replan())
            return int(self.bot.replan(self._last_action))

    def _bounded(self, shortest_path: Any) -> Any:
        """The bot's path search, limited to MAX_BOT_SEARCHES calls per action.

        minigrid 3.2's bot loops forever when its explore subgoal finds no unseen tile left
        (it neither acts nor pops the subgoal); seen on 22x22 Synth layouts. Past the limit
        this raises, and the caller ends the episode as for any bot failure.
        """

        def search(*args: Any, **kwargs: Any) -> Any:
            self._searches += 1
            if self._searches > MAX_BOT_SEARCHES:
                raise RuntimeError("the BabyAI bot is stuck re-planning")
            return shortest_path(*args, **kwargs)

        return search

    # ------------------------------------------------------------------ layout facts
    def grid_size(self) -> tuple[int, int]:
        return int(self.u.width), int(self.u.height)

    def feasible(self, goal: Goal) -> bool:
        """Can the bot pursue ``goal`` on the current layout (are its objects there)?

        An "and" goal: every object part is feasible, every tile part is an empty tile of
        this layout, and at least one part is not a tile (that part is the bot's mission).
        """
        if goal.type == "and":
            tiles = [p.tile for p in goal.parts if p.type == "go_to_tile"]
            if len(tiles) == len(goal.parts):
                return False
            if any(t is None or self.u.grid.get(*t) is not None for t in tiles):
                return False
            return all(self.feasible(p) for p in goal.parts if p.type != "go_to_tile")
        if goal.type == "go_to_tile":
            return False
        objs = [o for o in self.u.grid.grid if o is not None]

        def has(color: str | None, obj: str | None, closed_door: bool = False) -> bool:
            return any(
                o.type == obj and o.color == color and (not closed_door or not o.is_open)
                for o in objs
            )

        if goal.type == "open":
            return has(goal.color, "door", closed_door=True)
        if goal.type == "put_next":
            return has(goal.color, goal.obj) and has(goal.color2, goal.obj2)
        return has(goal.color, goal.obj)
