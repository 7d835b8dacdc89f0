"""The agent's prompt and answer format (TEDUO_SPEC.md, step 3), shared by SFT and evaluation.

One place builds the chat messages so that what the model is fine-tuned on is exactly what
it is asked at evaluation time. The answer is the action list, e.g. "[1, 2, 2, 3]"; at test
time only the first action is used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from teduo_ray.envs.babyai.constants import ACTION_NAMES

SYSTEM_PROMPT = (
    "You are an RL agent in minigrid. Select the optimal actions to achieve the GOAL "
    "from the STATE."
)
ACTION_LIST = ", ".join(f"{i} {name}" for i, name in enumerate(ACTION_NAMES))
USER_TEMPLATE = "Actions: {actions}.\nSTATE: {state}\nGOAL: {goal}"
_FIRST_INT = re.compile(r"\[\s*(\d+)")


def messages(state_text: str, goal_text: str) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for the action list of one (state, goal)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(actions=ACTION_LIST, state=state_text, goal=goal_text)},
    ]


def answer(actions: Sequence[int]) -> str:
    """The target text of an action list: "[1, 2, 2, 3]"."""
    return "[" + ", ".join(str(int(a)) for a in actions) + "]"


def first_action(text: str) -> int | None:
    """The first action of a generated answer, or None if it is not a valid action list."""
    m = _FIRST_INT.search(text)
    if m is None:
        return None
    a = int(m.group(1))
    return a if 0 <= a < len(ACTION_NAMES) else None
