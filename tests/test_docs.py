"""The docs stand alone: every link and every path into this repository that the README and
docs/ name exists here (external sources are cited by project, commit and file instead)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("hwsim", "docs", "models", "explore", "tests", "benchmarks", "results", "rtl", ".ci")
#: paths named that are not files of this repository, and why
NOT_HERE = {
    "results/quickstart/": "written by the quickstart sweep",
    "hwsim/models": "the copy of models/ inside a built wheel",
    "docs/assets/Inference_OPT_66B.png": "a file of Flash-LLM's repository, cited",
}


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_links_and_repository_paths_exist():
    missing = []
    for f in _docs():
        text = f.read_text()
        for m in re.finditer(r"\]\(([^)#\s]+)", text):
            target = m.group(1)
            if "://" not in target and not (f.parent / target).exists():
                missing.append(f"{f.name}: link {target}")
        for m in re.finditer(r"`([A-Za-z0-9_.-]+/[A-Za-z0-9_./<>*{}-]*)`", text):
            path = m.group(1)
            if (path.split("/")[0] not in TOP or any(c in path for c in "<>*{}")
                    or path in NOT_HERE):
                continue
            if not (ROOT / path.rstrip("/")).exists():
                missing.append(f"{f.name}: {path}")
    assert not missing, missing


def test_readme_lists_every_benchmark_and_evaluator():
    readme = (ROOT / "README.md").read_text()
    for bench in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert f"benchmarks/{bench.name}" in readme, bench.name
    from hwsim.system import all_systems

    for system in all_systems():
        row = next(ln for ln in readme.splitlines() if ln.startswith(f"| `{system.name}` |"))
        evaluators = row.rsplit("|", 2)[-2]
        assert ("DES" in evaluators) == (system.des is not None), system.name
