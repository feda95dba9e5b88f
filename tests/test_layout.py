"""The package layout: shared layers and systems, and who may import whom.

A system package (one that registers a system) imports the shared layers (``hwsim.hw``,
``hwsim.llm``, ``hwsim.serving``, ``hwsim.des``, ``hwsim.rtl``, the core modules) and never
another system package; the shared layers import no system package at all. The imports are
read from the source (every ``import`` statement, those inside functions included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hwsim
from hwsim.registry import BUILTIN_PACKAGES
from hwsim.system import all_systems

ROOT = Path(hwsim.__file__).parent


def _top(module: str) -> str | None:
    """The first-level package of an hwsim module name (``hwsim.spmm.des`` -> ``spmm``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "hwsim" else None


def _imports(path: Path) -> set[str]:
    """Every hwsim module a source file imports (absolute names)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = ".".join(("hwsim", *path.relative_to(ROOT).with_suffix("").parts[:-1]))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in out if m.startswith("hwsim")}


def _system_packages() -> set[str]:
    """First-level packages that define a registered system."""
    out = set()
    for s in all_systems():
        fn = s.batch.block if s.batch is not None else s.analytical
        top = _top(getattr(fn, "__module__", "") or "")
        assert top is not None, s.name
        out.add(top)
    return out


def test_every_system_lives_in_its_own_package():
    tops = {}
    for s in all_systems():
        fn = s.batch.block if s.batch is not None else s.analytical
        tops.setdefault(_top(fn.__module__), []).append(s.name)
    assert all(len(v) == 1 for v in tops.values()), tops
    assert all((ROOT / t / "__init__.py").is_file() for t in tops), tops


def test_no_system_imports_another():
    systems = _system_packages()
    assert {"chiplet_cloud", "gpu_serving", "spmm", "systolic_fpga", "queueing"} <= systems
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        here = rel.parts[0] if len(rel.parts) > 1 else None
        for mod in _imports(path):
            other = _top(mod)
            if other in systems and other != here:
                what = "system" if here in systems else "shared layer"
                bad.append(f"{rel} ({what}) imports {mod}")
    assert not bad, "\n".join(bad)


def test_builtin_packages_exist():
    for mod in BUILTIN_PACKAGES:
        rel = Path(*mod.split(".")[1:])
        assert (ROOT / rel / "__init__.py").is_file() or (ROOT / f"{rel}.py").is_file(), mod


def test_no_pointer_outside_the_repository():
    """The repository stands alone: no tracked text file points at the project's outside folders
    (sources are cited as papers, datasheets or repositories with their commit instead)."""
    import subprocess

    repo = ROOT.parent
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True,
                           check=True).stdout.decode().split("\0")
    # the needles are split so that this file does not match itself
    needles = ["../" + "shared", "shared/" + "papers", "shared/" + "reference"]
    bad = []
    for name in filter(None, files):
        path = repo / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            bad += [f"{name}:{i}: {n}" for n in needles if n in line]
    assert not bad, "\n".join(bad)
