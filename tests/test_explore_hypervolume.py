"""The hypervolume ratio against the exact front, and each sampled design's distance to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwsim.explore import exhaustive as exh
from hwsim.explore.study import study_from_dict

OBJ = ["mean_wait_s", "mean_sojourn_s"]


def study():
    return study_from_dict({
        "system": "queue", "specs": {"queue": "mm1"},
        "space": {"queue.servers": {"low": 1, "high": 4}},
        "objectives": [{"metric": m, "direction": "minimize"} for m in OBJ],
    }, "<test>", validate=False)


def narrow_front_case() -> tuple[exh.ExhaustiveResult, np.ndarray]:
    """A narrow exact front (each objective spans 1 % of its value) in a wide feasible space."""
    t = np.linspace(0.0, 1.0, 11)
    front = np.column_stack([100 + t, 51 - t])
    rng = np.random.default_rng(3)
    others = np.column_stack([rng.uniform(102, 300, 400), rng.uniform(52, 150, 400)])
    vals = np.vstack([front, others])
    table = pd.DataFrame(vals, columns=OBJ)
    table["feasible"] = True
    table["pareto"] = exh.pareto_mask(vals, ["minimize"] * 2)
    assert table["pareto"].sum() == len(front)
    return exh.ExhaustiveResult(table=table, seconds=0.0, method="test"), front


def test_designs_near_the_front_read_a_high_ratio_and_their_gap() -> None:
    s = study()
    res, front = narrow_front_case()
    near = front * 1.07  # every design 7 % worse than a front design in both objectives
    # with the reference at 10 % of the front's range beyond its nadir (the old definition),
    # they add nothing:
    new = exh.Normaliser.from_front(front, s.directions)
    old = exh.Normaliser(new.ideal, new.nadir, new.directions, np.full(2, 1.1))
    assert exh.hypervolume(near, old) == 0.0

    c = exh.compare(s, res, near, np.ones(len(near), dtype=bool))
    assert 0.3 < c["hypervolume_ratio"] < 1.0
    assert c["front_gap_rel_max"] == pytest.approx(0.07)
    assert c["front_gap_rel_median"] == pytest.approx(0.07)
    assert c["front_gap_max"] > 1  # several times the narrow front's range
    # the exact front itself reads 1 and no gap; farther designs read less
    on = exh.compare(s, res, front, np.ones(len(front), dtype=bool))
    assert on["hypervolume_ratio"] == pytest.approx(1.0)
    assert on["front_gap_max"] == 0.0 and on["front_gap_rel_max"] == 0.0
    far = exh.compare(s, res, front * 1.3, np.ones(len(front), dtype=bool))
    assert far["hypervolume_ratio"] < c["hypervolume_ratio"]
    assert far["front_gap_rel_max"] == pytest.approx(0.3)
    # a design up to 25 % worse than the front's worst value in each objective still counts
    nadir = front.max(axis=0)
    inside = exh.compare(s, res, nadir[None] * 1.24, np.ones(1, dtype=bool))
    outside = exh.compare(s, res, nadir[None] * 1.26, np.ones(1, dtype=bool))
    assert inside["hypervolume_ratio"] > 0 and outside["hypervolume_ratio"] == 0


def test_front_gaps_match_the_definition() -> None:
    """The additive epsilon indicator, against a direct loop over front designs."""
    rng = np.random.default_rng(8)
    q = rng.random((30, 3)) + 0.5
    p = rng.random((20, 3)) + 0.5
    dirs = ["minimize", "maximize", "minimize"]
    norm = exh.Normaliser.from_front(q, dirs)
    gap, rel = exh.front_gaps(p, q, norm)
    pn, qn = norm(p), norm(q)
    pm, qm = exh.to_min(p, dirs), exh.to_min(q, dirs)
    for i in range(len(p)):
        assert gap[i] == pytest.approx(max(0.0, max(min(pn[i] - qn[k]) for k in range(len(q)))))
        assert rel[i] == pytest.approx(max(0.0, max(min((pm[i] - qm[k]) / abs(qm[k]))
                                                    for k in range(len(q)))))
    # a design dominated by no front design has no gap
    assert gap[exh.pareto_mask(np.vstack([q, p]), dirs)[len(q):]].max(initial=0.0) == 0.0
