"""The systolic array generator: bit-exact against numpy, cycle-exact against its timing model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.systolic import timing
from hwsim.systolic.array import SystolicArray, gemm_reference, simulate_gemm
from hwsim.systolic.spec import SystolicSpec

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


@st.composite
def cases(draw):
    width = draw(st.integers(2, 12))
    signed = draw(st.booleans())
    spec = SystolicSpec(
        rows=draw(st.integers(2, 4)), cols=draw(st.integers(1, 4)), operand_width=width,
        acc_width=draw(st.integers(2 * width, 2 * width + 8)), signed=signed,
        dataflow=draw(st.sampled_from(["ws", "os", "is"])),
    )
    m, n, k = (draw(st.integers(1, 6)) for _ in range(3))
    lo, hi = _range(width, signed)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.integers(lo, hi, (m, k), endpoint=True)
    b = rng.integers(lo, hi, (k, n), endpoint=True)
    return spec, a, b


@FAST
@given(cases())
def test_random_gemm_bit_and_cycle_exact(case) -> None:
    spec, a, b = case
    c, trace = simulate_gemm(spec, a, b)
    assert (c == gemm_reference(a, b, spec)).all()
    m, k = a.shape
    n = b.shape[1]
    assert trace.span_cycles == timing.compute_cycles(spec.dataflow, spec.rows, spec.cols,
                                                      m, n, k)


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_each_fold_takes_the_model_cycles(dataflow: str) -> None:
    """Folds run back to back: fold f's last output leaves in cycle (f + 1) * fold_cycles - 1."""
    spec = SystolicSpec(rows=3, cols=2, operand_width=8, acc_width=24, dataflow=dataflow)
    rng = np.random.default_rng(1)
    m, n, k = 7, 5, 4
    a = rng.integers(-128, 127, (m, k), endpoint=True)
    b = rng.integers(-128, 127, (k, n), endpoint=True)
    c, trace = simulate_gemm(spec, a, b)
    assert (c == gemm_reference(a, b, spec)).all()
    s_r, s_c, t = timing.mapping(dataflow, m, n, k)
    fold = timing.fold_cycles(spec.rows, spec.cols, t)
    n_folds = int(timing.folds(spec.rows, spec.cols, s_r, s_c))
    per = spec.rows if dataflow == "os" else t  # output beats per fold (is: T = N columns)
    outs = trace.out_cycles["o"]
    assert len(outs) == n_folds * per
    for f in range(n_folds):
        assert outs[(f + 1) * per - 1] == (f + 1) * fold - 1
    assert trace.first_input_cycle == 0


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("signed", [True, False])
def test_extreme_values_wrap_like_numpy(dataflow: str, signed: bool) -> None:
    """Maximum magnitudes everywhere with the narrowest accumulator: sums wrap identically."""
    width = 8
    spec = SystolicSpec(rows=2, cols=3, operand_width=width, acc_width=2 * width,
                        signed=signed, dataflow=dataflow)
    lo, hi = _range(width, signed)
    k = 5
    for fill_a, fill_b in ((lo, lo), (hi, hi), (lo, hi)):
        a = np.full((3, k), fill_a)
        b = np.full((k, 4), fill_b)
        c, _ = simulate_gemm(spec, a, b)
        ref = gemm_reference(a, b, spec)
        exact = (a.astype(object) @ b.astype(object))
        assert (c == ref).all()
        if fill_a == fill_b == lo and signed:
            assert (ref != exact).any()  # the test really exercises wrap-around


def test_wide_operands() -> None:
    spec = SystolicSpec(rows=2, cols=2, operand_width=32, acc_width=64, signed=True,
                        dataflow="ws")
    a = np.array([[-(2**31), 2**31 - 1], [2**31 - 1, -(2**31)]], dtype=object)
    b = np.array([[-(2**31), -(2**31)], [2**31 - 1, -(2**31)]], dtype=object)
    c, _ = simulate_gemm(spec, a, b)
    assert (c == gemm_reference(a, b, spec)).all()


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_backpressure_and_gaps(dataflow: str) -> None:
    """Random gaps on the inputs and random back-pressure on the output change only timing."""
    spec = SystolicSpec(rows=3, cols=3, operand_width=6, acc_width=16, dataflow=dataflow)
    rng = np.random.default_rng(7)
    a = rng.integers(-32, 31, (5, 4), endpoint=True)
    b = rng.integers(-32, 31, (4, 5), endpoint=True)
    model = timing.compute_cycles(dataflow, 3, 3, 5, 5, 4)
    for seed in range(3):
        c, trace = simulate_gemm(spec, a, b, p_valid=0.6, p_ready=0.4, seed=seed)
        assert (c == gemm_reference(a, b, spec)).all()
        assert trace.span_cycles > model  # stalls only ever add cycles


def test_signature_is_explicit() -> None:
    dut = SystolicArray(SystolicSpec(rows=4, cols=3, operand_width=8, acc_width=20))
    dut._MustUse__silence = True  # inspected, never elaborated
    members = dict(dut.signature.members)
    assert set(members) == {"a", "b", "o"}
    assert len(dut.a.payload.as_value()) == 4 * 8 + 1
    assert len(dut.b.payload.as_value()) == 3 * 8
    assert len(dut.o.payload.as_value()) == 3 * 20 + 1


def test_spec_checks() -> None:
    with pytest.raises(ValueError, match="acc_width"):
        SystolicSpec(operand_width=16, acc_width=24)
