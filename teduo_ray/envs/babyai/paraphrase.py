"""Paraphrases for test goals, and a parser that reads canonical or paraphrased goal text.

Test goals differ from training goals in task AND wording (TEDUO_SPEC.md): every verb is
replaced by a synonym, objects and colours are replaced with probability 1/2 where a synonym
exists ("pick up" -> grab/collect/acquire, box -> container/crate/chest, blue -> azure/navy).
The synonym sets are disjoint, so :func:`parse_goal` maps any wording back to one :class:`Goal`.
An "and" goal is each part paraphrased, joined by a connector other than the canonical
" and " (AND_CONNECTORS); no other word contains a connector, so the parser splits on it.
"""

from __future__ import annotations

import re

import numpy as np

from teduo_ray.envs.babyai.constants import COLOR_NAMES
from teduo_ray.envs.babyai.goals import AND_PAIRS, GO_TO_OBJECTS, Goal

VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "go_to": ("walk to", "head to", "move to", "navigate to", "make your way to"),
    "pick_up": ("grab", "collect", "acquire", "take", "lift"),
    "open": ("open up", "unbar", "push open"),
    "put_next": ("place", "set", "move", "position"),
    "go_to_tile": ("walk to", "head to", "move to", "navigate to"),
    "and": (", and", "while also", "and also"),  # connectors replacing the canonical " and "
}
PUT_NEXT_LINKS: tuple[str, ...] = ("beside", "adjacent to", "next to", "alongside")
TILE_NOUNS: tuple[str, ...] = ("cell", "square", "position")
AND_CONNECTORS: tuple[str, ...] = (" and ", *(f"{c} " if c.startswith(",") else f" {c} " for c in VERB_SYNONYMS["and"]))
OBJECT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "box": ("container", "crate", "chest"),
    "ball": ("sphere", "orb"),
    "key": ("keycard",),
    "door": ("doorway", "gate"),
}
COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet"),
    "green": ("emerald", "lime"),
    "blue": ("azure", "navy"),
    "purple": ("violet", "magenta"),
    "yellow": ("golden", "amber"),
    "grey": ("gray", "silver"),
}


def _maybe(word: str, table: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    options = table.get(word, ())
    if options and rng.random() < 0.5:
        return str(options[rng.integers(len(options))])
    return word


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return str(options[rng.integers(len(options))])


def paraphrase(goal: Goal, rng: np.random.Generator) -> str:
    """A reworded goal: new verb always, object and colour synonyms with probability 1/2."""
    if goal.type == "and":
        texts = [paraphrase(p, rng) for p in goal.parts]
        return _pick(AND_CONNECTORS[1:], rng).join(texts)
    verb = _pick(VERB_SYNONYMS[goal.type], rng)
    if goal.type == "go_to_tile":
        assert goal.tile is not None
        return f"{verb} {_pick(TILE_NOUNS, rng)} ({goal.tile[0]}, {goal.tile[1]})"
    first = f"the {_maybe(str(goal.color), COLOR_SYNONYMS, rng)} {_maybe(str(goal.obj), OBJECT_SYNONYMS, rng)}"
    if goal.type == "put_next":
        second = f"the {_maybe(str(goal.color2), COLOR_SYNONYMS, rng)} {_maybe(str(goal.obj2), OBJECT_SYNONYMS, rng)}"
        return f"{verb} {first} {_pick(PUT_NEXT_LINKS, rng)} {second}"
    return f"{verb} {first}"


def _reverse(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    out = {}
    for canonical, synonyms in table.items():
        out[canonical] = canonical
        for s in synonyms:
            out[s] = canonical
    return out


_COLOR = _reverse({c: COLOR_SYNONYMS.get(c, ()) for c in COLOR_NAMES})
_OBJECT = _reverse({o: OBJECT_SYNONYMS.get(o, ()) for o in GO_TO_OBJECTS})
_ALT = lambda words: "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))  # noqa: E731
_DESC = rf"(?:the |a |an )?({_ALT(_COLOR)}) ({_ALT(_OBJECT)})"
_GOTO_VERBS = ("go to", *VERB_SYNONYMS["go_to"], "reach")
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("go_to_tile", re.compile(rf"^(?:{_ALT(_GOTO_VERBS)}) (?:tile|{_ALT(TILE_NOUNS)}) \((\d+), ?(\d+)\)$")),
    ("put_next", re.compile(rf"^(?:put|{_ALT(VERB_SYNONYMS['put_next'])}) {_DESC} (?:{_ALT(PUT_NEXT_LINKS)}) {_DESC}$")),
    ("pick_up", re.compile(rf"^(?:pick up|{_ALT(VERB_SYNONYMS['pick_up'])}) {_DESC}$")),
    ("open", re.compile(rf"^(?:open|{_ALT(VERB_SYNONYMS['open'])}) {_DESC}$")),
    ("go_to", re.compile(rf"^(?:{_ALT(_GOTO_VERBS)}) {_DESC}$")),
)


_AND_SPLIT = re.compile("|".join(re.escape(c) for c in sorted(AND_CONNECTORS, key=len, reverse=True)))


def parse_goal(text: str) -> Goal | None:
    """Parse canonical or paraphrased goal text; None if it matches no template."""
    norm = " ".join(text.lower().strip().rstrip(".").split())
    atomic = _parse_atomic(norm)
    if atomic is not None:
        return atomic
    pieces = _AND_SPLIT.split(norm)
    if len(pieces) < 2:
        return None
    parts = tuple(_parse_atomic(p.strip()) for p in pieces)
    if any(p is None for p in parts) or tuple(p.type for p in parts) not in AND_PAIRS:  # type: ignore[union-attr]
        return None  # only the catalogue's conjunctions, parts in catalogue order
    return Goal("and", parts=parts)  # type: ignore[arg-type]


def _parse_atomic(norm: str) -> Goal | None:
    for gtype, pattern in _PATTERNS:
        m = pattern.match(norm)
        if not m:
            continue
        if gtype == "go_to_tile":
            return Goal("go_to_tile", tile=(int(m.group(1)), int(m.group(2))))
        color, obj = _COLOR[m.group(1)], _OBJECT[m.group(2)]
        if gtype == "put_next":
            return Goal("put_next", color, obj, _COLOR[m.group(3)], _OBJECT[m.group(4)])
        if gtype == "open" and obj != "door":
            return None
        return Goal(gtype, color, obj)
    return None
