"""Running a study: the objective, the global budget, workers, resume.

The budget
    ``trials`` is a global budget: the number of *counted* trials in the study, whatever the
    number of workers. A trial counts when it is COMPLETE, PRUNED (an infeasible design, with its
    reason), RUNNING or WAITING, or FAILED by its evaluator (an error, recorded with its reason).
    A trial does not count when its worker died (the heartbeat or the restart marks it failed and
    queues a retry, which counts instead) or when it started after the budget was spent.

    Exactness: trial numbers are handed out atomically by the storage. At its start a trial counts
    the trials numbered below it; if they already fill the budget, it is marked FAIL with
    ``surplus = true`` and its worker stops, before any evaluation. So the counted total equals
    the budget exactly, with any number of workers, and rerunning with a larger ``--trials`` adds
    the difference.

Determinism
    Each worker's sampler is seeded from the study seed and the number of its first trial (the
    worker that starts a study: the study seed itself; :func:`worker_seed`), so one worker is
    reproducible and workers started together do not draw the same points; a stochastic
    evaluator (the DES) is seeded from ``seed * 1000003 + trial number``; the seed is recorded in
    the trial.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.explore import optuna_adapter
from hwsim.explore import storage as storage_mod
from hwsim.explore.study import InputCache, StudySpec, load_study, sampler_class

log = logging.getLogger(__name__)

SPEC_ATTR = "hwsim_study"
#: how long a worker whose budget is claimed waits for a running trial that makes no progress
WAIT_FOR_OTHERS_S = 3 * storage_mod.GRACE_PERIOD_S
FINGERPRINT_ATTR = "hwsim_fingerprint"


class _Surplus(Exception):
    """A trial started after the global budget was spent."""


class _EvaluatorError(Exception):
    """An evaluator raised something other than InfeasibleDesign (recorded, counted, goes on)."""


@dataclass
class SweepOptions:
    """What ``hwsim sweep`` was asked to do, beyond the study spec."""

    storage: str | None = None
    study_name: str | None = None
    out_dir: Path | None = None
    n_jobs: int = 1
    progress: bool | None = None  # None: when stderr is a terminal
    #: how long a database call is retried while the database is unreachable (None: default)
    db_retry_s: float | None = None


def study_name_for(study: StudySpec, opts: SweepOptions) -> str:
    """The study's name in its storage: ``--study-name``, else the spec's (one path component:
    it also names the output folder)."""
    if opts.study_name is None:
        return storage_mod.check_name(study.name, key="name", file=study.path)
    return storage_mod.check_name(opts.study_name, key="--study-name")


def out_dir_for(study: StudySpec, opts: SweepOptions) -> Path:
    name = study_name_for(study, opts)
    return opts.out_dir or Path("results") / name


def storage_url_for(study: StudySpec, opts: SweepOptions) -> str:
    return opts.storage or str(storage_mod.default_storage_path(out_dir_for(study, opts)))


# --------------------------------------------------------------------------------------------
# counting


def counts(trial: Any) -> bool:
    """Whether a (frozen) trial counts toward the global budget (see the module docstring)."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                       TrialState.WAITING):
        return True
    if trial.state == TrialState.FAIL:
        return bool(trial.user_attrs.get("error"))
    return False


def finished_counted(trials: Sequence[Any]) -> int:
    """Counted trials that have finished (COMPLETE, PRUNED, or FAIL with an evaluator error)."""
    from optuna.trial import TrialState

    return sum(1 for t in trials if counts(t) and t.state not in (TrialState.RUNNING,
                                                                      TrialState.WAITING))


def n_counted(study: Any) -> int:
    """Counted trials in a study, finished or in flight (WAITING retries excluded)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if counts(t) and t.state != TrialState.WAITING)


# --------------------------------------------------------------------------------------------
# the study object


def quiet_optuna(level: int) -> None:
    """Show Optuna's log records from ``level`` up, never lowering a threshold already set
    higher (opening a study must not bring back the per-trial tracebacks a worker turned off)."""
    import optuna

    if optuna.logging.get_verbosity() < level:
        optuna.logging.set_verbosity(level)


def worker_seed(seed: int, first_trial: int) -> int:
    """The sampler seed of a worker whose first trial has number ``first_trial``.

    The worker that starts a study (trial 0) uses the study seed itself, so that one worker
    draws what the seed alone draws; any other worker a seed derived from the study seed and its
    first trial, a number the storage hands out to one worker only. So workers started
    separately on one study (or by ``--n-jobs``) never draw the same points in lock-step, and a
    study run by one worker is reproducible, resumes included.
    """
    if first_trial == 0:
        return seed
    digest = hashlib.sha256(f"hwsim-worker:{seed}:{first_trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


_PER_WORKER: dict[type, type] = {}


def _per_worker_class(cls: type) -> type:
    """``cls`` with its seed taken from the worker's first trial (:func:`worker_seed`).

    The sampler is built with the study seed; in ``before_trial`` of the worker's first trial
    (Optuna calls it once the storage has numbered the trial, before anything is sampled) it is
    built again, in place, with the worker's seed. It stays an instance of ``cls``.
    """
    if cls not in _PER_WORKER:
        def before_trial(self: Any, study: Any, trial: Any) -> None:
            init = self.__dict__.pop("_hwsim_init", None)
            if init is not None:
                kwargs, seed = init
                mine = worker_seed(seed, trial.number)
                if mine != seed:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        cls.__init__(self, **{**kwargs, "seed": mine})
                self.hwsim_seed = mine
            cls.before_trial(self, study, trial)

        _PER_WORKER[cls] = type(cls.__name__, (cls,), {
            "before_trial": before_trial, "__module__": __name__,
            "__doc__": f"{cls.__name__}, seeded per worker (hwsim.explore.runner.worker_seed)"})
    return _PER_WORKER[cls]


def make_sampler(study: StudySpec) -> Any:
    """The Optuna sampler the spec names, seeded for this worker (:func:`worker_seed`), with
    the constraints fed to it."""
    cls = sampler_class(study.sampler, study.path)
    kwargs: dict[str, Any] = dict(study.sampler_options)
    kwargs["seed"] = study.seed
    if study.constraints and study.sampler in ("tpe", "nsga2", "nsga3", "gp"):
        kwargs["constraints_func"] = constraints_func
    if study.sampler == "grid":
        kwargs["search_space"] = {p.name: p.values() for p in study.space}
    if study.sampler == "qmc":
        kwargs.setdefault("scramble", True)
        kwargs.setdefault("warn_independent_sampling", False)
    if study.sampler == "tpe":
        kwargs.setdefault("multivariate", True)
        kwargs.setdefault("warn_independent_sampling", False)
    if study.sampler == "nsga3" and len(study.objectives) < 2:
        raise InputError("nsga3 is for several objectives", file=study.path,
                         key="sampler.name", value="nsga3", has_value=True)
    # QMC draws one low-discrepancy sequence for the whole study (its workers share the
    # sequence, which needs the same seed), so it keeps the study seed in every worker
    built = cls if study.sampler == "qmc" else _per_worker_class(cls)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = built(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"sampler options rejected: {exc}", file=study.path,
                         key="sampler") from None
    if built is not cls:
        sampler._hwsim_init = (kwargs, study.seed)
    return sampler


def constraints_func(trial: Any) -> Sequence[float]:
    """The constraint violations a trial recorded (<= 0 satisfied), for Optuna's samplers."""
    v = trial.user_attrs.get("constraints")
    if not v:
        return [1.0]
    return [float(x) if x is not None and math.isfinite(float(x)) else 1e30 for x in v]


def open_study(study: StudySpec, opts: SweepOptions, *, create: bool = True) -> Any:
    """Create or load the Optuna study; the stored spec must define the same design space."""
    import optuna

    quiet_optuna(optuna.logging.WARNING)
    url = storage_url_for(study, opts)
    st = storage_mod.open_storage(url, file=study.path, retry_s=opts.db_retry_s)
    name = study_name_for(study, opts)
    sampler = make_sampler(study)
    try:
        ostudy = optuna.load_study(study_name=name, storage=st, sampler=sampler)
        created = False
    except KeyError:
        if not create:
            raise InputError(f"no study named {name!r} in {storage_mod.mask_url(url)}") from None
        ostudy = optuna.create_study(study_name=name, storage=st, sampler=sampler,
                                     directions=study.directions, load_if_exists=True)
        created = True
    if ostudy.directions and [d.name.lower() for d in ostudy.directions] != study.directions:
        raise InputError(
            f"study {name!r} in {storage_mod.mask_url(url)} optimises "
            f"{[d.name.lower() for d in ostudy.directions]}, this spec {study.directions}; "
            "use another --study-name", file=study.path, key="objectives")
    stored = ostudy.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        ostudy.set_user_attr(FINGERPRINT_ATTR, study.fingerprint())
        ostudy.set_user_attr(SPEC_ATTR, study.as_json())
    elif stored != study.fingerprint():
        raise InputError(
            f"study {name!r} in {storage_mod.mask_url(url)} was created from a different space, "
            "objectives, constraints or fixed inputs; use another --study-name or --out",
            file=study.path)
    # optuna-dashboard and Optuna's plots label the objectives with these (not "Objective 0")
    optuna_adapter.set_metric_names(ostudy, study.objective_metrics)
    if created:
        log.info("created study %s in %s", name, storage_mod.mask_url(url))
    return ostudy


# --------------------------------------------------------------------------------------------
# one trial


def design_key(study: StudySpec, params: dict[str, Any]) -> str | None:
    """A design's identity: its parameter values in space order (None when one is missing)."""
    try:
        return json.dumps([params[p.name] for p in study.space], default=str)
    except KeyError:
        return None


@dataclass(frozen=True)
class Evaluation:
    """What a finished trial recorded about its design, for a later trial of the same design."""

    number: int
    pruned: bool
    values: tuple[float, ...] | None
    attrs: dict[str, Any]


class Tally:
    """What this worker knows of the study's trials, kept current at constant cost per trial.

    Every trial reads the snapshot of the study that Optuna fetched for its sampler (ordered by
    number) and looks only at the trials it has not seen and at those that were unfinished when
    it last looked (as many as there are workers); finished trials never change. From them it
    keeps the finished trials that do not count (rare: dead workers' trials and surplus ones),
    the finished counted trials, the best feasible value of each objective and the first
    evaluation of each design. So the budget check ("do the trials numbered below this one fill
    the budget?") and the progress callback cost the same at trial 10 and at trial 10^5.
    """

    def __init__(self, study: StudySpec) -> None:
        self.study = study
        self.seen = 0                       # trials numbered below this were looked at
        self.open: dict[int, bool] = {}     # unfinished among them -> whether WAITING
        self.uncounted: list[int] = []      # finished and not counted, sorted
        self.finished = 0                   # finished and counted
        self.designs: dict[str, Evaluation] = {}
        self.best: list[float | None] = [None] * len(study.objectives)

    def update(self, trials: Sequence[Any], upto: int) -> None:
        """Take in the trials numbered below ``upto`` that are new or were unfinished."""
        from optuna.trial import TrialState

        upto = min(upto, len(trials))
        for k in [k for k in self.open if k < upto]:
            t = _numbered(trials, k)
            if t.state.is_finished():
                del self.open[k]
                self._take(t)
            else:
                self.open[k] = t.state == TrialState.WAITING
        for k in range(self.seen, upto):
            t = _numbered(trials, k)
            if t.state.is_finished():
                self._take(t)
            else:
                self.open[k] = t.state == TrialState.WAITING
        self.seen = max(self.seen, upto)

    def finish(self, trial: Any) -> None:
        """Take in a trial this worker has just finished (the progress callback's)."""
        if trial.number in self.open:
            del self.open[trial.number]
            self._take(trial)

    def counted_below(self, number: int) -> int:
        """Counted trials numbered below ``number`` (all of them must have been seen)."""
        return number - bisect.bisect_left(self.uncounted, number)

    def counted(self) -> int:
        """Counted trials among those seen, queued retries (WAITING) left out."""
        return self.counted_below(self.seen) - sum(self.open.values())

    def _take(self, t: Any) -> None:
        from optuna.trial import TrialState

        if not counts(t):
            bisect.insort(self.uncounted, t.number)
            return
        self.finished += 1
        found = evaluation_of(self.study, t)
        if found is not None and found[0] not in self.designs:
            self.designs[found[0]] = found[1]
        if t.state == TrialState.COMPLETE and t.values and feasible(t):
            for i, o in enumerate(self.study.objectives):
                v, b = t.values[i], self.best[i]
                if b is None or (v < b if o.direction == "minimize" else v > b):
                    self.best[i] = v

    def best_text(self) -> str:
        """The best feasible value of each objective so far, as ``metric=value`` text."""
        if any(b is None for b in self.best):
            return ""
        return " ".join(f"{o.metric}={b:.4g}"
                        for o, b in zip(self.study.objectives, self.best, strict=True))


def evaluation_of(study: StudySpec, t: Any) -> tuple[str, Evaluation] | None:
    """(design key, evaluation) of a finished trial whose result another trial of the same
    design may reuse: COMPLETE, or PRUNED with its reason (an infeasible design); else None."""
    from optuna.trial import TrialState

    reusable = t.state == TrialState.COMPLETE or (
        t.state == TrialState.PRUNED and t.user_attrs.get("reason"))
    key = design_key(study, t.params) if reusable and counts(t) else None
    if key is None:
        return None
    attrs = {k: t.user_attrs[k] for k in ("run", "metrics", "constraints", "reason")
             if k in t.user_attrs}
    source = t.user_attrs.get("reused_from")
    return key, Evaluation(number=t.number if source is None else int(source),
                           pruned=t.state == TrialState.PRUNED,
                           values=tuple(t.values) if t.values is not None else None,
                           attrs=attrs)


def _numbered(trials: Sequence[Any], k: int) -> Any:
    """Trial number ``k`` of a snapshot ordered by number (numbers are 0, 1, 2, ...)."""
    t = trials[k]
    if t.number == k:
        return t
    return next(x for x in trials if x.number == k)  # pragma: no cover - not seen in Optuna


class Objective:
    """The objective Optuna calls: check the budget, suggest a point, evaluate (or reuse the
    stored evaluation of the same design), record."""

    def __init__(self, study: StudySpec, budget: int, tally: Tally | None = None) -> None:
        self.study = study
        self.budget = budget
        self.system = study.get_system()
        self.cache = InputCache(study)
        self.tag = storage_mod.worker_tag()
        self.tally = tally if tally is not None else Tally(study)
        self.stop = False
        self.evaluations = 0

    def budget_left(self, trial: Any) -> bool:
        """Whether the trials numbered below this one leave room for it in the budget."""
        self.tally.update(optuna_adapter.trial_snapshot(trial.study), trial.number + 1)
        return self.tally.counted_below(trial.number) < self.budget

    def __call__(self, trial: Any) -> Sequence[float] | float:
        import optuna

        trial.set_user_attr("worker", self.tag)
        if not self.budget_left(trial):
            trial.set_user_attr("surplus", True)
            self.stop = True
            trial.study.stop()
            raise _Surplus()
        inherited = trial.user_attrs  # a retried trial inherits its parent's attributes
        if inherited.get("reason"):
            trial.set_user_attr("reason", "")
        point = {p.name: p.suggest(trial) for p in self.study.space}
        key = design_key(self.study, point)
        prior = self.tally.designs.get(key) if key is not None else None
        if prior is None and key is not None:
            prior = self._same_design_elsewhere(trial, key)
        if prior is not None:
            return self._reuse(trial, prior)
        if inherited.get("reused_from") is not None:
            trial.set_user_attr("reused_from", None)
        seed = self.study.seed * 1_000_003 + trial.number
        run: dict[str, Any] = {"seed": seed, "fidelity": self.study.fidelity}
        t0 = time.perf_counter()
        self.evaluations += 1
        try:
            inputs = self.cache.inputs(point)
            metrics = self.system.evaluate(inputs, self.study.fidelity, seed=seed)
        except (InfeasibleDesign, InputError) as exc:
            reason = str(exc) if isinstance(exc, InfeasibleDesign) else f"invalid input: {exc}"
            run["eval_s"] = time.perf_counter() - t0
            trial.set_user_attr("run", run)
            trial.set_user_attr("reason", reason)
            trial.set_user_attr("constraints", [1.0] * max(1, n_violations(self.study)))
            raise optuna.TrialPruned(reason) from None
        except KeyboardInterrupt:  # Optuna marks it FAIL (not counted: a rerun redoes it)
            run["eval_s"] = time.perf_counter() - t0
            trial.set_user_attr("run", run)
            trial.set_user_attr("reason", "interrupted")
            raise
        except Exception as exc:  # recorded, counted, and the sweep goes on
            run["eval_s"] = time.perf_counter() - t0
            trial.set_user_attr("run", run)
            trial.set_user_attr("reason", f"evaluator error: {type(exc).__name__}: {exc}")
            trial.set_user_attr("error", True)
            log.warning("trial %d: evaluator error %s: %s", trial.number, type(exc).__name__,
                        exc)
            raise _EvaluatorError(str(exc)) from exc
        run["eval_s"] = time.perf_counter() - t0
        viol = violations(self.study, metrics)
        trial.set_user_attr("run", run)
        trial.set_user_attr("metrics", {k: _json_num(v) for k, v in metrics.items()})
        trial.set_user_attr("constraints", viol)
        values = [metrics[o.metric] for o in self.study.objectives]
        if any(not math.isfinite(v) for v in values):
            reason = "objective not finite: " + ", ".join(
                f"{o.metric}={v}" for o, v in zip(self.study.objectives, values, strict=True))
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        return values[0] if len(values) == 1 else values

    def _same_design_elsewhere(self, trial: Any, key: str) -> Evaluation | None:
        """The evaluation of this design by a lower-numbered trial of another worker that was
        unfinished when this trial started, waiting for it to finish if it is evaluating it.

        Each trial waits until every lower-numbered trial still running has chosen its design,
        and for the one that chose the same design (if any) to finish, then reuses its result.
        A trial never waits for a higher-numbered one, so no two trials wait for each other;
        and of two trials of one design running at once, the higher-numbered one always sees
        the other's design (the lower one chose it before the higher one looked). So, with the
        designs of finished trials (the tally), no design is evaluated twice, whatever the
        number of workers. One worker alone never waits. A trial whose worker died (found on
        this host, or after :data:`WAIT_FOR_OTHERS_S`) is not waited for.
        """
        from optuna.trial import TrialState

        below = [k for k, waiting in self.tally.open.items() if k < trial.number and not waiting]
        if not below:
            return None
        snapshot = optuna_adapter.trial_snapshot(trial.study)
        ids = [optuna_adapter.trial_id(_numbered(snapshot, k)) for k in below]
        n_params = len(self.study.space)
        deadline = time.monotonic() + WAIT_FOR_OTHERS_S
        delay, waited_for = 0.002, None
        while ids:
            pending = []
            for t in optuna_adapter.fresh_trials(trial.study, ids):
                if t.state.is_finished():
                    found = evaluation_of(self.study, t)
                    if found is not None and found[0] == key:
                        if waited_for is not None:
                            log.debug("trial %d: reuses trial %d of the same design, which it "
                                      "waited for", trial.number, t.number)
                        return found[1]
                elif t.state == TrialState.RUNNING and storage_mod.worker_alive(
                        str(t.user_attrs.get("worker", ""))):
                    if len(t.params) < n_params:  # still choosing its design
                        pending.append(optuna_adapter.trial_id(t))
                    elif design_key(self.study, t.params) == key:  # evaluating this one
                        pending.append(optuna_adapter.trial_id(t))
                        waited_for = t.number
            ids = pending
            if not ids:
                break
            if time.monotonic() > deadline:
                log.info("trial %d: trials %s did not finish in %d s; not waiting for them",
                         trial.number, below, WAIT_FOR_OTHERS_S)
                break
            time.sleep(delay)
            delay = min(2 * delay, 0.5)
        return None

    def _reuse(self, trial: Any, prior: Evaluation) -> Sequence[float] | float:
        """Record the stored evaluation of the same design instead of evaluating it again."""
        import optuna

        trial.set_user_attr("reused_from", prior.number)
        for k, v in prior.attrs.items():
            if k == "run":
                v = {**v, "eval_s": 0.0}
            if k != "reason" or v:
                trial.set_user_attr(k, v)
        if prior.pruned or prior.values is None:
            raise optuna.TrialPruned(prior.attrs.get("reason", ""))
        return prior.values[0] if len(prior.values) == 1 else list(prior.values)


def feasible(trial: Any) -> bool:
    """Whether a trial satisfied every constraint (its recorded violations are all <= 0)."""
    return all(v is not None and v <= 0 for v in trial.user_attrs.get("constraints") or [])


def n_violations(study: StudySpec) -> int:
    return sum((c.max is not None) + (c.min is not None) for c in study.constraints)


def violations(study: StudySpec, metrics: dict[str, float]) -> list[float]:
    out: list[float] = []
    for c in study.constraints:
        out.extend(c.violations(metrics.get(c.metric, math.nan)))
    return [_json_num(v) if math.isfinite(v) else 1e30 for v in out]


def _json_num(v: float) -> Any:
    v = float(v)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------------------------
# progress


class Progress:
    """Stops the worker when the budget is claimed, and draws a tqdm bar over the global budget
    with the best values so far in its postfix; both from the worker's :class:`Tally`."""

    def __init__(self, study: StudySpec, budget: int, start: int, enabled: bool | None,
                 tally: Tally | None = None) -> None:
        from tqdm import tqdm

        self.study = study
        self.budget = budget
        self.start = start
        self.tally = tally if tally is not None else Tally(study)
        self.ran = 0
        self.bar = tqdm(total=budget, initial=min(start, budget),
                        disable=(not enabled) if enabled is not None else None,
                        unit="trial", desc=study.name, dynamic_ncols=True)

    def __call__(self, ostudy: Any, trial: Any) -> None:
        self.ran += 1
        self.tally.finish(trial)
        if self.tally.counted() >= self.budget:
            ostudy.stop()
        if self.bar.disable:
            return
        self.bar.n = min(max(self.start, self.tally.finished), self.bar.total)
        best = self.tally.best_text()
        if best:
            self.bar.set_postfix_str(best, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    """What one ``sweep`` did: ``ran`` counted trials were added while it ran (by all of its
    workers, and any other worker of the same study); ``counted`` are there now."""

    study_name: str
    storage: str
    out_dir: Path
    counted: int
    ran: int
    seconds: float
    budget: int = 0
    before: int = 0  # counted trials when the command started


def run_worker(study: StudySpec, opts: SweepOptions, budget: int,
               progress: bool | None = False, ostudy: Any | None = None) -> int:
    """One worker: run trials until the study holds ``budget`` counted trials and none is
    running; returns how many trials this worker ran. ``ostudy``: the study already opened
    for this worker (else it is opened here)."""
    import optuna

    # Optuna logs every failed trial with a traceback; ours are recorded with their reason (and
    # evaluator errors logged here), and surplus trials are bookkeeping, so keep it to errors.
    quiet_optuna(optuna.logging.ERROR)
    url = storage_url_for(study, opts)
    if not storage_mod.is_database_url(url):
        storage_mod.register_worker(url)
    if ostudy is None:
        ostudy = open_study(study, opts)
    tally = Tally(study)
    objective = Objective(study, budget, tally)
    bar = Progress(study, budget, finished_counted(ostudy.get_trials(deepcopy=False)), progress,
                   tally)
    journal = not storage_mod.is_database_url(url)
    try:
        _run_until_done(ostudy, objective, bar, budget, url, journal)
    except Exception as exc:
        # a storage that cannot be written or reached: one line, whatever Optuna made of it
        failure = storage_mod.storage_failure(exc)
        if failure is None:
            raise
        raise failure from None
    finally:
        bar.close()
    return bar.ran


def _run_until_done(ostudy: Any, objective: Objective, bar: Progress, budget: int, url: str,
                    journal: bool) -> None:
    """run_worker's loop: optimize while the budget has room, then wait for the trials still
    running elsewhere (or run their retries)."""
    import optuna
    from optuna.trial import TrialState

    idle_since, last = time.monotonic(), None
    while True:
        # trials of dead workers: failed and queued again (journal: registrations; database:
        # heartbeats), so that they neither hold a slot of the budget nor are lost
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            if journal:
                storage_mod.recover_dead_local_trials(ostudy, url)
            else:
                storage_mod.fail_dead_db_trials(ostudy)
            if n_counted(ostudy) < budget or _has_waiting(ostudy):
                objective.stop = False
                ostudy.optimize(objective, n_trials=None, catch=(_Surplus, _EvaluatorError),
                                callbacks=[bar])
        # the budget is claimed; wait for other workers' running trials to finish (or to be
        # found dead and queued again, which this worker then runs)
        running = [t.number for t in ostudy.get_trials(deepcopy=False,
                                                       states=(TrialState.RUNNING,))]
        if not running:
            break
        if running != last:
            idle_since, last = time.monotonic(), running
        elif time.monotonic() - idle_since > WAIT_FOR_OTHERS_S:
            log.warning("trials %s are still running after %d s; not waiting for them",
                        running, WAIT_FOR_OTHERS_S)
            break
        time.sleep(0.5 if journal else 2.0)


def _has_waiting(ostudy: Any) -> bool:
    from optuna.trial import TrialState

    return bool(ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _worker_main(path: str, raw_trials: int | None, seed: int | None, opts: SweepOptions,
                 budget: int, index: int) -> None:  # pragma: no cover - runs in a child
    from hwsim.errors import HwsimError

    logging.basicConfig(level=logging.WARNING)
    study = load_study(path, trials=raw_trials, seed=seed, validate=False)
    try:
        run_worker(study, opts, budget, progress=False)
    except HwsimError as exc:  # one line, as the command itself says it
        log.error("worker %d: %s", index, exc)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:  # Ctrl-C reaches every worker: the command says it once
        raise SystemExit(130) from None


def sweep(study: StudySpec, opts: SweepOptions,
          on_start: Callable[[Any], None] | None = None) -> SweepResult:
    """Run the study to its budget with ``opts.n_jobs`` worker processes on this machine."""
    t0 = time.perf_counter()
    out = out_dir_for(study, opts)
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url_for(study, opts)
    if not storage_mod.is_database_url(url):
        try:
            storage_mod.register_worker(url)
        except InputError as exc:
            raise InputError(str(exc), file=study.path) from None
    ostudy = open_study(study, opts)
    if on_start is not None:
        on_start(ostudy)
    before = finished_counted(ostudy.get_trials(deepcopy=False))
    budget = study.trials
    if study.sampler == "grid" and study.space_size() < budget:
        budget = int(study.space_size())
        log.info("grid sampler: the budget is the %d points of the grid", budget)
    children: list[Any] = []
    if opts.n_jobs > 1:
        ctx = mp.get_context("spawn")
        for i in range(1, opts.n_jobs):
            p = ctx.Process(target=_worker_main, args=(study.path, study.trials,
                                                        study.seed, opts, budget, i),
                            daemon=False)
            p.start()
            children.append(p)
    try:
        run_worker(study, opts, budget, progress=opts.progress, ostudy=ostudy)
    except KeyboardInterrupt:  # a terminal's Ctrl-C reaches them too; a kill -INT may not
        for p in children:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(p.pid, signal.SIGINT)
        raise
    finally:
        for p in children:
            p.join()
    for p in children:
        if p.exitcode:
            log.warning("worker process %s exited with status %s", p.pid, p.exitcode)
    # the storage reads what the other workers wrote: no need to open the study again
    counted = finished_counted(ostudy.get_trials(deepcopy=False))
    return SweepResult(study_name=ostudy.study_name, storage=url, out_dir=out,
                       counted=counted, ran=counted - before,
                       seconds=time.perf_counter() - t0, budget=budget, before=before)
