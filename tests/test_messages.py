"""Messages that used to mislead (issue: a user's first hour, item 7), each as it reads now."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hwsim.cli import main
from hwsim.errors import InputError, suggest
from hwsim.explore.cli import plural, sweep_line
from hwsim.explore.runner import SweepResult
from hwsim.explore.study import load_study

ROOT = Path(__file__).resolve().parent.parent

CC = """
system = "chiplet-cloud"
trials = 4
seed = 1
specs = { llm = "llama3-70b", server = "cc-server-v1", tco = "barroso-v1", mapping = "auto" }
set = ["mapping.context_tokens=8192", "mapping.micro_batch=0"]
[space]
chip = { specs = ["cc-7nm-v1", "cc-7nm-ccmem-60sparse"] }
"chip.die_area_mm2" = { low = 40, high = 800, step = 40 }
"mapping.batch" = { choices = [1, 4, 16] }
[[objectives]]
metric = "tco_usd_per_1k_tokens"
direction = "minimize"
"""

QUEUE = """
system = "queue"
trials = 6
seed = 3
specs = { queue = "mm1" }
set = ["queue.arrival_rate_per_s=4"]
[space]
"queue.servers" = { low = 1, high = 8 }
"queue.mean_service_s" = { low = 0.05, high = 1.0, step = 0.05 }
[[objectives]]
metric = "mean_wait_s"
direction = "minimize"
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_bad_space_key_names_its_own_dimension(tmp_path):
    path = write(tmp_path, CC.replace("chip.die_area_mm2", "chip.die_area_mm3"))
    with pytest.raises(InputError) as ei:
        load_study(path)
    msg = str(ei.value)
    assert "space.chip.die_area_mm3" in msg and "did you mean 'chip.die_area_mm2'" in msg
    assert "cc-7nm-v1" not in msg


def test_metric_suggestion_shares_words(tmp_path):
    path = write(tmp_path, CC.replace('metric = "tco_usd_per_1k_tokens"',
                                      'metric = "tco_per_token"'))
    with pytest.raises(InputError) as ei:
        load_study(path)
    msg = str(ei.value)
    assert "did you mean 'tco_usd_per_1k_tokens'" in msg and "comm_ms_per_token" not in msg
    assert suggest("tco_per_token", ["comm_ms_per_token", "tco_usd_per_1k_tokens"])[0] \
        == "tco_usd_per_1k_tokens"


def test_plural():
    assert plural(1, "design") == "1 design" and plural(2, "design") == "2 designs"
    assert plural(0, "trial") == "0 trials"


def test_budget_already_met_is_said_so():
    res = SweepResult(study_name="q", storage="s", out_dir=Path("."), counted=60, ran=0,
                      seconds=0.0, budget=30, before=60)
    line = sweep_line(res, "s")
    assert "60 of 30" not in line and "60 trials finished" in line
    assert "budget of 30" in line and "--trials above 60" in line


def test_parallel_workers_are_all_counted(tmp_path, capsys):
    path = write(tmp_path, QUEUE)
    rc = main(["-q", "sweep", str(path), "--out", str(tmp_path / "out"), "--n-jobs", "2",
               "--no-report", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "6 of 6 trials finished (6 added while this command ran)" in out, out


def test_exhaustive_on_a_continuous_space_names_the_dimension(tmp_path, capsys):
    path = write(tmp_path, QUEUE.replace("{ low = 0.05, high = 1.0, step = 0.05 }",
                                         "{ low = 0.05, high = 1.0 }"))
    rc = main(["sweep", str(path), "--exhaustive", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "inf" not in err and "'queue.mean_service_s'" in err, err
    assert "continuous" in err


def test_report_on_a_missing_folder_names_it_once(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(missing)) == 1 and "no such folder" in err, err


def test_report_keeps_the_sweeps_command(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, QUEUE)
    out = tmp_path / "out"
    argv = ["-q", "sweep", str(path), "--out", str(out), "--no-figures", "--no-progress"]
    monkeypatch.setattr(sys, "argv", ["hwsim", *argv])
    assert main(argv) == 0
    assert "recommended (lowest mean wait): trial" in capsys.readouterr().out
    argv2 = ["-q", "report", str(out), "--no-figures"]
    monkeypatch.setattr(sys, "argv", ["hwsim", *argv2])
    assert main(argv2) == 0
    capsys.readouterr()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"][:3] == ["hwsim", "-q", "sweep"]
    assert meta["report_command"][:3] == ["hwsim", "-q", "report"]


def test_search_script_unknown_llm_is_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "explore" / "chiplet_cloud_search.py"),
                           "nosuch"], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "'nosuch'" in proc.stderr
