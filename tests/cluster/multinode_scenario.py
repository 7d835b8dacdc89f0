"""Several Ray nodes on one machine (ray.cluster_utils.Cluster): where work lands, and a
worker node removed mid-stage. Run as a script (it owns its Ray) by test_multinode.py;
prints one JSON line with what it observed."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from teduo_ray.data.collect import collect
from teduo_ray.labeling.label import label
from teduo_ray.rl.learn import learn
from teduo_ray.rundir import RunDir
from tests.conftest import small_config

SMALL = ("labeling.llm_states_per_goal=30", "labeling.reward_epochs=3", "rl.goals_per_shard=4",
         "labeling.num_actors=2", "rl.num_actors=2")
MANY_SHARDS = ("env.train_layouts=8", "data.episodes_per_layout=6", "data.episodes_per_shard=2")


def nodes_of(run_dir: Path, folder: str) -> list[str]:
    shards = RunDir(str(run_dir)).read_json(folder, "_manifest.json")["shards"]
    return sorted({s["node"] for s in shards.values()})


def shas(run_dir: Path) -> dict[str, str]:
    shards = RunDir(str(run_dir)).read_json("transitions", "_manifest.json")["shards"]
    return {name: s["sha256"] for name, s in shards.items()}


def main(root: Path) -> None:
    # The head runs the driver only (0 CPUs); two 1-CPU workers do the work.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    out: dict[str, object] = {"nodes": len([n for n in ray.nodes() if n["Alive"]])}

    spread = root / "spread"
    cfg = small_config(spread, *SMALL)
    collect(cfg, progress=False)
    label(cfg, progress=False)
    learn(cfg, progress=False)
    out["collect_nodes"] = nodes_of(spread, "transitions")
    out["label_nodes"] = nodes_of(spread, "rewards/labels")
    out["learn_nodes"] = nodes_of(spread, "policies")

    reference = root / "reference"
    collect(small_config(reference, *MANY_SHARDS), progress=False)

    victim = root / "victim"
    vcfg = small_config(victim, *MANY_SHARDS)
    manifest = victim / "transitions" / "_manifest.json"
    removed = threading.Event()

    def remove_when_started() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if manifest.exists() and len(json.loads(manifest.read_text())["shards"]) >= 3:
                cluster.remove_node(workers[1], allow_graceful=False)
                removed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=remove_when_started, daemon=True)
    killer.start()
    result = collect(vcfg, progress=False)
    killer.join()
    out["removed_mid_stage"] = removed.is_set()
    out["shards_after_removal"] = result.shards
    out["identical_after_removal"] = shas(victim) == shas(reference)
    deadline = time.monotonic() + 120  # the GCS marks a killed raylet dead after its health checks
    while len([n for n in ray.nodes() if n["Alive"]]) > 2 and time.monotonic() < deadline:
        time.sleep(1)
    out["alive_nodes_after"] = len([n for n in ray.nodes() if n["Alive"]])
    ray.shutdown()
    cluster.shutdown()
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
