"""The README's two set-up commands stay true: CI runs exactly the test command."""

from __future__ import annotations

from tests.conftest import REPO

TEST_COMMAND = 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest -q'
RUN_COMMAND = 'pip install torch==2.13.0 && pip install -e ".[dev]" && teduo run jobs/tiny.yaml'


def test_readme_commands_and_ci_agree() -> None:
    readme = (REPO / "README.md").read_text()
    assert TEST_COMMAND in readme and RUN_COMMAND in readme
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in ci
