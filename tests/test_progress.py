"""Long runs: a DES progress bar on stderr, -q/-v after the subcommand, Ctrl-C as one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import simpy

from hwsim.cli import main, run_guarded
from hwsim.des.progress import des_progress

ROOT = Path(__file__).resolve().parent.parent


def _events(n: int) -> None:
    env = simpy.Environment()

    def proc():
        for _ in range(n):
            yield env.timeout(1.0)

    env.process(proc())
    env.run()


def test_des_progress_draws_and_restores(capsys):
    step = simpy.Environment.step
    with des_progress("test des", enabled=True):
        _events(20_000)
    err = capsys.readouterr().err
    assert "test des" in err and "events" in err
    assert simpy.Environment.step is step
    with des_progress("off", enabled=False):
        assert simpy.Environment.step is step
        _events(10)
    assert capsys.readouterr().err == ""


def test_simulate_draws_no_bar_off_a_terminal(capsys):
    assert main(["simulate", "queue", "--fidelity", "des", "--set",
                 "queue.customers=2000", "--set", "queue.warmup_customers=100"]) == 0
    assert "events" not in capsys.readouterr().err  # stderr is not a terminal here


def test_quiet_and_verbose_after_the_subcommand(capsys):
    assert main(["list", "queue", "-q"]) == 0
    assert main(["simulate", "queue", "-v", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["system"] == "queue"
    assert main(["validate", "queue", "-q", "--case", "zzz-no-such"]) == 2


def test_interrupt_is_one_line_and_130(capsys):
    def stop() -> int:
        raise KeyboardInterrupt

    assert run_guarded(stop) == 130
    assert capsys.readouterr().err == "interrupted\n"


SLOW = """
system = "queue"
fidelity = "des"
trials = 5
seed = 3
specs = { queue = "mm1" }
set = ["queue.arrival_rate_per_s=0.5", "queue.customers=3000000"]
[space]
"queue.servers" = { low = 1, high = 4 }
[[objectives]]
metric = "mean_wait_s"
direction = "minimize"
"""


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_records_the_trial_as_interrupted(tmp_path):
    study = tmp_path / "slow.toml"
    study.write_text(SLOW)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from hwsim.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "-q", "sweep", str(study), "--out", str(out),
         "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    journal = out / "study.journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the first trial is evaluating
        if journal.is_file() and '"worker"' in journal.read_text(errors="replace"):
            break
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr == "interrupted\n", stderr
    import optuna

    from hwsim.explore import storage

    st = storage.open_storage(str(journal), read_only=True)
    trials = optuna.load_study(study_name="slow", storage=st).trials
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["reason"] == "interrupted"
