"""Where a study lives: an embedded journal file by default, a database URL for many machines.

- No ``--storage``: Optuna's ``JournalStorage`` on a ``JournalFileBackend`` at
  ``results/<study>/study.journal``. Appends are atomic under a file lock, so several processes on
  one machine (or on a shared NFS path) can work on one study without a server.
- ``postgresql://...`` (or ``mysql://``): Optuna's ``RDBStorage`` with heartbeats, so a trial of a
  worker that died is marked failed and retried (``RetryFailedTrialCallback``), and with
  ``pool_pre_ping`` so idle connections that the server dropped are replaced.
- ``sqlite:///file.db``: accepted, for one process only (SQLite locks badly across processes).
- any other value is a journal file path.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

from hwsim.errors import InputError

log = logging.getLogger(__name__)

#: seconds between a running trial's heartbeats on a database, and the grace before it is stale
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 40
#: how many times a trial of a dead worker is retried
MAX_RETRY = 3

_RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")


def default_storage_path(out_dir: Path) -> Path:
    return out_dir / "study.journal"


def is_rdb(url: str) -> bool:
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    return scheme in _RDB_SCHEMES


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


def open_storage(url: str, *, file: str | None = None) -> Any:
    """An Optuna storage for ``url`` (a database URL or a journal file path).

    An unreachable database or an unwritable path raises a one-line
    :class:`~hwsim.errors.InputError` naming the URL (password masked).
    """
    import optuna

    if is_rdb(url):
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if not url.startswith("sqlite"):
            engine_kwargs.update(pool_size=2, max_overflow=2, pool_recycle=1800)
        if url.startswith("postgresql"):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=GRACE_PERIOD_S,
                    heartbeat_stale_trial_callback=_retry_callback(),
                )
        except ImportError as exc:
            raise InputError(f"storage {mask_url(url)}: missing database driver ({exc}); "
                             "pip install 'hwsim[dist]'", file=file, key="--storage") from None
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"storage {mask_url(url)} is not reachable: {first}", file=file,
                             key="--storage") from None
    if "://" in url:
        raise InputError(
            f"storage {mask_url(url)}: unknown scheme; expected postgresql://, mysql://, "
            "sqlite:/// or a journal file path", file=file, key="--storage")
    path = Path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise InputError(f"storage {url} is not writable: {exc.strerror or exc}", file=file,
                         key="--storage") from None
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


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


def recover_dead_local_trials(study: Any) -> int:
    """Fail and re-queue RUNNING trials whose worker ran on this host and is gone.

    The journal storage has no heartbeats; a trial records ``worker = host:pid`` when it starts,
    so a restarted sweep on the same machine can tell a dead worker's trial from a live one.
    (On a database, heartbeats do this for every host.) Returns how many it re-queued.
    """
    from optuna.trial import TrialState

    host = socket.gethostname()
    retry = _retry_callback()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get("worker", "")
        h, _, pid = str(tag).rpartition(":")
        if h != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "reason", "worker died (process gone)")
        retry(study, study._storage.get_trial(t._trial_id))
        log.info("trial %d: its worker %s is gone; marked failed and queued again", t.number,
                 tag)
        n += 1
    return n
