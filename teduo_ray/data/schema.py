"""The transitions table: what `collect` writes and every later stage reads.

No reward and no goal/mission column: the data is unlabeled by design (TEDUO_SPEC.md).
States are self-describing bytes (see envs/babyai/state.py).
"""

from __future__ import annotations

import pyarrow as pa

TRANSITIONS = "transitions"

TRANSITIONS_SCHEMA = pa.schema(
    [
        pa.field("episode_id", pa.int64(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("layout", pa.int64(), nullable=False),
        pa.field("state", pa.binary(), nullable=False),
        pa.field("action", pa.int8(), nullable=False),
        pa.field("next_state", pa.binary(), nullable=False),
        pa.field("done", pa.bool_(), nullable=False),
    ]
)
