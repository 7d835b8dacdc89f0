"""Run directories on a real S3 protocol: moto's standalone server on loopback, pyarrow's S3
filesystem, the real `teduo` CLI in subprocesses.

The server's address and test credentials reach the CLI (and the Ray workers it starts)
through the standard AWS variables: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION. One shrunken tiny job runs up to `finetune` on
`s3://teduo/tiny` (Ray Train checkpoints included); evaluation and the report then run on it
with few episodes; a finetune killed after its first checkpoint resumes from S3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

pytest.importorskip("moto", reason="moto is not installed: pip install -e '.[dev]' (moto[server])")

from tests.conftest import REPO, kill_tree, run_teduo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BUCKET = "teduo"
SHRUNK = ("env.train_layouts=4", "data.episodes_per_layout=5", "data.episodes_per_shard=3",
          "data.max_episode_steps=20", "labeling.llm_states_per_goal=30", "labeling.reward_epochs=3",
          "rl.baselines=[bc]", "rl.baseline_iterations=1", "rl.baseline_updates_per_iteration=2",
          "sft.epochs=1", "sft.tiny_hidden=32", "sft.tiny_intermediate=64", "sft.tiny_layers=1",
          "sft.tiny_heads=2", "sft.eval_every_steps=4")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 with a bucket; the AWS variables set for this process and
    the CLI subprocesses (and a fresh model cache, so downloads really happen)."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail(f"moto_server did not start on {endpoint}")
                time.sleep(0.3)
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "TEDUO_CACHE": str(tmp_path_factory.mktemp("cache"))}
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            import pyarrow.fs as pafs

            pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True).create_dir(BUCKET)
            yield env
    finally:
        server.kill()
        server.wait(timeout=30)


def _files(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(i.path[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)


def _json(uri: str) -> dict:
    import json

    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


@pytest.fixture(scope="module")
def s3_run(s3_env: dict[str, str]) -> str:
    """The shrunken tiny job up to `finetune`, on S3."""
    run = f"s3://{BUCKET}/tiny"
    t0 = time.time()
    done = run_teduo("run", "jobs/tiny.yaml", f"run_dir={run}", *SHRUNK, "--until", "finetune", "--no-progress",
                     timeout=850)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"tiny job until finetune on S3: {time.time() - t0:.0f}s")
    return run


def test_tiny_job_until_finetune_writes_everything_to_s3(s3_run: str) -> None:
    files = _files(s3_run)
    for stage in ("transitions", "states", "policies", "baselines/bc", "sft", "finetune"):
        assert f"{stage}/_manifest.json" in files, stage
    assert "finetune/model/config.json" in files and "models/tiny-agent/tokenizer.json" in files
    assert any(f.startswith("finetune/ray/") and "/checkpoint_" in f for f in files)  # Ray Train's storage
    assert _json(f"{s3_run}/finetune/_manifest.json")["complete"]
    assert not (REPO / BUCKET).exists()  # no stage wrote the URI's path to the local disk

    from teduo_ray.config import load_config
    from teduo_ray.llm.loading import load_model
    from teduo_ray.sft.models import final_model_dir

    model_dir = final_model_dir(load_config(REPO / "jobs" / "tiny.yaml", [f"run_dir={s3_run}"]))
    assert model_dir == f"{s3_run}/finetune/model"
    tok, model = load_model(model_dir)  # downloaded to TEDUO_CACHE first
    assert model.config.model_type == "llama" and tok.pad_token_id is not None
    assert str(os.environ["TEDUO_CACHE"]) in tok.name_or_path


def test_evaluate_and_report_on_s3(s3_run: str) -> None:
    small = ("eval.methods=[random,qtable,finetuned]", "eval.episodes_per_cell=2", "eval.max_steps=6",
             "eval.llm_replicas=1")
    for stage in ("evaluate", "report"):
        done = run_teduo(stage, "jobs/tiny.yaml", f"run_dir={s3_run}", *SHRUNK, *small, "--no-progress", timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = _json(f"{s3_run}/eval/summary.json")
    assert summary["methods"] == ["random", "qtable", "finetuned"] and not summary["skipped"]
    files = _files(s3_run)
    assert {"report.md", "report.html", "report/facts.json", "report/loss.png"} <= set(files)


def test_killed_finetune_resumes_from_its_s3_checkpoint(s3_run: str, s3_env: dict[str, str]) -> None:
    """kill -9 `teduo finetune` (driver + its Ray) after Ray Train registered a checkpoint on
    S3; the same command again continues from it, not from step 0."""
    import pyarrow.fs as pafs

    run = f"s3://{BUCKET}/resume"
    fs, src = pafs.FileSystem.from_uri(s3_run)
    for folder in ("sft", "models"):
        pafs.copy_files(f"{src}/{folder}", f"{BUCKET}/resume/{folder}", source_filesystem=fs, destination_filesystem=fs)
    args = ("finetune", "jobs/tiny.yaml", f"run_dir={run}", *SHRUNK, "sft.epochs=6", "sft.eval_every_steps=3",
            "--no-progress")
    driver = subprocess.Popen([sys.executable, "-m", "teduo_ray.cli", *args], cwd=REPO, env={**os.environ},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, checkpointed = time.time() + 400, False
        while driver.poll() is None and time.time() < deadline and not checkpointed:
            checkpointed = any(f.endswith("checkpoint_manager_snapshot.json") for f in _files(f"{run}/finetune"))
            time.sleep(1)
        assert checkpointed and driver.poll() is None, "no checkpoint on S3 before finetune ended (or timed out)"
    finally:
        kill_tree(driver)
    assert not _json(f"{run}/finetune/_manifest.json")["complete"]

    again = run_teduo(*args, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    summary = _json(f"{run}/finetune/history.json")["summary"]
    assert summary["resumed_from_step"] is not None and summary["resumed_from_step"] >= 3, summary


def test_the_tiny_judge_of_an_s3_run_is_built_once_and_uploaded(s3_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """labeling.model=tiny on an s3:// run directory: the judge is built locally, uploaded to
    RUN/models/tiny-judge (not to a local folder named like the bucket path) and loads from
    there through the one loader; a second call reuses it."""
    from teduo_ray.labeling.generate import resolve_model
    from teduo_ray.llm.loading import load_causal_lm
    from teduo_ray.rundir import RunDir
    from tests.conftest import small_config

    uri = f"s3://{BUCKET}/judge-run"
    cfg = small_config(uri, "labeling.backend=hf", "labeling.model=tiny")
    run = RunDir(uri)
    path = resolve_model(cfg, run)
    assert path == f"{uri}/models/tiny-judge"
    files = _files(path)
    assert "config.json" in files and "_uploaded" in files
    assert not (REPO / BUCKET).exists() and not (tmp_path / BUCKET).exists()
    stamp = _files(uri)
    assert resolve_model(cfg, run) == path and _files(uri) == stamp
    tokenizer, model, device = load_causal_lm(path, "cpu")
    assert tokenizer.pad_token_id is not None and device == "cpu"
