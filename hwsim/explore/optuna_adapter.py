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
    with _create_scoped_session(backend.scoped_session) as session:
        rows = (session.query(models.TrialModel)
                .filter(models.TrialModel.study_id == study._study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .all())
        return [t.trial_id for t in rows
                if not t.heartbeats and t.datetime_start is not None
                and t.datetime_start < started_before]


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
