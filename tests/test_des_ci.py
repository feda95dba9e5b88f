"""DES numbers with their uncertainty: --replications N runs N seeds in parallel processes and
gives every metric a 95% confidence interval, in the text and in --json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.des.stats import replication_ci

SMALL = ["--set", "queue.customers=4000", "--set", "queue.warmup_customers=400"]


def test_replication_ci():
    mean, half = replication_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and half == pytest.approx(3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2)
    assert replication_ci([5.0, 5.0]) == (5.0, 0.0)
    m, h = replication_ci([7.0, math.nan])
    assert m == 7.0 and math.isnan(h)


def test_replications_give_intervals(capsys):
    assert main(["-q", "simulate", "queue", "--fidelity", "des", "--replications", "3",
                 "--json", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["replications"] == 3 and out["seeds"] == [0, 1, 2]
    assert set(out["ci95"]) == set(out["metrics"])
    assert out["ci95"]["mean_wait_s"] > 0 and out["ci95"]["customers"] == 0
    assert "Student t" in out["ci_method"]
    # the exact M/M/1 mean wait (1 s) within a few half-widths of the estimate
    assert abs(out["metrics"]["mean_wait_s"] - 1.0) < 4 * out["ci95"]["mean_wait_s"] + 0.2
    assert main(["-q", "simulate", "queue", "--fidelity", "des", "--replications", "2",
                 *SMALL]) == 0
    text = capsys.readouterr().out
    assert "± 95%" in text and "mean of 2 replications" in text


@pytest.mark.parametrize("argv,needle", [
    (["--replications", "3"], "needs --fidelity des"),
    (["--fidelity", "des", "--replications", "2", "--trace", "t.json"], "drop --trace"),
])
def test_replications_misuse(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "queue", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_replications_must_be_positive(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["simulate", "queue", "--replications", "0"])
    assert ei.value.code == 2 and "whole number >= 1" in capsys.readouterr().err
