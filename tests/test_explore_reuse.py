"""A trial that proposes a design already evaluated reuses the stored result instead of
evaluating it again, and says so; the budget and the tables count it as a trial."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.explore.storage import open_storage
from hwsim.system import SYSTEMS, Metric, Role, System, get_system, register_system

SYSTEM = "explore-reuse-toy"
CALLS: list[tuple[int, str]] = []


def _counting(inputs):
    q = inputs["queue"]
    CALLS.append((q.servers, q.service_distribution))
    return get_system("queue").analytical(inputs)


@pytest.fixture(scope="module", autouse=True)
def counting_system() -> Iterator[None]:
    """The queue, with every evaluation recorded in CALLS (test-only, removed after)."""
    get_system("queue")
    register_system(System(
        name=SYSTEM, summary="the queue, counting its evaluations",
        roles=(Role("queue", "queue", "mm1"),),
        metrics=tuple(Metric(m, m.replace("_", " ")) for m in (
            "utilization", "mean_wait_s", "mean_sojourn_s", "mean_queue_length",
            "throughput_per_s")),
        analytical=_counting))
    try:
        yield
    finally:
        SYSTEMS.remove(SYSTEM)


STUDY = f"""
name = "reuse"
system = "{SYSTEM}"
trials = 30
seed = 5
sampler = {{ name = "random" }}
specs = {{ queue = "mm1" }}
set = ["queue.arrival_rate_per_s=2", "queue.mean_service_s=0.6"]
exhaustive = false
[space]
"queue.servers" = {{ low = 1, high = 3 }}
"queue.service_distribution" = {{ choices = ["exponential", "deterministic"] }}
[[objectives]]
metric = "mean_wait_s"
direction = "minimize"
[[objectives]]
metric = "utilization"
direction = "maximize"
[[constraints]]
metric = "mean_sojourn_s"
max = 3.0
"""


def test_small_discrete_space_makes_fewer_evaluations_than_trials(tmp_path: Path) -> None:
    path = tmp_path / "reuse.toml"
    path.write_text(textwrap.dedent(STUDY))
    out = tmp_path / "out"
    CALLS.clear()
    assert main(["sweep", str(path), "--out", str(out), "--no-progress", "--no-figures"]) == 0
    # 6 designs (one infeasible: 1 server at utilisation 1.2), 30 trials, each design evaluated
    # once
    assert len(CALLS) == len(set(CALLS)) <= 6
    study = optuna.load_study(study_name="reuse", storage=open_storage(str(out / "study.journal")))
    trials = study.get_trials()
    assert len(trials) == 30  # the budget counts reused trials like any other
    by_number = {t.number: t for t in trials}
    reused = [t for t in trials if "reused_from" in t.user_attrs]
    assert len(reused) == 30 - len(CALLS)
    for t in reused:
        first = by_number[t.user_attrs["reused_from"]]
        assert "reused_from" not in first.user_attrs and first.number < t.number
        assert first.params == t.params and first.state == t.state
        assert t.values == first.values
        assert t.user_attrs.get("metrics") == first.user_attrs.get("metrics")
        assert t.user_attrs["run"]["seed"] == first.user_attrs["run"]["seed"]
        assert t.user_attrs["run"]["eval_s"] == 0.0
        if first.state == optuna.trial.TrialState.PRUNED:
            assert t.user_attrs["reason"] == first.user_attrs["reason"]
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in reused)

    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 30 and table["reused_from"].notna().sum() == len(reused)
    pareto = pd.read_csv(out / "pareto.csv")  # each design once
    assert not pareto.duplicated(["queue.servers", "queue.service_distribution"]).any()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["evaluations"] == {"finished": 30, "reused": len(reused),
                                   "evaluations": len(CALLS)}
    assert f"evaluations: {len(CALLS)} for 30 completed or pruned trials" in (
        out / "report.md").read_text()
    # the dashboard names the objectives after their metrics
    assert study.metric_names == ["mean_wait_s", "utilization"]
