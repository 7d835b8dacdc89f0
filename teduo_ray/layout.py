"""Run-directory contracts of steps 1 and 2: folder names and the schema of each table.

Stages talk only through these files, so each table has one schema, defined here; readers
and writers import it from here (the transitions' and states' schemas live with the data
step: data/schema.py, data/intern.py).

Both tables are SPARSE: nothing in a run directory has one row per (goal, state) pair.
- ``rewards/labels/``: per training goal, the states labelled achieved (whatever labelled
  them) plus the pairs the labeler itself judged (also the negative ones). A pair that is
  absent was scored by the reward model below its threshold: not achieved.
- ``policies/``: per training goal, the states from which the goal is reachable in the
  empirical model, with the greedy action and the number of steps it takes. Q is not
  stored: on the deterministic empirical model Q*(s, a) = gamma ** d(next(s, a)), so
  ``steps`` (= 1 + d(next(s, greedy))) gives the greedy value gamma ** (steps - 1).
"""

from __future__ import annotations

import pyarrow as pa

ABSTRACTIONS = "abstractions"
REQUESTS = "rewards/requests"
LLM_LABELS = "rewards/llm"
MODEL = "rewards/model"
LABELS = "rewards/labels"
ACCURACY = "rewards/accuracy.json"
POLICIES = "policies"
SFT = "sft"

REQUESTS_SCHEMA = pa.schema(
    [
        pa.field("goal_id", pa.int32()),
        pa.field("state_id", pa.int32()),
        pa.field("goal_text", pa.string()),
        pa.field("state", pa.binary()),  # the goal's abstract state (predicates read it)
        pa.field("prompt_state", pa.binary()),  # what the labeler reads (abstract, or raw)
        pa.field("shard", pa.int32()),
    ]
)
LLM_LABELS_SCHEMA = pa.schema(
    [("goal_id", pa.int32()), ("state_id", pa.int32()), ("p_llm", pa.float32()), ("llm_label", pa.bool_())]
)
LABELS_SCHEMA = pa.schema(
    [
        pa.field("goal_id", pa.int32(), False),
        pa.field("state_id", pa.int32(), False),
        pa.field("p", pa.float32(), False),
        pa.field("label", pa.bool_(), False),
        pa.field("source", pa.string(), False),  # "llm" (the labeler judged it) or "model"
    ]
)
POLICY_SCHEMA = pa.schema(
    [
        pa.field("goal_id", pa.int32(), False),
        pa.field("state_id", pa.int32(), False),
        pa.field("action", pa.int8(), False),
        pa.field("steps", pa.int32(), False),  # greedy steps to an achieved state
    ]
)
