"""The spec search path: --models, $HWSIM_MODELS, the bundled specs; shadowing; a wheel install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from hwsim import specs
from hwsim.cli import main

ROOT = Path(__file__).resolve().parent.parent

MM1_FAST = """kind = "queue"
version = 1
name = "mm1"
arrival_rate_per_s = 0.25
mean_service_s = 1.0
"""


def _user_models(tmp_path: Path) -> Path:
    d = tmp_path / "mymodels"
    (d / "queue").mkdir(parents=True)
    (d / "queue" / "mm1.toml").write_text(MM1_FAST)
    (d / "queue" / "mine.toml").write_text(MM1_FAST.replace('"mm1"', '"mine"'))
    return d


def test_env_path_shadows_bundled(tmp_path, monkeypatch):
    d = _user_models(tmp_path)
    monkeypatch.setenv("HWSIM_MODELS", os.pathsep.join([str(d), str(tmp_path / "nowhere")]))
    dirs = specs.model_dirs()
    assert [x.origin for x in dirs] == ["HWSIM_MODELS", "HWSIM_MODELS", "bundled"]
    assert specs.find_spec_file("queue", "mm1") == d / "queue" / "mm1.toml"
    spec = specs.load_spec(specs.find_spec_file("queue", "mm1"), kind="queue")
    assert spec.arrival_rate_per_s == 0.25
    files = dict((p.stem, o) for p, o in specs.spec_files_with_origin("queue"))
    assert files["mm1"] == "HWSIM_MODELS" and files["mine"] == "HWSIM_MODELS"
    assert files["mm1-rho9"] == "bundled"  # not shadowed: still found


def test_other_kind_in_a_shared_folder_does_not_shadow(tmp_path, monkeypatch):
    d = tmp_path / "m"
    (d / "calibration").mkdir(parents=True)
    name = "roofline-uncalibrated"
    (d / "calibration" / f"{name}.toml").write_text(
        f'kind = "spmm-calibration"\nversion = 1\nname = "{name}"\n')
    monkeypatch.setenv("HWSIM_MODELS", str(d))
    found = specs.find_spec_file("gpu-calibration", name)
    assert found.parent.parent == specs.bundled_models_dir()


def test_models_option_lists_search_order(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HWSIM_MODELS", raising=False)
    d = _user_models(tmp_path)
    assert main(["list", "queue", "--models", str(d)]) == 0
    out = capsys.readouterr().out
    assert "1. --models" in out and "2. bundled" in out
    assert "mine" in out and "queue/mm1.toml" in out
    line = next(ln for ln in out.splitlines() if ln.split()[:2] == ["queue", "mm1"])
    assert "--models" in line
    assert main(["simulate", "queue", "--json", "--models", str(d)]) == 0
    assert '"utilization": 0.25' in capsys.readouterr().out
    # nothing leaks into the next command of the same process
    assert "HWSIM_MODELS" not in os.environ and specs.model_dirs()[0].origin == "bundled"
    assert main(["--models", str(tmp_path / "nope"), "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--models" in err and "nope" in err


def _wheel_builder() -> list[str]:
    """pip wheel without build isolation when setuptools and wheel are here, else isolated."""
    try:
        import setuptools
        import wheel  # noqa: F401
    except ImportError:
        return []
    major = int(setuptools.__version__.split(".")[0])
    return ["--no-build-isolation"] if major >= 64 else []


@pytest.mark.slow
def test_wheel_installs_with_its_specs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "hwsim", src / "hwsim", ignore=ignore)
    shutil.copytree(ROOT / "models", src / "models", ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HWSIM_MODELS")}
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
         *_wheel_builder(), "-w", str(wheels), str(src)],
        capture_output=True, text=True, env=env, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (whl,) = wheels.glob("hwsim-*.whl")
    venv_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(venv_dir)
    py = venv_dir / "bin" / "python"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
         "--no-index", "--disable-pip-version-check", str(whl)],
        capture_output=True, text=True, env=env, timeout=300)
    if inst.returncode != 0 and "no such option: --python" in inst.stderr:
        pytest.skip("pip older than 22.3 (no --python)")
    assert inst.returncode == 0, inst.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(py), "-c", "import hwsim; print(hwsim.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, env=env, check=True).stdout
    assert str(venv_dir) in where  # the wheel's hwsim, not an editable install's
    hwsim_cmd = venv_dir / "bin" / "hwsim"
    out = subprocess.run([str(hwsim_cmd), "list"], cwd=elsewhere, capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "bundled" in out.stdout and "mm1-rho9" in out.stdout
    assert "site-packages" in out.stdout and "(none)" not in out.stdout
    sim = subprocess.run([str(hwsim_cmd), "simulate", "queue"], cwd=elsewhere,
                         capture_output=True, text=True, env=env, timeout=120)
    assert sim.returncode == 0, sim.stderr
    assert "utilization" in sim.stdout
