"""The worker's tally of the study: the exact budget count at constant cost per trial."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from hwsim.explore.runner import Tally, counts
from hwsim.explore.study import study_from_dict


def study() -> Any:
    return study_from_dict({
        "system": "queue", "specs": {"queue": "mm1"},
        "space": {"queue.servers": {"low": 1, "high": 4}},
        "objectives": [{"metric": "mean_wait_s", "direction": "minimize"}],
    }, "<test>", validate=False)


class Snapshot(list):
    """A study snapshot that counts how many trials are read from it."""

    reads = 0

    def __getitem__(self, k: Any) -> Any:
        self.reads += 1
        return super().__getitem__(k)


def trial(number: int, state: TrialState, **attrs: Any) -> SimpleNamespace:
    return SimpleNamespace(number=number, state=state, user_attrs=attrs,
                           params={"queue.servers": 1 + number % 4},
                           values=[float(number)] if state == TrialState.COMPLETE else None)


FINAL = [(TrialState.COMPLETE, {}), (TrialState.PRUNED, {"reason": "infeasible"}),
         (TrialState.FAIL, {"error": True}), (TrialState.FAIL, {"reason": "worker died"}),
         (TrialState.FAIL, {"surplus": True})]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), workers=st.integers(1, 6))
def test_tally_counts_exactly_and_reads_only_new_and_unfinished_trials(seed: int,
                                                                       workers: int) -> None:
    """Random histories of several workers: trials start, finish (counted or not), retries are
    queued and popped. At every check the count equals the definition (counted trials numbered
    below the checking trial), and the trials read are the new ones plus the unfinished ones."""
    rng = random.Random(seed)
    tally = Tally(study())
    trials: list[SimpleNamespace] = []
    last_len = 0
    total_reads = 0
    for _ in range(600):
        unfinished = [t.number for t in trials if not t.state.is_finished()]
        r = rng.random()
        if r < 0.5 or not unfinished or len(unfinished) >= workers:
            if len(unfinished) < workers or not unfinished:
                trials.append(trial(len(trials), TrialState.RUNNING))
        elif r < 0.6:
            trials.append(trial(len(trials), TrialState.WAITING))
        else:
            k = rng.choice(unfinished)
            state, attrs = rng.choice(FINAL)
            trials[k] = trial(k, state, **attrs)  # Optuna replaces a trial, never edits it
        if not trials:
            continue
        waiting = [t.number for t in trials if t.state == TrialState.WAITING]
        if waiting and rng.random() < 0.3:  # a worker pops a queued retry
            n = rng.choice(waiting)
            trials[n] = trial(n, TrialState.RUNNING)
        else:
            n = len(trials) - 1
        snap = Snapshot(trials)
        open_before = len(tally.open)
        tally.update(snap, n + 1)
        assert tally.counted_below(n) == sum(counts(t) for t in trials[:n])
        assert snap.reads <= (len(trials) - last_len) + open_before + 1
        total_reads += snap.reads
        last_len = max(last_len, min(len(trials), n + 1))
    assert total_reads <= len(trials) + 600 * workers


def test_tally_keeps_the_first_evaluation_of_each_design_and_the_best_value() -> None:
    tally = Tally(study())
    trials = [trial(0, TrialState.COMPLETE, constraints=[]),
              trial(1, TrialState.PRUNED, reason="infeasible"),
              trial(2, TrialState.FAIL, error=True),
              trial(3, TrialState.RUNNING),
              trial(4, TrialState.COMPLETE, constraints=[])]  # servers 1 again (4 % 4 + 1)
    tally.update(trials, 5)
    assert set(tally.designs) == {"[1]", "[2]"}  # errors are not reused; 3 is running
    assert tally.designs["[1]"].number == 0 and tally.designs["[2]"].pruned
    assert tally.best == [0.0] and tally.finished == 4 and tally.counted() == 5
    tally.finish(trial(3, TrialState.FAIL, reason="worker died"))
    assert tally.counted() == 4 and tally.counted_below(5) == 4
