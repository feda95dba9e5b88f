"""hwsim sweep / hwsim report in one process: outputs, resume, infeasible and failing trials,
exhaustive search, Pareto and hypervolume, multi-fidelity refinement."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from hwsim.batch import REASON, BatchModel
from hwsim.cli import main
from hwsim.explore import exhaustive as exh
from hwsim.queueing.analytical import VECTOR_KEYS, block
from hwsim.system import SYSTEMS, Metric, Role, System, get_system, register_system

TOY = "explore-toy"


def _toy_block(inputs, points, n):
    """The queue's block, with a bug at 3 servers: a point evaluated alone (a trial) raises,
    a grid gives NaN there."""
    out = block(inputs, points, n)
    bad = np.broadcast_to(np.asarray(points.get("queue.servers", inputs["queue"].servers)) == 3,
                          (n,))
    if n == 1 and bad[0]:
        raise RuntimeError("toy evaluator bug at 3 servers")
    out = {k: np.where(bad, np.nan, v) if k != REASON else v for k, v in out.items()}
    return out


def _toy_des(inputs, *, seed: int = 0, trace=None):
    m = get_system(TOY).analytical(inputs)
    return {k: v * (1.1 if k == "mean_wait_s" else 1.0) for k, v in m.items()}


@pytest.fixture(scope="module", autouse=True)
def toy_system() -> Iterator[None]:
    """A test-only system, registered while this module's tests run and removed after."""

    get_system("queue")  # load the built-in systems first
    register_system(System(
        name=TOY, summary="the queue with a fake DES (+10 % wait) and a bug at 3 servers",
        roles=(Role("queue", "queue", "mm1"),),
        metrics=tuple(Metric(m, m.replace("_", " ")) for m in (
            "utilization", "mean_wait_s", "mean_sojourn_s", "mean_queue_length",
            "throughput_per_s")),
        batch=BatchModel(VECTOR_KEYS, _toy_block), des=_toy_des,
    ))
    try:
        yield
    finally:
        SYSTEMS.remove(TOY)

STUDY = """
name = "toy"
description = "a <script>alert('x')</script> & test"
system = "{system}"
trials = {trials}
seed = 7
sampler = {{ name = "{sampler}" }}
specs = {{ queue = "mm1" }}
set = ["queue.arrival_rate_per_s=2"]
[space]
"queue.servers" = {{ low = 1, high = 6 }}
"queue.mean_service_s" = {{ low = 0.2, high = 2.0, step = 0.2 }}
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
{extra}
"""


def study_file(tmp_path: Path, *, system: str = "queue", trials: int = 20,
               sampler: str = "tpe", extra: str = "") -> Path:
    p = tmp_path / "toy.toml"
    p.write_text(textwrap.dedent(STUDY.format(system=system, trials=trials, sampler=sampler,
                                              extra=extra)))
    return p


def journal_study(out: Path) -> optuna.Study:
    from hwsim.explore.storage import open_storage

    return optuna.load_study(study_name="toy", storage=open_storage(str(out / "study.journal")))


def test_sweep_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = study_file(tmp_path, system=TOY, trials=40,
                      extra="[refine]\nfidelity = \"des\"\nmax_points = 6\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "hypervolume vs exact front" in printed
    for name in ("trials.parquet", "trials.csv", "pareto.csv", "meta.json", "report.md",
                 "report.html", "exhaustive.parquet", "exact_pareto.csv", "hypervolume.csv",
                 "refine.csv", "study.journal"):
        assert (out / name).is_file(), name
    for fig in ("pareto_front", "parallel_coordinates", "importances", "objective_vs_params",
                "hypervolume", "fidelity"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{fig}.{ext}").stat().st_size > 1000, (fig, ext)

    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 40 and trials["trial"].is_unique
    for col in ("state", "queue.servers", "queue.mean_service_s", "mean_wait_s", "utilization",
                "violation:mean_sojourn_s<=3", "duration_s", "seed", "reason", "feasible",
                "pareto"):
        assert col in trials, col
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED", "FAIL"}
    # an infeasible design (utilisation >= 1) is pruned with its reason; the sweep went on
    pruned = trials[trials["state"] == "PRUNED"]
    assert (pruned["reason"].str.contains("utilisation")).all()
    # an evaluator error is a failed trial with its reason, counted in the budget
    failed = trials[trials["state"] == "FAIL"]
    assert (failed["queue.servers"] == 3).all()
    assert failed["reason"].str.contains("toy evaluator bug").all()
    assert len(pd.read_csv(out / "trials.csv")) == 40

    pareto = pd.read_csv(out / "pareto.csv")
    assert len(pareto) >= 1 and pareto["feasible"].all()
    meta = json.loads((out / "meta.json").read_text())
    for key in ("versions", "git", "seed", "command", "storage", "budget", "exhaustive"):
        assert key in meta, key
    assert meta["versions"]["optuna"] == optuna.__version__ and meta["seed"] == 7
    assert meta["command"][:2] == ["hwsim", "sweep"] or meta["command"][0] == "hwsim"
    assert 0 < meta["exhaustive"]["hypervolume_ratio"] <= 1 + 1e-9

    refine = pd.read_csv(out / "refine.csv")
    assert (refine["origin"] == "pareto").any()
    ok = refine["rel_diff:mean_wait_s"].dropna()
    assert len(ok) and np.allclose(ok, 0.1)

    page = (out / "report.html").read_text()
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    assert "<svg" in page and "<img" not in page  # figures inline, self-contained
    assert "queue: mean service [s] (queue.mean_service_s)" in page  # tables carry units
    md = (out / "report.md").read_text()
    assert "hypervolume" in md and "Pareto set" in md

    # hwsim report rebuilds everything from the storage alone
    for f in ("report.html", "trials.csv", "pareto.csv"):
        (out / f).unlink()
    assert main(["report", str(out), "--no-figures"]) == 0
    assert (out / "report.html").is_file() and len(pd.read_csv(out / "trials.csv")) == 40


def test_resume_adds_exactly_the_difference(tmp_path: Path) -> None:
    path = study_file(tmp_path, trials=30)
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--no-progress", "--no-report"]
    assert main([*args, "--trials", "12"]) == 0
    first = {t.number: t for t in journal_study(out).trials}
    assert len(first) == 12
    assert main([*args, "--trials", "20"]) == 0
    trials = journal_study(out).trials
    assert len(trials) == 20
    for t in trials[:12]:
        assert t.params == first[t.number].params and t.state == first[t.number].state
    assert main([*args, "--trials", "20"]) == 0  # already there: adds nothing
    assert len(journal_study(out).trials) == 20


def test_seeded_sweep_is_reproducible(tmp_path: Path) -> None:
    path = study_file(tmp_path, trials=15)
    for d in ("a", "b"):
        assert main(["sweep", str(path), "--out", str(tmp_path / d), "--no-progress",
                     "--no-report"]) == 0
    a = [t.params for t in journal_study(tmp_path / "a").trials]
    b = [t.params for t in journal_study(tmp_path / "b").trials]
    assert a == b


@pytest.mark.parametrize("sampler", ["nsga2", "random", "qmc", "grid"])
def test_samplers(tmp_path: Path, sampler: str) -> None:
    path = study_file(tmp_path, trials=8, sampler=sampler)
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--no-progress",
                 "--no-report"]) == 0
    assert len(journal_study(tmp_path / "o").trials) == 8


def test_changed_space_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = study_file(tmp_path, trials=3)
    out = tmp_path / "o"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress", "--no-report"]) == 0
    path.write_text(path.read_text().replace("high = 6", "high = 7"))
    assert main(["sweep", str(path), "--out", str(out), "--no-progress", "--no-report"]) == 2
    assert "different space" in capsys.readouterr().err


def test_pareto_mask_and_hypervolume() -> None:
    rng = np.random.default_rng(1)
    v = rng.random((300, 2))
    mask = exh.pareto_mask(v, ["minimize", "maximize"])
    for i in range(len(v)):
        dominated = np.any((v[:, 0] <= v[i, 0]) & (v[:, 1] >= v[i, 1])
                           & ((v[:, 0] < v[i, 0]) | (v[:, 1] > v[i, 1])))
        assert mask[i] == (not dominated)
    front = v[mask]
    norm = exh.Normaliser.from_front(front, ["minimize", "maximize"])
    hv = exh.hypervolume(front, norm)
    assert exh.hypervolume(v, norm) == pytest.approx(hv)
    assert 0 < exh.hypervolume(front[::2], norm) < hv
    # two points in a unit square: the ideal corner alone is the whole box, whose far corner is
    # a quarter of the nadir's value (1) beyond it (more than 10 % of the range, also 1)
    sq = exh.Normaliser.from_front(np.array([[0.0, 1.0], [1.0, 0.0]]), ["minimize"] * 2)
    assert exh.hypervolume(np.array([[0.0, 0.0]]), sq) == pytest.approx(1.25 * 1.25)
    # a nadir at 0: the 10 % range margin decides; a nadir of 90 over a range of 100: 22.5 %
    at0 = exh.Normaliser.from_front(np.array([[0.0, 1.0], [1.0, 0.0]]) - 1, ["minimize"] * 2)
    assert at0.reference == pytest.approx([1.1, 1.1])
    far = exh.Normaliser.from_front(np.array([[0.0, 1.0], [1.0, 0.0]]) * 100 - 10,
                                    ["minimize"] * 2)
    assert far.reference == pytest.approx([1.225, 1.225])


def test_exhaustive_front_is_exact(tmp_path: Path) -> None:
    from hwsim.explore.study import load_study

    study = load_study(study_file(tmp_path))
    res = exh.run_exhaustive(study)
    assert res.method == "analytical_batch" and len(res.table) == 6 * 10 * 2
    t = res.table
    feas = t[t["feasible"]]
    v = feas[["mean_wait_s", "utilization"]].to_numpy()
    for i, row in enumerate(v):
        dom = np.any((v[:, 0] <= row[0]) & (v[:, 1] >= row[1])
                     & ((v[:, 0] < row[0]) | (v[:, 1] > row[1])))
        assert feas["pareto"].iloc[i] == (not dom)
