"""Sweeps as separate processes: a killed worker loses no finished trial, two workers share one
study (journal file, and a real PostgreSQL server) and the global budget holds exactly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwsim.explore.runner import counts
from hwsim.explore.storage import open_storage

STUDY = """
name = "workers"
system = "queue"
trials = 50
seed = 11
sampler = { name = "tpe" }
specs = { queue = "mm1" }
set = ["queue.arrival_rate_per_s=2"]
[space]
"queue.servers" = { low = 1, high = 12 }
"queue.mean_service_s" = { low = 0.05, high = 3.0 }
"queue.service_distribution" = { choices = ["exponential", "erlang", "deterministic"] }
[[objectives]]
metric = "mean_wait_s"
direction = "minimize"
[[objectives]]
metric = "utilization"
direction = "maximize"
"""


def write_study(tmp_path: Path) -> Path:
    p = tmp_path / "workers.toml"
    p.write_text(textwrap.dedent(STUDY))
    return p


def sweep_cmd(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hwsim.cli", "-q", "sweep", str(path), "--no-progress",
            "--no-report", *args]


def load(url: str) -> optuna.Study:
    return optuna.load_study(study_name="workers", storage=open_storage(url))


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False)
            if counts(t) and t.state not in (TrialState.RUNNING, TrialState.WAITING)]


def check_exact(study: optuna.Study, budget: int) -> None:
    trials = study.get_trials(deepcopy=False)
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    done = finished(study)
    assert len(done) == budget, [(t.number, t.state.name, t.user_attrs) for t in trials
                                 if not counts(t)]


# --------------------------------------------------------------------------------------------


def test_killed_sweep_loses_no_finished_trial(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    out = tmp_path / "out"
    url = str(out / "study.journal")
    proc = subprocess.Popen(sweep_cmd(path, "--out", str(out), "--trials", "100000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if (out / "study.journal").is_file() and (out / "study.journal").stat().st_size:
                try:
                    if len(finished(load(url))) >= 25:
                        break
                except KeyError:
                    continue
        else:
            pytest.fail("the sweep did not start: " + proc.stderr.read().decode()[-2000:]
                        if proc.poll() is not None else "the sweep is too slow")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t for t in finished(load(url))}
    running = [t.number for t in load(url).get_trials(states=(TrialState.RUNNING,))]
    budget = len(before) + 15
    subprocess.run(sweep_cmd(path, "--out", str(out), "--trials", str(budget)), check=True,
                   timeout=120)
    study = load(url)
    after = {t.number: t for t in study.get_trials()}
    for n, t in before.items():  # every finished trial is still there, unchanged
        assert after[n].state == t.state and after[n].params == t.params
        assert after[n].values == t.values
    check_exact(study, budget)
    for n in running:  # the trial cut short is failed, and queued again with its parameters
        assert after[n].state == TrialState.FAIL and "worker died" in after[n].user_attrs[
            "reason"]
        retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == n]
        assert len(retries) == 1  # the parameters it had drawn, if any, are kept
        assert all(retries[0].params[k] == v for k, v in after[n].params.items())
        assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)


def run_two_workers(path: Path, budget: int, *extra: str) -> None:
    procs = [subprocess.Popen(sweep_cmd(path, "--trials", str(budget), *extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-3000:]


def test_two_workers_on_journal_storage(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    out = tmp_path / "out"
    budget = 120
    run_two_workers(path, budget, "--out", str(out))
    study = load(str(out / "study.journal"))
    check_exact(study, budget)
    workers = {t.user_attrs.get("worker") for t in finished(study)}
    assert len(workers) == 2, workers  # both processes did work


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_postgres() -> tuple[str | None, str, list[str]]:
    """Start a throw-away cluster like .ci/postgres.sh; returns (url, why not, stop command)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = Path(shutil.which("initdb") or (bins[-1] if bins else "initdb"))
    if not initdb.is_file():
        return None, "no PostgreSQL server binaries (initdb) on this machine", []
    pg_ctl = initdb.with_name("pg_ctl")
    data = Path(tempfile.mkdtemp(prefix="hwsim-pg-test-"))
    runas: list[str] = []
    if os.geteuid() == 0:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            return None, "running as root and there is no postgres user for initdb", []
        shutil.chown(data, "postgres")
        runas = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    r = subprocess.run([*runas, str(initdb), "-D", str(data / "db"), "-U", "postgres",
                        "--auth=trust"], capture_output=True, text=True)
    if r.returncode:
        shutil.rmtree(data, ignore_errors=True)
        return None, f"initdb failed: {r.stderr.strip()[-300:]}", []
    r = subprocess.run([*runas, str(pg_ctl), "-D", str(data / "db"), "-l",
                        str(data / "log"), "-w", "-t", "60", "-o",
                        f"-h 127.0.0.1 -p {port} -k {data} -c fsync=off", "start"],
                       capture_output=True, text=True)
    if r.returncode:
        shutil.rmtree(data, ignore_errors=True)
        return None, f"pg_ctl start failed: {r.stderr.strip()[-300:]}", []
    stop = [*runas, str(pg_ctl), "-D", str(data / "db"), "-m", "immediate", "stop"]
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", "", stop


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("HWSIM_TEST_POSTGRES_URL")
    stop: list[str] = []
    if not url:
        url, why, stop = _start_postgres()
        if url is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI must run the PostgreSQL test, but no server could start: {why}")
            pytest.skip(f"no PostgreSQL server could be started ({why}); "
                        "set HWSIM_TEST_POSTGRES_URL or run .ci/run")
    try:
        yield url
    finally:
        if stop:
            subprocess.run(stop, capture_output=True)
            shutil.rmtree(Path(stop[stop.index("-D") + 1]).parent, ignore_errors=True)


@pytest.mark.postgres
def test_two_workers_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    path = write_study(tmp_path)
    name = f"workers-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    budget = 60
    run_two_workers(path, budget, "--storage", postgres_url, "--study-name", name,
                    "--out", str(tmp_path / "out"))
    study = optuna.load_study(study_name=name, storage=open_storage(postgres_url))
    check_exact(study, budget)
    workers = {t.user_attrs.get("worker") for t in finished(study)}
    assert len(workers) == 2, workers
    # the report reads the study back from the server
    from hwsim.cli import main

    assert main(["report", "--storage", postgres_url, "--study", name, "--out",
                 str(tmp_path / "rep"), "--no-figures"]) == 0
    assert (tmp_path / "rep" / "trials.parquet").is_file()


@pytest.mark.postgres
def test_dead_postgresql_worker_trial_is_retried(tmp_path: Path, postgres_url: str) -> None:
    path = write_study(tmp_path)
    name = f"dead-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    env = dict(os.environ, HWSIM_HEARTBEAT_S="1", HWSIM_GRACE_S="2")
    args = ["--storage", postgres_url, "--study-name", name, "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(sweep_cmd(path, *args, "--trials", "100000"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def study() -> optuna.Study:
        return optuna.load_study(study_name=name, storage=open_storage(postgres_url))

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                if len(finished(study())) >= 10:
                    break
            except KeyError:
                continue
        else:
            pytest.fail("the first worker did not get going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t for t in finished(study())}
    running = [t.number for t in study().get_trials(states=(TrialState.RUNNING,))]
    budget = len(before) + 8
    subprocess.run(sweep_cmd(path, *args, "--trials", str(budget)), env=env, check=True,
                   timeout=120)
    s = study()
    after = {t.number: t for t in s.get_trials()}
    for n, t in before.items():
        assert after[n].state == t.state and after[n].values == t.values
    check_exact(s, budget)
    for n in running:  # the heartbeat went stale: failed, and queued again once
        assert after[n].state == TrialState.FAIL
        assert len([t for t in after.values() if t.system_attrs.get("failed_trial") == n]) == 1
