"""BabyAI (minigrid) as a TEDUO environment. Only world.py imports minigrid."""

from teduo_ray.envs.babyai.goals import Goal, GoalEntry, build_catalogue
from teduo_ray.envs.babyai.paraphrase import parse_goal
from teduo_ray.envs.babyai.predicates import achieved, achieved_bytes
from teduo_ray.envs.babyai.state import GridState, decode_state, encode_state
from teduo_ray.envs.babyai.text import render_state

__all__ = [
    "Goal",
    "GoalEntry",
    "GridState",
    "achieved",
    "achieved_bytes",
    "build_catalogue",
    "decode_state",
    "encode_state",
    "parse_goal",
    "render_state",
]
