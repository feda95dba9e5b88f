""".ci/postgres.sh cleans up after a failed start: no folder left behind, no log it never wrote
read, whatever it started stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="hwsim-ci-test-", dir="/tmp"))
    d.chmod(0o755)  # the postgres user (when run as root) reaches the fake binaries
    return d


def _tool(folder: Path, name: str, body: str) -> None:
    p = folder / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)


@pytest.mark.parametrize("failing", ["initdb", "pg_ctl"])
def test_failed_start_removes_its_folder(failing):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    bindir, tmp = _dir(), _dir()
    tmp.chmod(0o1777)
    try:
        _tool(bindir, "initdb", "exit 1" if failing == "initdb" else 'mkdir -p "$2"; exit 0')
        marker = tmp / "stopped"  # writable by the postgres user too
        _tool(bindir, "pg_ctl", f'for a; do [ "$a" = stop ] && touch {marker}; done\n'
                                f'for a; do [ "$a" = start ] && exit 1; done\nexit 0')
        _tool(bindir, "postgres", "echo 'postgres (PostgreSQL) 0'")
        env = dict(os.environ, HWSIM_PG_BINDIR=str(bindir), TMPDIR=str(tmp))
        env.pop("HWSIM_TEST_POSTGRES_URL", None)
        proc = subprocess.run(["bash", "-c", "set -euo pipefail; source .ci/postgres.sh; "
                               "echo started"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode != 0 and "started" not in proc.stdout
        what = "initdb failed" if failing == "initdb" else "pg_ctl start failed"
        assert what in proc.stderr, proc.stderr
        assert "No such file" not in proc.stderr, proc.stderr  # no log read that was not there
        assert not list(tmp.glob("hwsim-pg.*")), "the temporary folder was left behind"
        if failing == "pg_ctl":
            assert marker.exists(), "the half-started server was not stopped"
            assert "no log was written" in proc.stderr
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
