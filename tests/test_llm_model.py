"""LLM shapes: parameter counts against published totals, FLOPs, KV bytes, the perf model."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim import specs
from hwsim.llm import Device, Mapping, decode_step, layer_shape, params, prefill
from hwsim.llm.model import flops_per_token, kv_bytes_per_token
from hwsim.llm.perf import (
    ring_allreduce_s,
    roofline_decode_s,
    torus_allreduce_s,
    torus_group_dims,
)

LLMS = [p.stem for p in specs.spec_files("llm")]
REQUIRED = {"gpt2-1.5b", "tnlg-17b", "gpt3-175b", "gopher-280b", "mtnlg-530b", "bloom-176b",
            "palm-540b", "opt-30b", "opt-66b", "opt-175b", "llama2-70b", "llama3-8b",
            "llama3-70b", "llama3-405b"}


def _llm(name: str):
    return specs.load_spec(specs.find_spec_file("llm", name), "llm")


def test_all_required_models_present():
    assert set(LLMS) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_param_count_matches_published(name):
    s = _llm(name)
    assert s.published_params_B > 0 and s.source
    assert not s.published_params_nominal
    assert params(s) / 1e9 == pytest.approx(s.published_params_B, rel=0.03)


def test_kv_bytes_reflect_attention_type():
    # MHA GPT-3: 2 x 96 layers x 12288 x 2 B; MQA PaLM: one KV head of 256; GQA Llama-3-70B: 8
    assert kv_bytes_per_token(_llm("gpt3-175b")) == 2 * 96 * 12288 * 2
    assert kv_bytes_per_token(_llm("palm-540b")) == 2 * 118 * 256 * 2
    assert kv_bytes_per_token(_llm("llama3-70b")) == 2 * 80 * 8 * 128 * 2


def test_flops_per_token_close_to_2n_and_grow_with_context():
    s = _llm("gpt3-175b")
    assert flops_per_token(s) == pytest.approx(2 * params(s), rel=0.01)
    assert flops_per_token(s, 2048) > flops_per_token(s, 0)


def test_simplified_v1_shape_is_12d2():
    s = _llm("palm-540b")
    sh = layer_shape(s, simplified=True)
    assert sh.weights_per_layer == 12 * s.d_model**2
    assert sh.kv_bytes_per_token == pytest.approx(2 * s.d_model * 2 / 48)
    full = layer_shape(s)
    assert full.allreduces == 1  # parallel attention


def test_ring_allreduce_closed_form():
    assert ring_allreduce_s(1e6, 1, 1e9) == 0
    assert ring_allreduce_s(1e6, 4, 1e9, 1e-6) == pytest.approx(2 * 3 * (0.25e6 / 1e9 + 1e-6))


def test_torus_allreduce_closed_form():
    assert torus_group_dims(64, (4, 4, 4)) == (4, 4, 4)
    assert torus_group_dims(8, (4, 4, 4)) == (2, 2, 2)
    assert torus_group_dims(4, (4, 4, 4)) == (2, 2)
    assert torus_group_dims(128, (4, 4, 4)) == (4, 4, 4, 2)  # beyond the torus: one more ring
    # 64 chips of a 4x4x4 torus: 2 x (3 + 3 + 3) start-up steps, the ring's bytes over all links
    t = torus_allreduce_s(1e6, 64, (4, 4, 4), 1e9, 1e-6)
    assert t == pytest.approx(2 * 9 * 1e-6 + 2 * 1e6 * 63 / 64 / 1e9)
    # a group on two of the three axes has two thirds of the links
    t4 = torus_allreduce_s(1e6, 4, (4, 4, 4), 1e9, 0.0)
    assert t4 == pytest.approx(2 * 1e6 * 3 / 4 / (1e9 * 2 / 3))
    assert torus_allreduce_s(1e6, 1, (4, 4, 4), 1e9, 1e-6) == 0
    # no torus: the ring, exactly
    g = np.array([1, 2, 8, 64])
    assert np.array_equal(torus_allreduce_s(1e6, g, (), 1e9, 1e-6),
                          ring_allreduce_s(1e6, g, 1e9, 1e-6))


def test_decode_never_faster_than_roofline():
    sh = layer_shape(_llm("llama3-70b"))
    rng = np.random.default_rng(1)
    n = 200
    dev = Device(peak_flops=rng.uniform(1e13, 1e15, n), mem_bw_Bps=rng.uniform(1e11, 5e12, n),
                 tp_link_Bps=rng.uniform(1e9, 5e11, n), pp_link_Bps=25e9, link_latency_s=1e-6)
    b = 2 ** rng.integers(0, 8, n)
    m = np.minimum(b, 2 ** rng.integers(0, 8, n))
    mp = Mapping(tp=2 ** rng.integers(0, 4, n), pp=rng.choice([1, 2, 4, 5, 8], n), batch=b,
                 micro_batch=m)
    step = decode_step(sh, dev, mp, kv_len=1024)
    assert np.all(step.latency_s >= roofline_decode_s(sh, dev, mp, 1024) * (1 - 1e-12))
    assert np.all(step.latency_s >= step.micro_batch_s - 1e-15)


def test_decode_batch_scalar_agree_and_monotone():
    sh = layer_shape(_llm("gpt3-175b"))
    dev = Device(peak_flops=312e12, mem_bw_Bps=2.0e12, tp_link_Bps=300e9, pp_link_Bps=25e9)
    batches = np.array([1, 2, 8, 32])
    vec = decode_step(sh, dev, Mapping(tp=8, batch=batches, micro_batch=batches), kv_len=512)
    for i, b in enumerate(batches):
        one = decode_step(sh, dev, Mapping(tp=8, batch=int(b), micro_batch=int(b)), kv_len=512)
        assert float(one.latency_s) == pytest.approx(vec.latency_s[i])
    assert np.all(np.diff(vec.latency_s) > 0)
    assert np.all(np.diff(vec.throughput_tokens_per_s) > 0)
    pf = prefill(sh, dev, Mapping(tp=8), prompt_tokens=np.array([128, 1024]))
    assert pf.latency_s[1] > pf.latency_s[0]


def test_gqa_and_gated_shapes():
    s = _llm("llama3-70b")
    sh = layer_shape(s)
    g = {x.name: x for x in sh.gemms}
    assert g["qkv"].n == 64 * 128 + 2 * 8 * 128
    assert g["ffn_in"].n == 2 * 28672 and g["ffn_out"].k == 28672
    assert sh.allreduces == 2 and sh.kv_heads == 8
    # GEMM weights per layer + embeddings = the parameter count (less norms)
    assert sh.weight_bytes / 2 == pytest.approx(params(s) - 2 * 128256 * 8192, rel=1e-3)


def test_prefill_slower_than_decode_and_utilization_model():
    sh = layer_shape(_llm("gpt3-175b"))
    roof = Device(peak_flops=100e12, tp_link_Bps=25e9, pp_link_Bps=25e9)
    sys_ = Device(peak_flops=100e12, tp_link_Bps=25e9, pp_link_Bps=25e9,
                  utilization_model="v1-systolic")
    mp = Mapping(tp=16, pp=8, batch=8, micro_batch=1)
    d_roof = decode_step(sh, roof, mp, kv_len=2048)
    d_sys = decode_step(sh, sys_, mp, kv_len=2048)
    assert float(d_sys.latency_s) >= float(d_roof.latency_s)
    assert float(prefill(sh, roof, mp, 2048).latency_s) > float(d_roof.latency_s)
    with pytest.raises(ValueError):
        Device(peak_flops=1e12, utilization_model="magic")
