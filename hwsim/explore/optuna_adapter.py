"""Every use of Optuna's private names, in one place.

hwsim needs a few things Optuna has no public API for: the storage behind a study (to fail and
re-queue the trials of dead workers), the per-trial snapshot of the study that the samplers
share (so that the budget check reads what the sampler read, without another pass over the
storage), the hypervolume routine, the RDB schema (to find trials that never sent a heartbeat)
and the journal's record format (to sync the file to disk only when a trial finishes). They all
live here, so that an Optuna upgrade is checked against this file alone; ``pyproject.toml`` pins
Optuna to the minor release CI tests.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np


def storage_of(study: Any) -> Any:
    """The storage an Optuna study reads and writes (``Study`` keeps it private)."""
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a (frozen) trial, which storage methods take."""
    return trial._trial_id


def get_trial(study: Any, tid: int) -> Any:
    """A trial of ``study`` by storage id, as the storage holds it now."""
    return storage_of(study).get_trial(tid)


def trial_snapshot(study: Any) -> list[Any]:
    """The study's trials as the sampler saw them for the current trial (ordered by number).

    Optuna fetches this list once per trial, after the trial exists, and every sampler reads it;
    reading it again costs nothing. Outside a trial it is fetched from the storage.
    """
    try:
        return study._get_trials(deepcopy=False, use_cache=True)
    except (AttributeError, TypeError):  # another Study-like object: the public call
        return study.get_trials(deepcopy=False)


def fresh_trials(study: Any, trial_ids: Sequence[int]) -> list[Any]:
    """The trials with these storage ids as the storage holds them now (not the per-trial
    snapshot): one query on a database, a look-up each on a journal."""
    backend = rdb_backend(study)
    if backend is not None and len(trial_ids) > 1:
        wanted = set(trial_ids)
        got = backend._get_trials(study._study_id, states=None, included_trial_ids=wanted,
                                  trial_id_greater_than=max(wanted))
        return sorted((t for t in got if t._trial_id in wanted), key=lambda t: t.number)
    storage = storage_of(study)
    return [storage.get_trial(tid) for tid in trial_ids]


def fail_trial(study: Any, trial: Any, reason: str) -> Any:
    """Mark a RUNNING trial FAIL with ``reason`` and return it as stored (for a retry
    callback). Raises when another worker finished or failed it first."""
    from optuna.trial import TrialState

    storage = storage_of(study)
    storage.set_trial_user_attr(trial_id(trial), "reason", reason)
    storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    return storage.get_trial(trial_id(trial))


def compute_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume of minimisation points (each strictly below ``reference``), exactly."""
    from optuna._hypervolume import compute_hypervolume as hv

    return float(hv(np.asarray(points, dtype=float), np.asarray(reference, dtype=float)))


def set_metric_names(study: Any, names: Sequence[str]) -> None:
    """Name the study's objectives (optuna-dashboard and Optuna's plots show them), once."""
    import optuna

    if study.metric_names == list(names):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


# --------------------------------------------------------------------------------------------
# RDB storage


def rdb_backend(study: Any) -> Any | None:
    """The ``RDBStorage`` behind a study (Optuna wraps it in a cache layer), else None."""
    import optuna

    storage = storage_of(study)
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def rdb_running_without_heartbeat(study: Any, started_before: datetime.datetime) -> list[int]:
    """Storage ids of the study's RUNNING trials that never recorded a heartbeat and started
    before ``started_before`` (Optuna's stale-trial check only sees trials with a heartbeat)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    backend = rdb_backend(study)
    if backend is None:
        return []

    def query() -> list[int]:
        with _create_scoped_session(backend.scoped_session) as session:
            rows = (session.query(models.TrialModel)
                    .filter(models.TrialModel.study_id == study._study_id)
                    .filter(models.TrialModel.state == TrialState.RUNNING)
                    .all())
            return [t.trial_id for t in rows
                    if not t.heartbeats and t.datetime_start is not None
                    and t.datetime_start < started_before]

    retry = getattr(backend, "hwsim_retry", None)
    return retry("running trials", query) if retry is not None else query()


#: RDBStorage methods that talk to the database, public and those Optuna's cache layer calls
_RDB_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_trial_user_attrs",
    "get_trial_system_attrs", "get_all_studies", "create_new_trial", "_create_new_trial",
    "set_trial_param", "_set_trial_param", "get_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials",
    "get_best_trial", "_get_best_trial_id", "_get_stale_trial_ids", "get_n_trials",
)


def transient_db_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: Optuna turns SQLAlchemy's errors into a
    ``StorageInternalError``) means the database could not be reached or dropped the
    connection, so that the same call may succeed later."""
    from sqlalchemy import exc as sa_exc

    e: BaseException | None = exc
    for _ in range(8):
        if e is None:
            return False
        if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        e = e.__cause__ or e.__context__
    return False


def rdb_storage(url: str, *, retry_s: float, label: str, **kwargs: Any) -> Any:
    """Optuna's ``RDBStorage`` whose database calls survive a database restart.

    A call that fails because the database cannot be reached (or dropped the connection during
    a commit) is tried again with exponential back-off (0.1 s doubling to 5 s, with jitter) for
    up to ``retry_s`` seconds from its first failure, saying so in one log line; after that the
    call, and every later one, raises :class:`~hwsim.explore.storage.StorageUnavailable`. A
    heartbeat that fails is skipped (the next one follows), so the heartbeat thread never
    blocks the trial. Each call is one transaction, so repeating a call that did not take
    effect is safe; a ``set_trial_state_values`` whose first try did take effect (the
    connection dropped after the commit) finds the trial already in that state and returns as
    if it had just set it. ``label`` names the database in messages (its URL, password masked).
    """
    return _retrying_rdb_class()(url, hwsim_retry_s=retry_s, hwsim_label=label, **kwargs)


_RETRYING_RDB: list[type] = []


def _retrying_rdb_class() -> type:
    if _RETRYING_RDB:
        return _RETRYING_RDB[0]
    import functools
    import random
    import threading
    import time

    import optuna
    from optuna.storages import RDBStorage

    log = logging.getLogger("hwsim.explore.storage")

    class RetryingRDBStorage(RDBStorage):  # type: ignore[misc]
        def __init__(self, url: str, *, hwsim_retry_s: float, hwsim_label: str,
                     **kwargs: Any) -> None:
            self._hwsim_retry_s = float(hwsim_retry_s)
            self._hwsim_label = hwsim_label
            self._hwsim_local = threading.local()
            self._hwsim_down: str | None = None
            super().__init__(url, **kwargs)

        def hwsim_retry(self, what: str, fn: Any) -> Any:
            """``fn()``, retried while the database is unreachable (see :func:`rdb_storage`)."""
            local = self._hwsim_local
            if getattr(local, "depth", 0):  # a call inside a call: the outer one retries
                return fn()
            if self._hwsim_down is not None:
                raise _unreachable(self._hwsim_down)
            local.depth = 1
            first: float | None = None
            delay = 0.1
            try:
                while True:
                    try:
                        result = fn()
                    except optuna.exceptions.UpdateFinishedTrialError:
                        if first is None or what != "set_trial_state_values":
                            raise
                        raise _AlreadySet() from None
                    except Exception as exc:
                        if not transient_db_error(exc):
                            raise
                        now = time.monotonic()
                        reason = _first_line(exc)
                        if first is None:
                            first = now
                            log.warning("database %s is unreachable (%s); retrying for up to "
                                        "%g s (--db-retry-s)", self._hwsim_label, reason,
                                        self._hwsim_retry_s)
                        left = first + self._hwsim_retry_s - now
                        if left <= 0:
                            self._hwsim_down = (
                                f"storage {self._hwsim_label} is unreachable ({reason}) for "
                                f"longer than --db-retry-s {self._hwsim_retry_s:g} s; every "
                                "finished trial is kept: run the same command again when the "
                                "database is back")
                            raise _unreachable(self._hwsim_down) from None
                        time.sleep(min(left, delay * (0.5 + random.random())))
                        delay = min(delay * 2, 5.0)
                        continue
                    if first is not None:
                        log.info("database %s is reachable again after %.1f s",
                                 self._hwsim_label, time.monotonic() - first)
                    return result
            finally:
                local.depth = 0

        def set_trial_state_values(self, trial_id: int, state: Any,
                                   values: Any = None) -> bool:
            try:
                return self.hwsim_retry("set_trial_state_values", functools.partial(
                    RDBStorage.set_trial_state_values, self, trial_id, state, values))
            except _AlreadySet:
                # the connection dropped after a commit: the first try took effect
                stored = RDBStorage.get_trial(self, trial_id)
                if stored.state == state:
                    return True
                log.warning("trial %d was finished elsewhere (%s) while the database was "
                            "unreachable", stored.number, stored.state.name)
                return False

        def record_heartbeat(self, trial_id: int) -> None:
            if self._hwsim_down is not None:
                return
            try:
                RDBStorage.record_heartbeat(self, trial_id)
            except Exception as exc:  # the next heartbeat follows; the trial goes on
                if not transient_db_error(exc):
                    raise
                log.debug("heartbeat of trial id %d skipped: %s", trial_id, _first_line(exc))

    def wrap(name: str) -> Any:
        base = getattr(RDBStorage, name)

        @functools.wraps(base)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self.hwsim_retry(name, functools.partial(base, self, *args, **kwargs))

        return call

    for name in _RDB_CALLS:
        if name != "set_trial_state_values":
            setattr(RetryingRDBStorage, name, wrap(name))
    _RETRYING_RDB.append(RetryingRDBStorage)
    return RetryingRDBStorage


class _AlreadySet(Exception):
    """A retried state change found the trial already finished."""


def _first_line(exc: BaseException) -> str:
    e: BaseException = exc
    while e.__cause__ is not None:  # Optuna's StorageInternalError says little; its cause more
        e = e.__cause__
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _unreachable(message: str) -> Exception:
    from hwsim.explore.storage import StorageUnavailable

    return StorageUnavailable(message)


# --------------------------------------------------------------------------------------------
# journal file


def journal_backend(path: str, lock: Any) -> Any:
    """A journal file backend that syncs the file to disk when a trial finishes.

    Optuna's ``JournalFileBackend`` calls ``fsync`` after every record (a trial writes about ten:
    its creation, each parameter, each attribute, its end). A record is in the file, for every
    reader and across a killed process, as soon as it is written; ``fsync`` only matters if the
    machine itself goes down. So records are written and flushed under the lock as before, and the
    file is synced after the record that finishes a trial (which also makes every earlier record
    of that trial durable), after a trial created already finished or queued (a retry) and after
    study-level records; a trial cut short by a power failure is at worst lost while RUNNING,
    which the dead-worker recovery handles like a killed worker.
    """
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._storage import JournalOperation
    from optuna.trial import TrialState

    durable_ops = {JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY,
                   JournalOperation.SET_STUDY_USER_ATTR, JournalOperation.SET_STUDY_SYSTEM_ATTR}
    finished = {s.value for s in TrialState if s.is_finished()} | {TrialState.WAITING.value}

    def durable(log: dict[str, Any]) -> bool:
        op = log.get("op_code")
        if op in durable_ops:
            return True
        if op == JournalOperation.SET_TRIAL_STATE_VALUES:
            return log.get("state") in finished
        return op == JournalOperation.CREATE_TRIAL and "state" in log

    class SyncOnFinishBackend(JournalFileBackend):
        def __init__(self) -> None:
            super().__init__(path, lock_obj=lock)
            self._hwsim_path, self._hwsim_lock = path, lock

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in logs).encode()
            self._hwsim_lock.acquire()
            try:
                fd = os.open(self._hwsim_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = _cut_partial_tail(fd, self._hwsim_path)
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view):]
                    except OSError as exc:
                        # a full disk cut the record short: take it back (shrinking a file
                        # needs no space), so that the journal still ends in a whole record
                        with contextlib.suppress(OSError):
                            os.ftruncate(fd, size)
                        raise _write_error(self._hwsim_path, exc) from exc
                    if any(durable(r) for r in logs):
                        try:
                            os.fsync(fd)
                        except OSError as exc:
                            raise _write_error(self._hwsim_path, exc) from exc
                finally:
                    os.close(fd)
            finally:
                self._hwsim_lock.release()

    return SyncOnFinishBackend()


def _write_error(path: str, exc: OSError) -> Exception:
    from hwsim.explore.storage import StorageUnavailable

    return StorageUnavailable(
        f"storage {path}: cannot write ({exc.strerror or exc}); every finished trial is kept: "
        "free space (or fix the disk) and run the same command again to resume")


def partial_tail(fd: int) -> tuple[int, int]:
    """(size of the journal open on ``fd``, bytes after its last whole record).

    Every record ends in a newline; bytes after the last one are a record cut off by a full
    disk, a killed writer or a machine that went down. Optuna's reader stops before them (a line
    without its newline is never read), but a record appended after them would be glued to
    them and make that line, and the journal, unreadable.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size, 0
    end, chunk = size, 1 << 16
    while end > 0:
        start = max(0, end - chunk)
        i = os.pread(fd, end - start, start).rfind(b"\n")
        if i >= 0:
            return size, size - (start + i + 1)
        end = start
    return size, size


def _cut_partial_tail(fd: int, path: str) -> int:
    """Remove a cut-off record at the end of the journal (the lock held); returns the size."""
    size, cut = partial_tail(fd)
    if cut:
        os.ftruncate(fd, size - cut)
        logging.getLogger("hwsim.explore.storage").warning(
            "%s: removed a cut-off record at its end (%d bytes, left by a full disk or a "
            "crash) before appending; every whole record is kept", path, cut)
    return size - cut
