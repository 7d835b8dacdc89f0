"""Package boundaries: no import cycle between the TEDUO step packages, and the LLM layer
(llm/) imports none of them. Every import counts, also the ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "teduo_ray"
STEPS = ("data", "labeling", "rl", "sft", "evaluation", "report", "llm", "envs")


def package_imports() -> dict[str, set[str]]:
    """step package -> the other step packages its modules import."""
    graph: dict[str, set[str]] = {p: set() for p in STEPS}
    for pkg in STEPS:
        for path in (PACKAGE / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                for name in names:
                    parts = name.split(".")
                    if len(parts) > 1 and parts[0] == "teduo_ray" and parts[1] in STEPS and parts[1] != pkg:
                        graph[pkg].add(parts[1])
    return graph


def test_no_import_cycle_between_step_packages() -> None:
    graph = package_imports()

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph[start])

    cycles = sorted(p for p in STEPS if reaches(p, p, set()))
    assert not cycles, {p: sorted(graph[p]) for p in cycles}


def test_the_llm_layer_imports_no_stage_package() -> None:
    assert package_imports()["llm"] <= {"envs"}, package_imports()["llm"]
