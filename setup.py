"""Packaging hook: ship the top-level ``models/`` spec library as ``hwsim/models`` package data.

The repository keeps ``models/`` at its root (users read and edit it there; a source checkout
or an editable install reads it in place); a wheel carries a copy inside the package, which
``hwsim.specs.bundled_models_dir`` finds with ``importlib.resources``. Everything else about
the package is declared in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithModels(build_py):
    """``build_py`` that also copies ``models/**/*.{toml,csv}`` into ``hwsim/models``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads ROOT/models in place
        src = ROOT / "models"
        dst = Path(self.build_lib) / "hwsim" / "models"
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.suffix in (".toml", ".csv"):
                target = dst / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)


setup(cmdclass={"build_py": BuildWithModels})
