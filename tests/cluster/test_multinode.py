"""Multi-node behaviour on one machine: work spreads over nodes; losing a node mid-stage is
survived with nothing lost (the scenario runs in its own process: it owns its Ray)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.head import ray_env
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_stages_spread_over_nodes_and_survive_a_node_removed_mid_stage(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cluster.multinode_scenario", str(tmp_path)],
        cwd=REPO, env=ray_env(), capture_output=True, text=True, timeout=850,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["nodes"] == 3
    assert len(out["collect_nodes"]) == 2, out  # both worker nodes collected
    assert len(out["label_nodes"]) == 2, out  # labeling actors on both
    assert len(out["learn_nodes"]) == 2, out  # the learning pool too
    assert out["removed_mid_stage"], out
    assert out["alive_nodes_after"] == 2, out
    assert out["identical_after_removal"], out  # retried elsewhere, same bytes, nothing lost
