"""Sweeps under faults: a disk that fills up mid-sweep, a journal that ends in a cut-off record,
a database server restarted under two workers, workers started separately on one study, study
names that try to leave the output folder, a study read from a read-only folder, and Optuna's
per-trial tracebacks. Each fault is injected for real: a size-limited tmpfs (mounted by the
test; skipped where mounting is not permitted) and a throw-away PostgreSQL server the test stops
and starts."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwsim.cli import main
from hwsim.explore import runner
from hwsim.explore.runner import counts
from hwsim.explore.storage import open_storage
from hwsim.system import SYSTEMS, Metric, Role, System, get_system, register_system

ROOT = Path(__file__).resolve().parents[1]

STUDY = """
name = "faults"
system = "queue"
fidelity = "{fidelity}"
trials = 50
seed = 11
sampler = {{ name = "tpe" }}
specs = {{ queue = "mm1" }}
set = ["queue.arrival_rate_per_s=2", "queue.customers=20000", "queue.warmup_customers=1000"]
[space]
"queue.servers" = {{ low = 1, high = 12 }}
"queue.mean_service_s" = {{ low = 0.05, high = 3.0 }}
"queue.service_distribution" = {{ choices = ["exponential", "erlang", "deterministic"] }}
[[objectives]]
metric = "mean_wait_s"
direction = "minimize"
[[objectives]]
metric = "utilization"
direction = "maximize"
"""


def write_study(tmp_path: Path, fidelity: str = "analytical") -> Path:
    p = tmp_path / "faults.toml"
    p.write_text(textwrap.dedent(STUDY.format(fidelity=fidelity)))
    return p


def env() -> dict[str, str]:
    """The environment of a worker process: this checkout first on the path."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def sweep_cmd(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hwsim.cli", "-q", "sweep", str(path), "--no-progress",
            "--no-report", *args]


def popen(cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
                            cwd=ROOT, **kw)  # type: ignore[call-overload]


def load(url: str, name: str = "faults") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False)
            if counts(t) and t.state not in (TrialState.RUNNING, TrialState.WAITING)]


def check_exact(study: optuna.Study, budget: int) -> None:
    trials = study.get_trials(deepcopy=False)
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len(finished(study)) == budget, [(t.number, t.state.name, t.user_attrs)
                                            for t in trials if not counts(t)]


def design(t: optuna.trial.FrozenTrial) -> str:
    return json.dumps(t.params, sort_keys=True)


def one_error_line(err: str) -> str:
    """The stderr of a command that failed cleanly: one ``error:`` line, no traceback."""
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def wait_for(cond: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if cond():  # type: ignore[operator]
                return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------
# a size-limited filesystem


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``, unmounted after; skips the test where mounting is not
    permitted (it needs root, as in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root and mount): "
                    + (r.stderr.strip() or f"mount exited {r.returncode}"))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(fs: Path) -> Path:
    """Fill a filesystem with one file until the disk is full."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\0" * 4096
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                break
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0"):
                pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_mid_sweep_loses_no_trial_and_the_study_resumes(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    with tmpfs(tmp_path / "fs", "384k") as fs:
        out = fs / "out"
        url = str(out / "study.journal")
        proc = popen(sweep_cmd(path, "--out", str(out), "--trials", "100000"))
        try:
            wait_for(lambda: len(finished(load(url))) >= 20, "20 trials")
            filler = fill(fs)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # the worker stops with one line that names the journal and the cause
        line = one_error_line(err.decode())
        assert "study.journal" in line and "No space left" in line, line
        assert proc.returncode == 3
        # every trial that finished is readable, and the file ends in a whole record
        assert (out / "study.journal").read_bytes().endswith(b"\n")
        before = {t.number: t for t in finished(load(url))}
        assert len(before) >= 20
        filler.unlink()
        budget = len(before) + 10
        r = subprocess.run(sweep_cmd(path, "--out", str(out), "--trials", str(budget)),
                           capture_output=True, text=True, timeout=120, env=env(), cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]
        study = load(url)
        after = {t.number: t for t in study.get_trials()}
        for n, t in before.items():
            assert after[n].state == t.state and after[n].values == t.values
        check_exact(study, budget)
        assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-figures"]) == 0


def test_a_cut_off_record_at_the_end_is_skipped_by_readers_and_repaired_by_writers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_study(tmp_path)
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--no-progress", "--no-report"]
    assert main([*args, "--trials", "12"]) == 0
    journal = out / "study.journal"
    before = {t.number: t for t in finished(load(str(journal)))}
    assert len(before) == 12
    # what a full disk or a machine that went down leaves behind
    cut = b'{"op_code":8,"worker_id":"0123-4567","trial_id":3,"user_attr":{"metr'
    with journal.open("ab") as f:
        f.write(cut)
    size = journal.stat().st_size
    caplog.clear()
    assert main(["report", str(out), "--no-figures"]) == 0
    assert journal.stat().st_size == size  # a reader writes nothing
    notes = [r.getMessage() for r in caplog.records if "cut-off record" in r.getMessage()]
    assert len(notes) == 1 and str(journal) in notes[0], notes
    caplog.clear()
    assert main([*args, "--trials", "20"]) == 0
    notes = [r.getMessage() for r in caplog.records if "cut-off record" in r.getMessage()]
    assert len(notes) == 1 and "removed" in notes[0], notes
    data = journal.read_bytes()
    assert cut not in data and data.endswith(b"\n")
    study = load(str(journal))
    for n, t in before.items():
        assert study.trials[n].state == t.state and study.trials[n].values == t.values
    check_exact(study, 20)


# --------------------------------------------------------------------------------------------
# PostgreSQL stopped and started under two workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A throw-away PostgreSQL cluster this module owns (it stops and starts it)."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.why = ""
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        initdb = Path(shutil.which("initdb") or (bins[-1] if bins else "initdb"))
        if not initdb.is_file():
            self.why = "no PostgreSQL server binaries (initdb) on this machine"
            return
        self.pg_ctl = str(initdb.with_name("pg_ctl"))
        self.dir = Path(tempfile.mkdtemp(prefix="hwsim-pg-faults-"))
        self.runas: list[str] = []
        if os.geteuid() == 0:
            if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
                self.why = "running as root and there is no postgres user for initdb"
                return
            shutil.chown(self.dir, "postgres")
            self.runas = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        r = subprocess.run([*self.runas, str(initdb), "-D", str(self.dir / "db"), "-U",
                            "postgres", "--auth=trust"], capture_output=True, text=True)
        if r.returncode:
            self.why = f"initdb failed: {r.stderr.strip()[-300:]}"
            return
        r = self.start()
        if r.returncode:
            self.why = f"pg_ctl start failed: {r.stderr.strip()[-300:]}"
            return
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.runas, self.pg_ctl, "-D", str(self.dir / "db"), "-l", str(self.dir / "log"),
             "-w", "-t", "60", "-o",
             f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off", "start"],
            capture_output=True, text=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([*self.runas, self.pg_ctl, "-D", str(self.dir / "db"), "-m", mode, "-w",
                        "stop"], capture_output=True, text=True)

    def remove(self) -> None:
        if hasattr(self, "dir"):
            self.stop("immediate")
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    try:
        if s.url is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI must run the PostgreSQL fault tests, but no server could "
                            f"start: {s.why}")
            pytest.skip(f"no PostgreSQL server could be started ({s.why})")
        yield s
    finally:
        s.remove()


def _unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"


@pytest.mark.postgres
def test_database_restart_under_two_workers_loses_and_doubles_nothing(
        tmp_path: Path, server: Server) -> None:
    assert server.url
    path = write_study(tmp_path)
    name = _unique("restart")
    budget = 50
    args = ["--storage", server.url, "--study-name", name, "--out", str(tmp_path / "o"),
            "--trials", str(budget)]  # the default --db-retry-s (30 s)
    procs = [popen(sweep_cmd(path, *args)) for _ in range(2)]
    try:
        wait_for(lambda: len(finished(load(server.url, name))) >= 10, "10 trials")
        server.stop("fast")  # every connection is cut, a transaction in flight is lost
        time.sleep(2.0)
        assert server.start().returncode == 0
        errs = [p.communicate(timeout=180)[1].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    assert any("unreachable" in e for e in errs), errs  # a worker said it waited
    study = load(server.url, name)
    check_exact(study, budget)
    # the trials in flight were carried on, not failed and run again
    assert not [t for t in study.get_trials() if t.state == TrialState.FAIL
                and not t.user_attrs.get("surplus")]
    assert len({t.user_attrs.get("worker") for t in finished(study)}) == 2


@pytest.mark.postgres
def test_a_worker_started_while_the_database_restarts_waits_for_it(server: Server) -> None:
    """A worker whose first connection falls in a restart retries for the start-up window
    (storage.STARTUP_RETRY_S) instead of calling the database unreachable; past the window
    it is the one-line error."""
    import threading

    from hwsim.errors import InputError
    from hwsim.explore import storage

    assert server.url
    server.stop("fast")
    got: dict[str, object] = {}

    def opener() -> None:
        try:
            got["storage"] = storage.open_storage(server.url)
        except InputError as exc:  # pragma: no cover - the failure this test catches
            got["error"] = exc

    t = threading.Thread(target=opener)
    try:
        t.start()
        time.sleep(1.5)  # the opener's first attempts find no server
    finally:
        assert server.start().returncode == 0
    t.join(timeout=60)
    assert "storage" in got, got
    server.stop("fast")
    try:
        t0 = time.monotonic()
        with pytest.raises(InputError, match="is not reachable"):
            storage.open_storage(server.url)
        assert storage.STARTUP_RETRY_S <= time.monotonic() - t0 < storage.STARTUP_RETRY_S + 10
    finally:
        assert server.start().returncode == 0


@pytest.mark.postgres
def test_a_database_that_stays_down_stops_the_worker_with_one_line(
        tmp_path: Path, server: Server) -> None:
    assert server.url
    path = write_study(tmp_path)
    name = _unique("down")
    proc = popen(sweep_cmd(path, "--storage", server.url, "--study-name", name, "--out",
                           str(tmp_path / "o"), "--trials", "100000", "--db-retry-s", "1.5"))
    try:
        wait_for(lambda: len(finished(load(server.url, name))) >= 5, "5 trials")
        server.stop("fast")
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert server.start().returncode == 0
    line = one_error_line(err.decode())
    assert "unreachable" in line and "--db-retry-s" in line, line
    assert proc.returncode == 3
    assert 1.5 <= waited < 30


# --------------------------------------------------------------------------------------------
# workers started separately


def test_separately_started_workers_draw_different_points_and_one_stays_reproducible(
        tmp_path: Path) -> None:
    path = write_study(tmp_path)
    from hwsim.explore.study import load_study

    spec = load_study(str(path))
    out = tmp_path / "o"
    opts = runner.SweepOptions(out_dir=out)

    def first_points(n: int) -> list[dict[str, object]]:
        shutil.rmtree(out, ignore_errors=True)
        workers = [runner.open_study(spec, opts) for _ in range(n)]
        asked = [w.ask() for w in workers]  # trials 0..n-1, one per worker, in lock-step
        return [{p.name: p.suggest(t) for p in spec.space} for t in asked]

    two = first_points(2)
    assert two[0] != two[1]  # not the same seed
    again = first_points(2)
    assert again == two  # each worker's seed comes from the study seed and its first trial
    # a worker alone on a fresh study draws what the study seed alone draws
    with warnings.catch_warnings():  # (the same arguments as hwsim's, deprecated ones too)
        warnings.simplefilter("ignore")
        plain = optuna.samplers.TPESampler(seed=spec.seed, multivariate=True,
                                           warn_independent_sampling=False)
    alone = optuna.create_study(directions=spec.directions, sampler=plain)
    t = alone.ask()
    assert {p.name: p.suggest(t) for p in spec.space} == two[0]
    assert isinstance(runner.make_sampler(spec), optuna.samplers.TPESampler)


def test_four_separately_started_workers_evaluate_no_design_twice(tmp_path: Path) -> None:
    # 90 designs, a DES of a few ms a trial so that the workers overlap: before, the workers
    # drew the same points in lock-step (14 repeats in 40 trials, 8 designs evaluated twice);
    # now they draw their own, and a design another worker is evaluating is waited for
    path = write_study(tmp_path, fidelity="des")
    path.write_text(path.read_text().replace("high = 12", "high = 6").replace(
        "low = 0.05, high = 3.0", "low = 0.5, high = 2.5, step = 0.5"))
    out = tmp_path / "o"
    budget = 40
    args = ["--out", str(out), "--trials", str(budget)]
    r = subprocess.run(sweep_cmd(path, *args, "--validate-only"), capture_output=True,
                       text=True, env=env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr
    procs = [popen(sweep_cmd(path, *args)) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-3000:]
    study = load(str(out / "study.journal"))
    check_exact(study, budget)
    done = sorted(finished(study), key=lambda t: t.number)[:40]
    evaluated = Counter(design(t) for t in done if t.user_attrs.get("reused_from") is None)
    assert max(evaluated.values()) == 1, [d for d, n in evaluated.items() if n > 1]
    for t in done:  # a trial that skipped its evaluation carries its source's values
        src = t.user_attrs.get("reused_from")
        if src is not None:
            assert design(study.trials[src]) == design(t) and study.trials[src].values == t.values
    assert len({t.user_attrs.get("worker") for t in done}) >= 2


def test_a_design_another_worker_is_evaluating_is_waited_for_and_reused(
        tmp_path: Path) -> None:
    path = write_study(tmp_path)
    from hwsim.explore.study import load_study

    spec = load_study(str(path))
    opts = runner.SweepOptions(out_dir=tmp_path / "o")
    a = runner.open_study(spec, opts)
    b = runner.open_study(spec, opts)
    point = {"queue.servers": 4, "queue.mean_service_s": 0.5,
             "queue.service_distribution": "erlang"}
    a.enqueue_trial(point)
    ta = a.ask()  # worker A draws the design and is evaluating it (trial 0)
    for p in spec.space:
        p.suggest(ta)
    a_trial = a.trials[0]
    assert a_trial.state == TrialState.RUNNING
    b.enqueue_trial(point)  # worker B's next trial (1) proposes the same design
    values = [0.25, 0.5]

    def finish_a() -> None:
        time.sleep(0.5)
        for k, v in {"metrics": {"mean_wait_s": 0.25, "utilization": 0.5},
                     "constraints": [], "run": {"seed": 1, "fidelity": "analytical",
                                                "eval_s": 0.5}}.items():
            ta.set_user_attr(k, v)
        a.tell(ta, values)

    thread = threading.Thread(target=finish_a)
    objective = runner.Objective(spec, budget=10)
    t0 = time.monotonic()
    thread.start()
    b.optimize(objective, n_trials=1)
    thread.join()
    assert time.monotonic() - t0 >= 0.4  # it waited for A's evaluation
    tb = b.trials[1]
    assert objective.evaluations == 0
    assert tb.user_attrs["reused_from"] == 0 and tb.values == values


# --------------------------------------------------------------------------------------------
# names are names


def _sweep_small(tmp_path: Path, *extra: str) -> Path:
    path = write_study(tmp_path)
    assert main(["sweep", str(path), "--no-progress", "--no-report", "--trials", "4",
                 *extra]) == 0
    return path


@pytest.mark.parametrize("name", ["../../escaped", "/ABS", ".hidden", "a/b", "..", ""])
def test_a_study_name_is_one_path_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str],
                                            name: str) -> None:
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    path = write_study(tmp_path)
    name = name.replace("/ABS", str(tmp_path / "abs"))
    assert main(["sweep", str(path), "--study-name", name, "--no-progress", "--trials",
                 "3"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--study-name" in line and repr(name) in line, line
    assert not (tmp_path / "a" / "escaped").exists() and not (tmp_path / "abs").exists()
    assert not (cwd / "results").exists()
    assert main(["report", "--storage", str(tmp_path / "x.journal"), "--study", name]) == 2
    assert "--study" in one_error_line(capsys.readouterr().err)


def _rename(url: str, old: str, new: str) -> None:
    """Rename a study in its storage (Optuna has no call for it)."""
    st = open_storage(url)
    src = optuna.load_study(study_name=old, storage=st)
    dst = optuna.create_study(study_name=new, storage=st, directions=src.directions)
    for k, v in src.user_attrs.items():
        dst.set_user_attr(k, v)
    dst.add_trials(src.get_trials())
    optuna.delete_study(study_name=old, storage=st)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_stored_study_name_never_becomes_a_path(tmp_path: Path, kind: str,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = (f"sqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite"
           else str(tmp_path / "shared.journal"))
    _sweep_small(tmp_path, "--storage", url, "--out", str(tmp_path / "first"))
    _rename(url, "faults", "../../../PWNED")
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    assert main(["report", "--storage", url, "--no-figures"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'../../../PWNED'" in line and "--out" in line, line
    assert not (tmp_path / "a" / "PWNED").exists() and not (cwd / "results").exists()
    # with an output folder of its own choosing the study is reported as usual
    assert main(["report", "--storage", url, "--out", str(tmp_path / "rep"),
                 "--no-figures"]) == 0
    assert (tmp_path / "rep" / "trials.csv").is_file()
    assert not (tmp_path / "a" / "PWNED").exists()


# --------------------------------------------------------------------------------------------
# reading needs no write access


def test_report_reads_a_study_in_a_read_only_folder(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write_study(tmp_path)
    with tmpfs(tmp_path / "fs", "4m") as fs:
        out = fs / "out"  # (a sweep in another process: this one holds no file open there)
        r = subprocess.run(sweep_cmd(path, "--out", str(out), "--trials", "6"),
                           capture_output=True, text=True, env=env(), cwd=ROOT)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True,
                           text=True)
        if r.returncode:
            pytest.skip(f"cannot remount the tmpfs read-only: {r.stderr.strip()}")
        capsys.readouterr()
        assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-figures"]) == 0
        assert len((tmp_path / "rep" / "trials.csv").read_text().splitlines()) == 7
        assert main(["report", "--storage", str(out / "study.journal"), "--out",
                     str(tmp_path / "rep2"), "--no-figures"]) == 0
        # writing the report into the read-only folder itself: one line naming it
        capsys.readouterr()
        assert main(["report", str(out), "--no-figures"]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert str(out) in line and "cannot write" in line and "--out" in line, line


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/new.db", "{tmp}/new.journal"])
def test_report_on_a_storage_that_does_not_exist_creates_nothing(
        tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = url.format(tmp=tmp_path)
    assert main(["report", "--storage", url, "--out", str(tmp_path / "rep")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "new." in line and "--storage" in line, line
    assert not list(tmp_path.iterdir())


def test_sqlite_report_writes_nothing_to_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _sweep_small(tmp_path, "--storage", url, "--out", str(tmp_path / "o"))
    db = tmp_path / "s.db"
    before = db.read_bytes()
    assert main(["report", "--storage", url, "--out", str(tmp_path / "rep"),
                 "--no-figures"]) == 0
    assert db.read_bytes() == before
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from trials").fetchone()[0] == 4


# --------------------------------------------------------------------------------------------
# Optuna's per-trial log lines


FAULTY = "explore-faults-broken"


@pytest.fixture()
def broken_system() -> Iterator[str]:
    def broken(inputs: object) -> dict[str, float]:
        raise RuntimeError("broken evaluator")

    get_system("queue")
    register_system(System(
        name=FAULTY, summary="the queue, whose evaluator always fails",
        roles=(Role("queue", "queue", "mm1"),),
        metrics=tuple(Metric(m, m.replace("_", " ")) for m in ("utilization", "mean_wait_s")),
        analytical=broken))
    try:
        yield FAULTY
    finally:
        SYSTEMS.remove(FAULTY)


def test_optuna_trial_failures_stay_out_of_a_workers_output(
        tmp_path: Path, broken_system: str) -> None:
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace('system = "queue"', f'system = "{broken_system}"'))
    from hwsim.explore.study import load_study

    spec = load_study(str(path))
    opts = runner.SweepOptions(out_dir=tmp_path / "o")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    optuna_logger = logging.getLogger("optuna")  # Optuna's own handler writes to stderr
    optuna_logger.addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as in a fresh process
    try:
        # a worker that opens its study itself, as every --n-jobs child does
        assert runner.run_worker(spec, opts, 3, progress=False) == 3
    finally:
        optuna_logger.removeHandler(handler)
    assert not [r.getMessage() for r in seen if r.levelno >= logging.WARNING]
    trials = load(str(tmp_path / "o" / "study.journal")).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert all("broken evaluator" in t.user_attrs["reason"] for t in trials)
