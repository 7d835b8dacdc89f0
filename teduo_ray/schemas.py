"""The tables stages hand each other, declared once: folder, producer and the columns readers use.

Every stage reads its upstream tables through :meth:`teduo_ray.rundir.RunDir.read` with one of
these specs, so a table with a renamed or retyped column fails in the reading stage's driver
with one error that names the file, the expected and found columns and the command that
regenerates it (not a KeyError inside a Ray task). A spec lists only what readers rely on;
writers may add columns.
"""

from __future__ import annotations

import pyarrow as pa

from teduo_ray.data.intern import ID_TRANSITIONS_SCHEMA, STATES, STATES_SCHEMA
from teduo_ray.data.schema import TRANSITIONS, TRANSITIONS_SCHEMA
from teduo_ray.layout import ABSTRACTIONS, LABELS, LABELS_SCHEMA, POLICIES, POLICY_SCHEMA, SFT
from teduo_ray.rundir import TableSpec

_i32, _i8 = pa.int32(), pa.int8()

# `teduo collect`
TRANSITIONS_TABLE = TableSpec(TRANSITIONS, "collect", TRANSITIONS_SCHEMA)

# `teduo label` (the interned states, the abstractions and the final labels)
STATES_TABLE = TableSpec(STATES, "label", STATES_SCHEMA, "states.parquet")
ID_TRANSITIONS_TABLE = TableSpec(STATES, "label", ID_TRANSITIONS_SCHEMA, "transitions.parquet")
ABSTRACTIONS_TABLE = TableSpec(ABSTRACTIONS, "label",
                               pa.schema([("goal_id", pa.int64()), ("text", pa.string()), ("selection", pa.string())]),
                               "abstractions.parquet")
LABELS_TABLE = TableSpec(LABELS, "label", LABELS_SCHEMA)  # sparse: achieved + judged pairs (layout.py)

# `teduo learn`
POLICIES_TABLE = TableSpec(POLICIES, "learn", POLICY_SCHEMA)  # reachable states: action, steps (layout.py)

# `teduo distill`
SFT_TABLE = TableSpec(
    SFT, "distill",
    pa.schema([("goal_id", _i32), ("goal_text", pa.string()), ("state_id", _i32), ("state_text", pa.string()),
               ("actions", pa.list_(_i8))]),
)
