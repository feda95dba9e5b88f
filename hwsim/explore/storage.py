"""Where a study lives: an embedded journal file by default, a database URL for many machines.

- No ``--storage``: Optuna's ``JournalStorage`` on a ``JournalFileBackend`` at
  ``results/<study>/study.journal``. Appends are atomic under a file lock, so several processes on
  one machine (or on a shared NFS path) can work on one study without a server. The file is synced
  to disk when a trial finishes, not after each of its records
  (:func:`hwsim.explore.optuna_adapter.journal_backend`).
- ``postgresql://...`` (or ``mysql://``): Optuna's ``RDBStorage`` with heartbeats, so a trial of a
  worker that died is marked failed and retried (``RetryFailedTrialCallback``), and with
  ``pool_pre_ping`` so idle connections that the server dropped are replaced; every call is
  retried while the database is unreachable, for ``--db-retry-s`` (:data:`DB_RETRY_S`), then
  the worker stops with :class:`StorageUnavailable`.
- A journal write that fails (a full disk) is taken back to the last whole record and stops the
  worker with :class:`StorageUnavailable`; a cut-off record at the end is removed before the
  next append.
- ``sqlite:///file.db``: accepted, for one process only (SQLite locks badly across processes).
- any other value is a journal file path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from hwsim.errors import InputError, ToolError
from hwsim.explore import optuna_adapter

log = logging.getLogger(__name__)

#: seconds between a running trial's heartbeats on a database, and the grace before it is stale
#: (``HWSIM_HEARTBEAT_S`` and ``HWSIM_GRACE_S`` override them, e.g. for trials of many minutes)
HEARTBEAT_INTERVAL_S = int(os.environ.get("HWSIM_HEARTBEAT_S", "10"))
GRACE_PERIOD_S = int(os.environ.get("HWSIM_GRACE_S", str(4 * HEARTBEAT_INTERVAL_S)))
#: how many times a trial of a dead worker is retried
MAX_RETRY = 3
#: how long a database call is retried while the database is unreachable (a restart, a
#: fail-over) before the worker stops (``--db-retry-s``, ``HWSIM_DB_RETRY_S``). The default
#: stays below the grace period less a heartbeat, so that no running trial goes stale meanwhile
DB_RETRY_S = float(os.environ.get("HWSIM_DB_RETRY_S",
                                  str(max(1, GRACE_PERIOD_S - HEARTBEAT_INTERVAL_S))))
#: seconds a worker keeps trying a database that is unreachable when it starts (a restart in
#: progress) before the one-line error; a wrong URL costs this long
STARTUP_RETRY_S = 5.0

_DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")


class StorageUnavailable(ToolError):
    """The storage cannot be written or reached (a full disk, a database down for longer than
    the retry allows): the worker stops with this one line (exit status 3); nothing finished is
    lost, and the same command resumes."""


def storage_failure(exc: BaseException) -> StorageUnavailable | None:
    """The :class:`StorageUnavailable` behind ``exc``, if any.

    Optuna's trial loop turns a storage error raised while it records a trial into an error of
    its own (``AssertionError``, ``UnboundLocalError``), with the original as its context.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, StorageUnavailable):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a study name, or None when it is one.

    A study name is also a folder name (``results/<study>/``), so it must be one path
    component: not empty, no ``/`` or ``\\``, not starting with ``.`` (so neither ``.`` nor
    ``..``), no control characters, at most 255 bytes.
    """
    if not isinstance(name, str) or not name:
        return "expected a study name"
    if "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        return "a study name is one path component: no '/' or '\\'"
    if name.startswith("."):
        return "a study name does not start with '.'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a study name has no control characters"
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        return "a study name is at most 255 bytes"
    return None


def check_name(name: object, *, key: str, file: str | None = None) -> str:
    """``name`` when it is a study name (:func:`name_problem`), else a one-line InputError
    naming ``key`` and the value."""
    why = name_problem(name)
    if why is not None:
        raise InputError(why, file=file, key=key, value=name, has_value=True)
    return str(name)


def default_storage_path(out_dir: Path) -> Path:
    return out_dir / "study.journal"


def is_database_url(url: str) -> bool:
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    return scheme in _DATABASE_SCHEMES


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ``***``."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        scheme, _, rest = url.partition("://")
        creds, at, host = rest.rpartition("@")
        if at and ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}{at}{host}"


def open_storage(url: str, *, file: str | None = None, read_only: bool = False,
                 retry_s: float | None = None) -> Any:
    """An Optuna storage for ``url`` (a database URL or a journal file path).

    An unreachable database or an unwritable path raises a one-line
    :class:`~hwsim.errors.InputError` naming the URL (password masked). With ``read_only``
    (``hwsim report``) nothing is created or written: the journal file, or the database with
    Optuna's tables, must already exist, and the journal's folder may be read-only. Once open, a
    database call is retried for ``retry_s`` seconds (default :data:`DB_RETRY_S`) while the
    database cannot be reached (:func:`hwsim.explore.optuna_adapter.rdb_storage`).
    """
    import optuna

    if is_database_url(url):
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if not url.startswith("sqlite"):
            engine_kwargs.update(pool_size=2, max_overflow=2, pool_recycle=1800)
        if url.startswith("postgresql"):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        if read_only:  # Optuna would create the database (SQLite) and its tables
            _check_database_exists(url, engine_kwargs, file)
        # Workers that start together on a fresh database race to create Optuna's tables; the
        # loser sees a duplicate-key error and simply tries again (the tables then exist). A
        # worker that starts while the database restarts retries for a short window
        # (:data:`STARTUP_RETRY_S`, at most ``retry_s``) before calling it unreachable.
        window = min(STARTUP_RETRY_S, DB_RETRY_S if retry_s is None else retry_s)
        t_start = time.monotonic()
        attempt = 0
        while True:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna_adapter.rdb_storage(
                        url,
                        retry_s=DB_RETRY_S if retry_s is None else retry_s,
                        label=mask_url(url),
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=HEARTBEAT_INTERVAL_S,
                        grace_period=GRACE_PERIOD_S,
                        heartbeat_stale_trial_callback=_retry_callback(),
                    )
            except ImportError as exc:
                raise InputError(f"storage {mask_url(url)}: missing database driver ({exc}); "
                                 "pip install 'hwsim[dist]'", file=file,
                                 key="--storage") from None
            except Exception as exc:  # sqlalchemy's errors: one line for the user
                from sqlalchemy import exc as sa_exc

                text = str(exc).strip()
                first = text.splitlines()[0] if text else type(exc).__name__
                down = isinstance(exc, sa_exc.OperationalError)
                waited = time.monotonic() - t_start
                if (down and waited >= window) or (not down and attempt >= 5):
                    what = "is not reachable" if down else "cannot be used"
                    raise InputError(f"storage {mask_url(url)} {what}: {first}", file=file,
                                     key="--storage") from None
                log.debug("storage set-up: %s (%s); retrying",
                          "unreachable" if down else "raced another worker", first)
                time.sleep(min(0.2 * (attempt + 1) + random.random() * 0.3,
                               max(window - waited, 0.05)) if down else
                           0.2 * (attempt + 1) + random.random() * 0.3)
                attempt += 1
    if "://" in url:
        raise InputError(
            f"storage {mask_url(url)}: unknown scheme; expected postgresql://, mysql://, "
            "sqlite:/// or a journal file path", file=file, key="--storage")
    path = Path(url)
    if read_only:
        if not path.is_file():
            raise InputError(f"storage {url}: no such journal file", file=file,
                             key="--storage")
        try:
            _note_partial_tail(path)
        except OSError as exc:
            raise InputError(f"storage {url} is not readable: {exc.strerror or exc}",
                             file=file, key="--storage") from None
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab"):
                pass
        except OSError as exc:
            raise InputError(f"storage {url} is not writable: {exc.strerror or exc}",
                             file=file, key="--storage") from None
    from optuna.storages.journal import JournalStorage

    return JournalStorage(optuna_adapter.journal_backend(str(path), FlockLock(str(path))))


def _check_database_exists(url: str, engine_kwargs: dict[str, Any], file: str | None) -> None:
    """Refuse (one line) a database that does not exist or holds no Optuna tables, creating
    nothing: a report only reads."""
    import sqlalchemy
    from sqlalchemy import exc as sa_exc

    if url.startswith("sqlite"):
        db = sqlalchemy.engine.make_url(url).database
        if not db or db == ":memory:" or not Path(db).is_file():
            raise InputError(f"storage {mask_url(url)}: no such database file", file=file,
                             key="--storage")
    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs)
    except ImportError as exc:
        raise InputError(f"storage {mask_url(url)}: missing database driver ({exc}); "
                         "pip install 'hwsim[dist]'", file=file, key="--storage") from None
    try:
        has_tables = sqlalchemy.inspect(engine).has_table("studies")
    except sa_exc.SQLAlchemyError as exc:
        text = str(exc).strip()
        raise InputError(f"storage {mask_url(url)} is not reachable: "
                         f"{text.splitlines()[0] if text else type(exc).__name__}", file=file,
                         key="--storage") from None
    finally:
        engine.dispose()
    if not has_tables:
        raise InputError(f"storage {mask_url(url)} holds no studies (no Optuna tables)",
                         file=file, key="--storage")


def _note_partial_tail(path: Path) -> None:
    """Say (one line) when a journal opened for reading ends in a cut-off record, which the
    reader skips and the next writer removes. A writer holds the journal's lock while it
    appends, so the check takes it too (shared) where it can."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    lock = -1
    try:
        with contextlib.suppress(OSError):
            lock = os.open(str(path) + ".flock", os.O_RDONLY)
            fcntl.flock(lock, fcntl.LOCK_SH)
        _, cut = optuna_adapter.partial_tail(fd)
    finally:
        if lock >= 0:
            os.close(lock)
        os.close(fd)
    if cut:
        log.warning("%s ends in a cut-off record (%d bytes, left by a full disk or a crash); "
                    "it is skipped, and the next sweep on this study removes it", path, cut)


class FlockLock:
    """A journal-file lock on ``fcntl.flock``: the kernel drops it when its process dies.

    Optuna's own file locks (symlink, ``O_EXCL``) survive a killed process and are only broken
    after a grace period, which would stall a restarted sweep; an flock cannot go stale.
    """

    def __init__(self, filepath: str) -> None:
        self._path = filepath + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _retry_callback() -> Any:
    """Optuna's callback that queues a stale trial again (up to MAX_RETRY times)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def worker_tag() -> str:
    """This process, as ``host:pid`` (recorded in each trial, to find trials of dead workers)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_alive(tag: str) -> bool:
    """Whether the worker ``host:pid`` may be alive (False only for a gone process on this
    host; a worker elsewhere is taken to be alive)."""
    h, _, pid = tag.rpartition(":")
    if h != socket.gethostname() or not pid.isdigit():
        return True
    return int(pid) == os.getpid() or _pid_alive(int(pid))


_REGISTERED: dict[str, int] = {}


def _workers_dir(journal: str) -> Path:
    return Path(journal + ".workers")


def register_worker(journal: str) -> None:
    """Announce this process as a live worker of a journal study, until it exits.

    It holds an flock on ``<journal>.workers/<pid>@<host>.lock`` for its whole life; the kernel
    releases it when the process dies, however it dies. Every worker registers before it creates
    a trial, so a worker that finds no other live worker knows that every RUNNING trial is stale.
    """
    import fcntl

    if journal in _REGISTERED:
        return
    d = _workers_dir(journal)
    host = socket.gethostname()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"{os.getpid()}@{host}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"storage {journal} is not writable: {exc.strerror or exc}",
                         key="--storage") from None
    fcntl.flock(fd, fcntl.LOCK_EX)
    _REGISTERED[journal] = fd


def _other_workers(journal: str) -> tuple[bool, set[str]]:
    """(whether another live worker is registered, tags host:pid of dead registered ones)."""
    import fcntl

    alive, dead = False, set()
    me = f"{os.getpid()}@{socket.gethostname()}.lock"
    for f in sorted(_workers_dir(journal).glob("*.lock")):
        if f.name == me:
            continue
        try:
            fd = os.open(f, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            alive = True
        else:
            pid, _, host = f.stem.partition("@")
            dead.add(f"{host}:{pid}")
            with contextlib.suppress(OSError):
                f.unlink()
        finally:
            os.close(fd)
    return alive, dead


def recover_dead_local_trials(study: Any, journal: str) -> int:
    """Fail and re-queue the RUNNING trials of dead workers on a journal study.

    The journal storage has no heartbeats. Instead every worker registers (:func:`register_worker`)
    and tags each trial with ``worker = host:pid``. A RUNNING trial is stale when no other worker
    is alive, or when its worker's registration lock is free or its process is gone. Stale trials
    are marked FAIL (reason ``worker died``) and queued again with the same parameters by
    Optuna's retry callback. (On a database, heartbeats do this.) Returns how many it re-queued.
    """
    from optuna.trial import TrialState

    host = socket.gethostname()
    others_alive, dead = _other_workers(journal)
    retry = _retry_callback()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = str(t.user_attrs.get("worker", ""))
        h, _, pid = tag.rpartition(":")
        stale = (not others_alive) or tag in dead or (
            h == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)))
        if not stale:
            continue
        try:
            failed = optuna_adapter.fail_trial(study, t, "worker died")
        except Exception:  # another worker got there first
            continue
        retry(study, failed)
        log.info("trial %d: its worker %s is gone; marked failed and queued again", t.number,
                 tag or "(unknown)")
        n += 1
    return n


def fail_dead_db_trials(study: Any) -> int:
    """Fail and queue again the database trials of dead workers; returns how many were found.

    Optuna's ``fail_stale_trials`` only sees trials whose heartbeat went stale. A worker killed
    between creating a trial and recording its first heartbeat leaves a RUNNING trial with no
    heartbeat at all, which it never fails; such a trial is dead once it is older than the
    grace period (by its start time), and is failed and retried the same way.
    """
    import copy
    import datetime

    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    backend = optuna_adapter.rdb_backend(study)
    if backend is None:
        return 0
    storage = optuna_adapter.storage_of(study)
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_PERIOD_S)
    orphans = optuna_adapter.rdb_running_without_heartbeat(study, cutoff)
    callback = backend.get_heartbeat_stale_trial_callback()
    failed = 0
    for trial_id in orphans:
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        failed += 1
        log.warning("trial id %d never recorded a heartbeat (its worker died); failed and "
                    "queued again", trial_id)
        if callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial_id)))
    return failed
