"""The shared systolic timing model (hwsim.systolic.timing): SCALE-Sim's compute cycles."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim import specs
from hwsim.errors import InputError
from hwsim.systolic import timing as systolic


def test_fold_formula() -> None:
    # 2 R + C + T - 2 (Samajdar et al. ISPASS 2020, eq. 1)
    assert systolic.fold_cycles(8, 8, 64) == 2 * 8 + 8 + 64 - 2
    assert systolic.fold_cycles(32, 16, 1) == 79


@pytest.mark.parametrize(
    ("dataflow", "expected"),
    [
        # 32 x 32 array, M = 100, N = 70, K = 50
        ("os", 4 * 3 * (64 + 32 + 50 - 2)),  # S_R = M: ceil(100/32) = 4; S_C = N: 3; T = K
        ("ws", 2 * 3 * (64 + 32 + 100 - 2)),  # S_R = K: 2; S_C = N: 3; T = M
        ("is", 2 * 4 * (64 + 32 + 70 - 2)),  # S_R = K: 2; S_C = M: 4; T = N
    ],
)
def test_compute_cycles_by_hand(dataflow: str, expected: int) -> None:
    assert systolic.compute_cycles(dataflow, 32, 32, 100, 70, 50) == expected


def test_ws_matches_scalesim_v2_construction() -> None:
    """SCALE-Sim v2's weight-stationary demand matrix per fold: R rows of weight load, T rows of
    inputs, C - 1 rows of drain, then a skew of R - 1 rows; folds concatenated."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        r, c, m, n, k = (int(x) for x in rng.integers(1, 40, 5))
        per_fold = (r + m + (c - 1)) + (r - 1)
        n_folds = -(-k // r) * -(-n // c)
        assert systolic.compute_cycles("ws", r, c, m, n, k) == n_folds * per_fold


def test_vectorised_and_utilisation() -> None:
    rows = np.array([4, 8, 16, 32])
    cyc = systolic.compute_cycles("ws", rows, rows, 256, 256, 256)
    assert cyc.shape == (4,)
    scalar = [systolic.compute_cycles("ws", int(r), int(r), 256, 256, 256) for r in rows]
    assert cyc.tolist() == scalar
    util = systolic.utilization("ws", rows, rows, 256, 256, 256)
    assert ((util > 0) & (util <= 1)).all()
    # a big GEMM on a small array approaches full utilisation; a tiny one does not
    assert systolic.utilization("os", 4, 4, 4096, 4096, 4096) > 0.99
    assert systolic.utilization("os", 32, 32, 1, 1, 1) < 0.01


def test_unknown_dataflow() -> None:
    with pytest.raises(InputError, match="unknown dataflow"):
        systolic.compute_cycles("rs", 4, 4, 4, 4, 4)


def test_gemm_spec_files_load() -> None:
    for path in specs.spec_files("gemm"):
        spec = specs.load_spec(path, kind="gemm")
        assert spec.macs == spec.m * spec.n * spec.k


def test_against_scalesim_3() -> None:
    """SCALE-Sim 3.0.0's own numbers (hwsim/systolic/data/scalesim_reference.py): what it
    reports ("Total Cycles", the index of the last cycle) is predicted exactly; hwsim's count of
    working cycles is that plus one for ws and is (the demand-matrix length), and for os also R
    cycles per fold more (hwsim drains the accumulators after each fold)."""
    import csv
    from pathlib import Path

    path = Path(systolic.__file__).parent / "data" / "scalesim_3_compute_cycles.csv"
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert len(rows) >= 60
    for r in rows:
        df = r["dataflow"]
        args = [int(r[k]) for k in ("rows", "cols", "m", "n", "k")]
        reported, length = int(r["scalesim_cycles"]), int(r["demand_rows"])
        assert reported == length - 1, r
        assert systolic.scalesim_cycles(df, *args) == reported, r
        model = systolic.compute_cycles(df, *args)
        if df == "os":
            s_r, s_c, _ = systolic.mapping(df, args[2], args[3], args[4])
            assert model - length == systolic.folds(args[0], args[1], s_r, s_c) * args[0]
        else:
            assert model == length, r


def test_fold_traffic_by_hand() -> None:
    # os: 4 x 10 A tile + 10 x 3 B tile in (int8), 4 x 3 int32 results out
    assert systolic.fold_traffic_bytes("os", 4, 3, 10, 8, 32) == (70.0, 48.0)
    # ws: 4 x 3 weights + 10 x 4 A rows in (int16), 10 x 3 int32 partial sums out
    assert systolic.fold_traffic_bytes("ws", 4, 3, 10, 16, 32) == (104.0, 120.0)
