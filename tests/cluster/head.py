"""A real Ray head on loopback for tests: `ray start --head --block` in its own process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_env() -> dict[str, str]:
    """The environment of the head and of the clients: this interpreter's bin first, token
    auth off (Ray 2.60 turns it on by default; a loopback test cluster does not need it)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1"}


@contextmanager
def ray_head(num_cpus: int = 2, timeout: float = 180.0) -> Iterator[str]:
    """Start a head node with the dashboard (the Jobs API) on loopback; yields its HTTP address.

    It runs in its own process group, so stopping it never touches another Ray on the
    machine (``ray stop`` would kill every Ray process). Every port is a free one: with the
    defaults, another Ray on the machine already holds the dashboard agent's 52365, this
    head's agent never comes up, and job submission fails with "No available agent".
    """
    gcs, dash = free_port(), free_port()
    ray_cli = str(Path(sys.executable).parent / "ray")
    proc = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", f"--port={gcs}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--num-cpus={num_cpus}",
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
         "--include-dashboard=true", "--disable-usage-stats"],
        env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout and proc.poll() is not None else ""
                    raise RuntimeError(f"ray head did not come up: {out[-2000:]}") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
