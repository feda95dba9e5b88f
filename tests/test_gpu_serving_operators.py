"""gpu-serving's operator models against the mechanisms they stand for: the embedding gather's
two PyTorch kernels, phi-2's parallel residual, GELU and LayerNorm (and their fit split), and
Vidur's whole-microsecond recording."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hwsim.gpu_serving import calibration, operators
from hwsim.gpu_serving import kernels as kn

GATHER = SimpleNamespace(small_index_max=16, small_floor_us=2.0, small_per_index_us=0.7,
                         floor_us=3.0, floor_ns_per_element=0.05, bandwidth_efficiency=0.2,
                         smoothing=1.5)


def test_embedding_small_index_kernel_is_per_token_and_width_free():
    t = np.arange(1, 17, dtype=float)
    for d in (2560.0, 8192.0):
        s = kn.embedding_s(t, d, 4 * t * d, 2e12, GATHER) * 1e6
        assert s == pytest.approx(2.0 + 0.7 * t)


def test_embedding_large_index_kernel_is_the_elementwise_model():
    t = np.array([17.0, 32.0, 4096.0])
    d = 4096.0
    got = kn.embedding_s(t, d, 4 * t * d, 2e12, GATHER)
    assert got == pytest.approx(kn.elementwise_s(d, 4 * t * d, 2e12, GATHER))
    assert kn.embedding_s(0.0, d, 0.0, 2e12, GATHER) == 0.0


def test_without_a_small_index_kernel_the_gather_is_one_kernel():
    one = SimpleNamespace(**{**vars(GATHER), "small_index_max": 0})
    t = np.array([1.0, 8.0, 64.0])
    assert kn.embedding_s(t, 4096.0, 8192.0 * t, 2e12, one) == pytest.approx(
        kn.elementwise_s(4096.0, 8192.0 * t, 2e12, one))


@pytest.mark.parametrize("t", [1.3, 2.05, 2.5, 3.9, 7.02])
def test_recorded_time_is_the_mean_of_whole_microsecond_samples(t):
    rng = np.random.default_rng(1)
    samples = np.floor(t + rng.normal(0.0, 0.12, 200_000))
    samples = samples[samples > 0]  # Vidur drops a zero time
    assert operators.recorded_us(t, 0.12) == pytest.approx(samples.mean(), abs=0.01)


def test_recorded_time_keeps_large_times():
    t = np.array([50.3, 400.8])
    assert np.all(np.abs(operators.recorded_us(t, 0.1) - (t - 0.5)) < 0.51)


@pytest.mark.parametrize("gpu", ["a100-sxm-80gb", "h100-sxm-80gb"])
def test_timing_jitter_is_read_off_the_means(gpu):
    assert 0.05 < operators.timing_jitter_us(gpu) < 0.2


def test_phi2_adds_two_binary_adds_and_runs_its_own_gelu_and_layernorm():
    gpu = "a100-sxm-80gb"
    cal = calibration.load_calibration(gpu)
    rows = operators.operator_rows(gpu)
    assert rows.parallel[rows.model == "microsoft/phi-2"].all()
    assert not rows.parallel[rows.model == "meta-llama/Llama-2-7b-hf"].any()
    add = operators.table_rows(gpu, "add")
    phi = add.where(add.model == "microsoft/phi-2")
    width, nbytes = operators.elementwise_shape(phi)
    assert operators.predict_ms(phi, "add", cal.add) == pytest.approx(
        2e3 * kn.elementwise_s(width, nbytes, 2.039e12, cal.add))
    # the ungated activation (GELU) and phi-2's norm (LayerNorm) are their own tables
    assert (operators.table_rows(gpu, "activation").gated > 0).all()
    gelu = operators.table_rows(gpu, "gelu")
    assert len(gelu.ms) and (gelu.gated == 0).all()
    width, nbytes = operators.elementwise_shape(gelu)
    assert operators.predict_ms(gelu, "gelu", cal.gelu) == pytest.approx(
        1e3 * kn.elementwise_s(width, nbytes, 2.039e12, cal.gelu))
    norm = operators.table_rows(gpu, "norm")
    assert not np.isin(norm.model, operators.LAYERNORM_MODELS).any()
    ln = operators.table_rows(gpu, "layernorm")
    assert len(ln.ms) and np.isin(ln.model, operators.LAYERNORM_MODELS).all()


@pytest.mark.parametrize("gpu", ["a100-sxm-80gb", "h100-sxm-80gb"])
def test_own_kernel_split_is_every_other_token_count_and_disjoint(gpu):
    for table in operators.OWN_KERNEL_TABLES:
        rows = operators.table_rows(gpu, table)
        tokens = sorted(set(rows.tokens))
        assert tuple(tokens[::2]) == operators.OWN_KERNEL_FIT_TOKENS
        fit = set(rows.tokens[rows.fitted])
        held = set(rows.tokens[~rows.fitted])
        assert fit == set(operators.OWN_KERNEL_FIT_TOKENS) and held == set(tokens[1::2])
        assert not fit & held
        # deterministic: the same rows every time
        again = operators.table_rows(gpu, table)
        assert (again.fitted == rows.fitted).all()
    # the fit models' rows stay as they were: no own-kernel row, all fitted
    rows = operators.operator_rows(gpu)
    fitm = np.isin(rows.model, operators.FIT_MODELS)
    assert not np.isin(rows.table[fitm], operators.OWN_KERNEL_TABLES).any()
    assert rows.fitted[fitm].all()


@pytest.mark.parametrize("gpu", ["a100-sxm-80gb", "h100-sxm-80gb"])
def test_layernorm_is_never_faster_than_its_bytes_at_peak_and_floors_above_rmsnorm(gpu):
    cal = calibration.load_calibration(gpu)
    bw = calibration.load_gpu(gpu).hbm_bandwidth_GBps * 1e9
    rows = operators.table_rows(gpu, "layernorm")
    _, nbytes = operators.elementwise_shape(rows)
    t = operators.predict_ms(rows, "layernorm", cal.layernorm) * 1e-3
    assert np.all(t >= nbytes / bw)
    assert cal.layernorm.bandwidth_efficiency <= 1.0 and cal.gelu.bandwidth_efficiency <= 1.0
    tokens = np.array([1.0, 64.0, 512.0, 4096.0])
    d = 2560.0
    ln = kn.elementwise_s(d, 4 * tokens * d, bw, cal.layernorm)
    rms = kn.elementwise_s(d, 4 * tokens * d, bw, cal.norm)
    assert ln[0] > rms[0]  # the Welford chain's floor is above the RMSNorm kernel's
    assert cal.layernorm.floor_us > cal.norm.floor_us + d * cal.norm.floor_ns_per_element * 1e-3
    assert np.all(ln >= 4 * tokens * d / bw)


@pytest.mark.parametrize("gpu", ["a100-sxm-80gb", "h100-sxm-80gb"])
def test_own_kernel_fits_leave_the_fit_models_tables_alone(gpu):
    """Adding phi-2's kernels does not move a table fitted on the fit models."""
    fit = calibration.operator_fit(gpu)
    cal = calibration.load_calibration(gpu)
    for table in ("norm", "add", "activation", "rope"):
        for key, value in fit[table].items():
            assert getattr(getattr(cal, table), key) == pytest.approx(value, rel=2e-3,
                                                                      abs=1e-6)
