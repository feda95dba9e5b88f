"""Sparse weights in gpu-serving (mapping.weight_format): encoded bytes from the encoders, kernel
times from the SpMM models and never below their rooflines, the memory check on the encoded
sizes, one evaluator path for the batch, the scalar and the DES."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.sparse import format as fmt
from hwsim.system import get_system

E2E = ["llm=opt-66b", "mapping=flash-llm-tp2-s80", "traffic=flash-llm-e2e"]


def _model(overrides: dict | None = None, spec_args=E2E) -> tuple[RooflineStepModel, object]:
    s = get_system("gpu-serving")
    inputs = s.resolve(spec_args, overrides or {})
    return RooflineStepModel.build(inputs["device"], inputs["calibration"], inputs["llm"],
                                   inputs["mapping"]), inputs


def _exact_tiles(m: int, k: int, per_tile: int, seed: int = 0) -> sp.csr_array:
    """A matrix with exactly ``per_tile`` nonzeros in every 128 x 64 format tile."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for t0 in range(0, m, fmt.TILE_ROWS):
        for c0 in range(0, k, fmt.TILE_COLS):
            pos = rng.choice(fmt.TILE_ELEMS, per_tile, replace=False)
            rows.append(t0 + pos // fmt.TILE_COLS)
            cols.append(c0 + pos % fmt.TILE_COLS)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((rng.uniform(0.5, 1.0, r.size), (r, c)), shape=(m, k))


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9])
def test_tiled_csl_bytes_are_the_encoders(sparsity):
    model, _ = _model({"mapping.weight_sparsity": sparsity})
    k = model.kernels
    m, kk = 256, 192
    per_tile = int(np.ceil((1 - sparsity) * fmt.TILE_ELEMS - 1e-9))
    enc = fmt.encode(_exact_tiles(m, kk, per_tile))
    assert float(k.encoded_bytes(m, kk)) == enc.nbytes
    assert np.allclose(fmt.decode(enc).toarray() != 0, _exact_tiles(m, kk, per_tile).toarray()
                       != 0)


def test_two_four_bytes_are_the_encoders():
    model, _ = _model({"mapping.weight_format": "2:4", "mapping.weight_sparsity": 0.5})
    rng = np.random.default_rng(1)
    a = rng.standard_normal((128, 64)).astype(np.float16)
    enc = fmt.two_four_encode(a)
    assert float(model.kernels.encoded_bytes(128, 64)) == enc.nbytes
    back = fmt.two_four_decode(enc)
    assert ((back != 0).reshape(128, 16, 4).sum(-1) == 2).all()  # two of every four kept
    kept = np.abs(back) > 0
    # the kept values are the two largest of each group, unchanged
    assert np.array_equal(back[kept], a[kept])
    small = np.sort(np.abs(a.astype(np.float32)).reshape(128, 16, 4), -1)[..., :2]
    big = np.sort(np.abs(back.astype(np.float32)).reshape(128, 16, 4), -1)[..., 2:]
    assert (big >= small).all()


def test_weights_on_a_device_are_the_encoded_shards():
    dense, _ = _model({"mapping.weight_format": "dense", "mapping.weight_sparsity": 0.0})
    sparse, _ = _model()
    layers = sparse.llm.layers
    shards = 0.0
    for g in sparse.shape.gemms:
        n, k = sparse.kernels.local_shape(g, 2)
        shards += float(fmt.expected_tiled_csl_bytes(n, k, 0.2)) - float(n * k * 2)
    wd = float(dense.kernels.weight_bytes(layers, True, True, 1))
    ws = float(sparse.kernels.weight_bytes(layers, True, True, 1))
    assert ws == pytest.approx(wd + layers * shards, rel=1e-12)
    assert 0.35 < ws / wd < 0.45  # 80% sparsity: 4 B per kept weight, 0.8 B per weight


@pytest.mark.parametrize("fmt_name,sparsity", [("tiled-csl", 0.5), ("tiled-csl", 0.8),
                                               ("tiled-csl", 0.95), ("2:4", 0.5)])
def test_sparse_never_faster_than_its_roofline(fmt_name, sparsity):
    model, inputs = _model({"mapping.weight_format": fmt_name,
                            "mapping.weight_sparsity": sparsity})
    k, gpu = model.kernels, inputs["device"]
    rows = np.array([1, 8, 16, 32, 64, 128, 512, 4096], dtype=float)
    for g in model.shape.gemms:
        n, kk = k.local_shape(g, 2)
        t = k.sparse_gemm_s(rows, n, kk)
        flops = 2.0 * n * kk * rows / (2.0 if fmt_name == "2:4" else 1.0)  # as dense, or 2:4
        floor = np.maximum(float(k.encoded_bytes(n, kk)) / (gpu.hbm_bandwidth_GBps * 1e9),
                           flops / (gpu.peak_16bit_TFLOPS * 1e12))
        assert (t >= floor).all(), (g.name, t / floor)
    for b in (1, 8, 64):
        assert model.decode_s(0, b, 300.0) >= model.decode_roofline_s(b, 300.0)


def test_sparse_layers_are_faster_in_decode_and_fit_more():
    """At 80% a decode step reads 2.5x fewer weight bytes: faster than dense, and the saved
    HBM holds more sequences."""
    dense, _ = _model({"mapping.weight_format": "dense", "mapping.weight_sparsity": 0.0})
    sparse, _ = _model()
    assert sparse.decode_s(0, 16, 300.0) < 0.8 * dense.decode_s(0, 16, 300.0)
    assert sparse.kv_plan(64, 512, 576).sequences > 2 * dense.kv_plan(64, 512, 576).sequences


def test_fits_in_memory_flips_where_encoded_weights_and_kv_exceed_hbm():
    s = get_system("gpu-serving")
    for fmt_name, sparsity in (("tiled-csl", 0.8), ("2:4", 0.5), ("dense", 0.0)):
        model, inputs = _model({"mapping.weight_format": fmt_name,
                                "mapping.weight_sparsity": sparsity})
        k, llm = model.kernels, model.llm
        hbm = inputs["device"].hbm_capacity_GB * 1e9 * inputs["mapping"].hbm_usable_fraction
        w = float(k.weight_bytes(llm.layers, True, True, 1))
        per_seq = float(k.kv_bytes(llm.layers, 1, 576))
        edge = int((hbm - w) // per_seq)  # the largest batch whose KV cache fits
        assert edge >= 1
        batches = np.array([edge - 1, edge, edge + 1, edge + 2])
        res = s.analytical_batch(s.resolve(E2E, {
            "mapping.weight_format": fmt_name, "mapping.weight_sparsity": sparsity,
            "mapping.kv_overflow": "queue"}), {"mapping.batch": batches})
        assert res["fits_in_memory"].tolist() == [1.0, 1.0, 0.0, 0.0], fmt_name
        # without queueing the batch that does not fit is infeasible, with the reason
        res = s.analytical_batch(s.resolve(E2E, {"mapping.weight_format": fmt_name,
                                                 "mapping.weight_sparsity": sparsity}),
                                 {"mapping.batch": batches})
        assert np.isfinite(res["tokens_per_gpu_s"][:2]).all()
        assert np.isnan(res["tokens_per_gpu_s"][2:]).all()
        assert "HBM" in str(res.reasons[2])


def test_batch_equals_scalar_with_sparse_formats():
    s = get_system("gpu-serving")
    for extra in ({}, {"mapping.weight_format": "2:4", "mapping.weight_sparsity": 0.5}):
        inputs = s.resolve(E2E, extra)
        tp, b = np.array([2, 4, 8, 2]), np.array([8, 32, 64, 16])
        res = s.analytical_batch(inputs, {"mapping.tensor_parallel": tp, "mapping.batch": b})
        for i in range(len(tp)):
            one = s.evaluate(s.resolve(E2E, {**extra, "mapping.tensor_parallel": int(tp[i]),
                                             "mapping.batch": int(b[i])}))
            assert res["tokens_per_gpu_s"][i] == pytest.approx(one["tokens_per_gpu_s"],
                                                               rel=1e-9)


def test_analytical_equals_des_with_tiled_csl():
    s = get_system("gpu-serving")
    closed = s.resolve(E2E, {"mapping.batch": 8, "traffic.requests": 8})
    a, d = s.evaluate(closed), s.evaluate(closed, "des", seed=0)
    assert d["tokens_per_gpu_s"] == pytest.approx(a["tokens_per_gpu_s"], rel=0.01)
    assert d["fits_in_memory"] == a["fits_in_memory"] == 1.0
    low = s.resolve(["llm=opt-30b", "mapping=flash-llm-tp2-s80"], [
        'traffic.arrival="poisson"', "traffic.arrival_rate_per_s=0.02", "traffic.requests=300",
        "traffic.prompt_tokens=256", "traffic.output_tokens=64"])
    a, d = s.evaluate(low), s.evaluate(low, "des", seed=0)
    for name in ("latency_ms_per_token", "ttft_ms"):
        assert d[name] == pytest.approx(a[name], rel=0.03), name


def test_sparse_format_checks():
    s = get_system("gpu-serving")
    with pytest.raises(InputError):
        s.resolve(E2E, {"mapping.weight_format": "2:4", "mapping.weight_sparsity": 0.8})
    with pytest.raises(InputError):
        s.resolve(E2E, {"mapping.weight_dtype": "int8"})
    with pytest.raises(InfeasibleDesign, match="at most 50% nonzeros"):
        s.evaluate(s.resolve(E2E, {"mapping.weight_sparsity": 0.3}))
