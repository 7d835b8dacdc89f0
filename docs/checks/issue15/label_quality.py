"""How good are a run's SFT answers? Their first action vs a true shortest path.

Usage (from the repo root, on a run that has finished `distill`):
    python docs/checks/issue15/label_quality.py RUN_DIR

For every SFT example whose agent carries nothing, a breadth-first search over (tile,
facing) on the REAL grid of its state (walls and objects block; the goal object is the one
the goal's rules abstraction marks) gives the true number of steps to face it (+1 for "pick
up"). Prints per goal type the share of examples whose first action is on a shortest path,
whose whole action list has the shortest length, and the mean length ratio answer / optimum.
The greedy Q policies follow only transitions the data contains, so sparse data makes their
rollouts (the SFT answers) detours. Approximate: toggling a box away (a shortcut the search
does not model) makes <1% of answers shorter than the "optimum".
"""
import collections
import glob
import sys
from collections import deque

import numpy as np
import pyarrow.parquet as pq

from teduo_ray.data.intern import StateReader
from teduo_ray.envs.babyai.constants import DIR_TO_VEC, ROLE_SHIFT
from teduo_ray.envs.babyai.state import GridState, StateBatch, decode_state
from teduo_ray.labeling.abstraction import abstract_batch, parse_selection
from teduo_ray.rundir import RunDir
from teduo_ray.schemas import ABSTRACTIONS_TABLE

FREE_TYPES = (1, 3)  # empty, floor
INF = 10**9


def steps_to_face(st: GridState, goal_cells: set[tuple[int, int]]) -> np.ndarray:
    """(W, H, 4) steps from each (tile, facing) to facing a goal cell: reverse BFS."""
    free = np.isin(st.grid[:, :, 0], FREE_TYPES)
    free[st.agent] = True
    w, h = free.shape
    dist = np.full((w, h, 4), INF)
    queue: deque[tuple[int, int, int]] = deque()
    for x, y in zip(*np.nonzero(free)):
        for d, (dx, dy) in enumerate(DIR_TO_VEC):
            if (x + dx, y + dy) in goal_cells:
                dist[x, y, d] = 0
                queue.append((x, y, d))
    while queue:
        x, y, d = queue.popleft()
        dx, dy = DIR_TO_VEC[d]
        preds = [(x, y, (d + 1) % 4), (x, y, (d - 1) % 4)]  # turned left / right into d
        if 0 <= x - dx < w and 0 <= y - dy < h and free[x - dx, y - dy]:
            preds.append((x - dx, y - dy, d))  # moved forward into (x, y)
        for p in preds:
            if dist[p] == INF:
                dist[p] = dist[x, y, d] + 1
                queue.append(p)
    return dist


def first_action_optimal(st: GridState, dist: np.ndarray, action: int, pick_up: bool) -> bool:
    x, y = st.agent
    d = st.direction
    if dist[x, y, d] == 0:
        return action == 3 if pick_up else True
    if action == 0:
        nxt = (x, y, (d - 1) % 4)
    elif action == 1:
        nxt = (x, y, (d + 1) % 4)
    elif action == 2:
        dx, dy = DIR_TO_VEC[d]
        ahead = np.isin(st.grid[x + dx, y + dy, 0], FREE_TYPES)
        nxt = (x + dx, y + dy, d) if ahead else (x, y, d)
    else:
        return False
    return bool(dist[nxt] == dist[x, y, d] - 1)


def main(rd: str) -> None:
    run = RunDir(rd)
    abstractions = {r["goal_id"]: r for r in run.read(ABSTRACTIONS_TABLE).to_pylist()}
    sft = pq.read_table(glob.glob(f"{rd}/sft/*.parquet")).to_pylist()
    ids = np.unique(np.array([r["state_id"] for r in sft]))
    blobs = dict(zip(ids.tolist(), StateReader(run).take(ids)))
    stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0, 0, 0.0])
    for r in sft:
        blob = blobs[r["state_id"]]
        st = decode_state(blob)
        selection = parse_selection(abstractions[r["goal_id"]]["selection"])
        marked = decode_state(abstract_batch(StateBatch.from_blobs([blob]), selection).to_blobs()[0])
        roles = (marked.grid[:, :, 2] >> ROLE_SHIFT) & 3
        goal_cells = {(int(x), int(y)) for x, y in np.argwhere(roles == 1)}
        if st.carrying is not None or not goal_cells:
            continue
        pick_up = r["goal_text"].startswith("pick")
        dist = steps_to_face(st, goal_cells)
        optimum = int(dist[st.agent[0], st.agent[1], st.direction]) + int(pick_up)
        s = stats["pick_up" if pick_up else "go_to"]
        s[0] += 1
        s[1] += first_action_optimal(st, dist, r["actions"][0], pick_up)
        s[2] += len(r["actions"]) == optimum
        s[3] += len(r["actions"]) / max(optimum, 1)
    for goal_type, (n, ok, exact, ratio) in sorted(stats.items()):
        print(f"{goal_type}: {n} examples; first action on a shortest path {ok / n:.3f}; "
              f"answer of shortest length {exact / n:.3f}; mean length / optimum {ratio / n:.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
