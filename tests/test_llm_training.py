"""The shared training step model (hwsim.llm.training): FLOPs against Megatron's closed form,
ZeRO model states against the ZeRO paper's figure 1, Korthikanti's activation formula and its
parallel and recompute variants, LoRA counts, communication volumes, the pipeline bubble and
vectorisation over mappings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hwsim.llm import model as llm_model
from hwsim.llm.perf import Device, ring_allreduce_s
from hwsim.llm.spec import LlmSpec
from hwsim.llm.training import (
    Parallel,
    Recompute,
    Trainable,
    activation_bytes,
    activation_bytes_per_layer,
    dp_comm_bytes,
    forward_flops_per_token,
    lora_params,
    memory_reasons,
    model_state_bytes,
    nccl_ring_collective_s,
    nccl_ring_step_latency_s,
    training_flops_per_token,
    training_memory,
    training_step,
)
from hwsim.specs import find_spec_file, load_spec

GPT3 = LlmSpec(name="gpt3", layers=96, d_model=12288, heads=96, d_ff=4 * 12288, vocab=1,
               bias=False)


def _llm(name: str) -> LlmSpec:
    return load_spec(find_spec_file("llm", name), "llm")


def test_flops_match_megatron_closed_form():
    # Narayanan et al. 2021 sec. 5.1: with recomputation 96 B s l h^2 (1 + s / 6h) per batch
    # for the layers (vocabulary 1 here, no biases, so only the layers count)
    s = 2048
    per_token = training_flops_per_token(GPT3, s, checkpointing=True)
    layers = 96 * s * 96 * 12288 ** 2 * (1 + s / (6 * 12288)) / s
    assert per_token == pytest.approx(layers, rel=1e-3)


def test_flops_passes():
    spec = _llm("opt-13b")
    f = forward_flops_per_token(spec, 512)
    assert training_flops_per_token(spec, 512) == pytest.approx(3 * f)
    assert training_flops_per_token(spec, 512, checkpointing=True) == pytest.approx(4 * f)
    lora = Trainable(lora_rank=128, frozen_base=True)
    fl = forward_flops_per_token(spec, 512, 128)
    # frozen base: no weight gradients of the base; the adapters' three passes stay
    base = 2.0 * llm_model.matmul_params(spec)
    assert training_flops_per_token(spec, 512, lora) == pytest.approx(3 * fl - base)
    # roughly 4 per parameter-token instead of 6
    ratio = training_flops_per_token(spec, 512, lora) / training_flops_per_token(spec, 512)
    assert 0.6 < ratio < 0.75


def test_zero_stages_reproduce_the_zero_paper_figure_1():
    # Rajbhandari et al. 2020, figure 1: 7.5B parameters, 64 GPUs: 120, 31.4, 16.6, 1.9 GB
    n = 7.5e9
    got = []
    for z in range(4):
        w, g, o, cpu = model_state_bytes(n, n, z, 64)
        got.append(float(w + g + o) / 1e9)
        assert cpu == 0
    assert got == pytest.approx([120.0, 31.4, 16.6, 1.875], rel=0.01)
    w, g, o, cpu = model_state_bytes(n, n, 2, 64, offload=True)
    assert float(g + o) == 0 and float(cpu) == pytest.approx((2 + 12) * n / 64)


def test_lora_counts_and_frozen_states():
    spec = _llm("opt-13b")
    assert lora_params(spec, 128) == 128 * 18 * 5120 * 40   # q, k, v, out, fc1, fc2
    assert lora_params(spec, 0) == 0
    mem = training_memory(spec, 512, Parallel(), Trainable(lora_rank=128, frozen_base=True))
    p, r = llm_model.params(spec), lora_params(spec, 128)
    assert float(mem.weights_B) == 2 * (p + r)
    assert float(mem.grads_B) == 2 * r and float(mem.optimizer_B) == 12 * r
    with pytest.raises(ValueError):
        Trainable(frozen_base=True)


def test_activation_formula_and_its_variants():
    spec = _llm("opt-13b")
    s, b, h, a = 512, 4, 5120, 40
    base = activation_bytes_per_layer(spec, s, b)
    assert base == pytest.approx(s * b * h * (34 + 5 * a * s / h))
    t = 8
    tp = activation_bytes_per_layer(spec, s, b, tp=t)
    assert tp == pytest.approx(s * b * h * (10 + 24 / t + 5 * a * s / (h * t)))
    sp = activation_bytes_per_layer(spec, s, b, tp=t, sp=True)
    assert sp == pytest.approx(base / t)
    fused = activation_bytes_per_layer(spec, s, b, rc=Recompute(fused_attention=True))
    assert fused == pytest.approx(s * b * h * 34)
    full = activation_bytes(spec, s, b)
    ckpt = activation_bytes(spec, s, b, rc=Recompute(checkpointing=True))
    assert ckpt == pytest.approx(40 * 2 * s * b * h + base)
    assert ckpt < full / 10


def test_communication_volumes():
    n = 1e9
    z0 = dp_comm_bytes(n, n, 0, 64)
    z3 = dp_comm_bytes(n, n, 3, 64)
    assert z3 / z0 == pytest.approx(1.5)          # ZeRO paper sec. 7: 3 psi against 2 psi
    assert float(dp_comm_bytes(n, n, 3, 1)) == 0.0


def test_training_step_vectorised_bubble_and_bounds():
    spec = _llm("opt-6.7b")
    dev = Device(peak_flops=312e12, mem_bw_Bps=2.0e12, compute_efficiency=0.5,
                 tp_link_Bps=300e9, pp_link_Bps=25e9)
    par = Parallel(dp=np.array([1, 8, 8, 8]), tp=np.array([1, 1, 2, 1]),
                   pp=np.array([1, 1, 1, 4]), micro_batch=4, micro_batches=8,
                   zero_stage=np.array([0, 3, 1, 1]))
    st = training_step(spec, 2048, par, dev)
    assert st.step_s.shape == (4,)
    flops = training_flops_per_token(spec, 2048) * 2048 * 4 * 8
    assert st.compute_s[0] == pytest.approx(flops / (312e12 * 0.5))
    assert np.all(st.step_s >= st.compute_s * (1 - 1e-12))
    assert st.dp_comm_s[0] == 0 and st.dp_comm_s[1] > 0
    assert st.tp_comm_s[2] > 0 and st.tp_comm_s[0] == 0
    # pipeline: (p - 1) / m of the work
    assert st.bubble_s[3] == pytest.approx(3 / 8 * (st.step_s[3] - st.bubble_s[3]
                                                    - st.optimizer_s[3]))


def test_memory_check_names_the_parts():
    spec = _llm("opt-66b")
    mem = training_memory(spec, 512, Parallel(dp=np.array([8, 64]), zero_stage=3))
    fits, reasons = memory_reasons(mem, 80e9)
    assert list(fits) == [False, True]
    assert "optimizer" in reasons[0] and "80.0 GB available" in reasons[0] and not reasons[1]


def test_embed_dim_gives_the_released_opt_350m_count():
    s = _llm("opt-350m")
    # the released checkpoint has 331 M (huggingface.co/facebook/opt-350m)
    assert llm_model.params(s) == pytest.approx(331e6, rel=1e-3)
    assert llm_model.params(replace(s, embed_dim=0)) > 350e6


def test_nccl_ring_step_latency_from_the_tuning_model():
    # NCCL src/graph/tuning.cc, ring / Simple: base 8.4 us, 3.4 us per NVLink step, 14.0 per
    # network step, spread over the shared ring model's 2 (g-1) steps
    us = 1e-6
    # one all-reduce over 8 GPUs of one node: 8.4 + 14 x 3.4 over 14 steps
    assert nccl_ring_step_latency_s(8, 8) == pytest.approx((8.4 + 14 * 3.4) / 14 * us)
    # a reduce-scatter + all-gather over 32 ranks on 4 nodes (31 steps, 3 between nodes)
    assert nccl_ring_step_latency_s(32, 8, allreduce=False) == pytest.approx(
        2 * (8.4 + 28 * 3.4 + 3 * 14.0) / 62 * us)
    # the all-reduce over 4 nodes: 2 (N-1) = 6 of its 62 steps between nodes
    assert nccl_ring_step_latency_s(32, 8) == pytest.approx(
        (8.4 + 56 * 3.4 + 6 * 14.0) / 62 * us)
    # no collective in a group of one; vectorised over groups
    got = nccl_ring_step_latency_s(np.array([1.0, 2.0, 16.0]), 8)
    assert got[0] == 0.0
    assert got[1] == pytest.approx((8.4 + 2 * 3.4) / 2 * us)
    assert got[2] == pytest.approx((8.4 + 28 * 3.4 + 2 * 14.0) / 30 * us)


def test_nccl_protocol_choice_by_message_size():
    # tuning.cc (ring): LL 6.6 + 0.6 / NVLink step + 2.7 / network step at 1/4 of the bandwidth
    # across nodes; LL128 14.0 + 1.9 + 4.0 at 0.92; Simple 8.4 + 3.4 + 14.0 at all of it
    us, bw = 1e-6, 150e9
    simple = lambda n: (8.4 + 28 * 3.4 + 3 * 14.0) * us + 31 / 32 * n / bw  # noqa: E731
    ll128 = lambda n: (14.0 + 28 * 1.9 + 3 * 4.0) * us + 31 / 32 * n / (0.92 * bw)  # noqa: E731
    ll = lambda n: (6.6 + 28 * 0.6 + 3 * 2.7) * us + 31 / 32 * n / (0.25 * bw)  # noqa: E731
    sizes = np.array([1e3, 25.2e6, 402.7e6])  # a few kB; 2k and 32k tokens x 6,144 x 2 B
    got = nccl_ring_collective_s(sizes, 32, 8, bw, allreduce=False)
    assert got[0] == pytest.approx(ll(1e3))          # latency-bound: LL
    assert got[1] == pytest.approx(ll128(25.2e6))    # MBs: LL128, 17% under Simple
    assert got[1] < 0.85 * simple(25.2e6)
    assert got[2] == pytest.approx(simple(402.7e6))  # hundreds of MB: Simple
    # never slower than any one protocol; Simple alone is the ring model with NCCL's latency
    only = nccl_ring_collective_s(sizes, 32, 8, bw, allreduce=False, protocols=("Simple",))
    assert np.all(got <= only)
    pair = ring_allreduce_s(sizes, 32, bw, nccl_ring_step_latency_s(32, 8, allreduce=False))
    assert np.allclose(2 * only, pair)
    # an all-reduce across nodes with Simple pays the ring plateau factor (1.4 on A100)
    ar = nccl_ring_collective_s(1e9, 32, 8, bw, protocols=("Simple",))
    assert ar == pytest.approx(1.4 * (8.4 + 56 * 3.4 + 6 * 14.0) * us + 62 / 32 * 1e9 / bw)
    # one node: no plateau, LL at 1/3 for an all-gather; a group of one costs nothing
    one_node = nccl_ring_collective_s(8e3, 8, 8, bw, allreduce=False, protocols=("LL",))
    assert one_node == pytest.approx((6.6 + 7 * 0.6) * us + 7 / 8 * 8e3 / (bw / 3))
    assert nccl_ring_collective_s(1e6, 1, 8, bw) == 0.0


def test_tp_collective_time_can_be_given():
    dev = Device(peak_flops=312e12, mem_bw_Bps=2e12, compute_efficiency=0.5,
                 tp_link_Bps=150e9, link_latency_s=5e-6)
    par = Parallel(tp=8)
    base = training_step(GPT3, 2048, par, dev)
    zero = training_step(GPT3, 2048, par, dev, tp_collective_s=0.0)
    assert float(zero.tp_comm_s) == 0.0
    act = 2048 * GPT3.d_model * 2
    same = training_step(GPT3, 2048, par, dev,
                         tp_collective_s=ring_allreduce_s(act, 8, 150e9, 5e-6))
    assert float(same.step_s) == pytest.approx(float(base.step_s))


def test_sequence_parallel_backward_regathers_and_overlaps():
    # Megatron SP: the backward all-gathers each row-parallel output gradient (exposed) and, for
    # each column-parallel linear, re-gathers the input beside the input-gradient GEMM and
    # reduce-scatters beside the weight-gradient GEMM: only the excess over the GEMM is exposed
    par = Parallel(tp=8, sp=True)
    act = 2048 * GPT3.d_model * 2
    fast = Device(peak_flops=312e12, mem_bw_Bps=2e12, compute_efficiency=0.5, tp_link_Bps=1e15)
    slow = replace(fast, tp_link_Bps=1e6)
    for dev, pairs in ((fast, 2 + 1), (slow, 2 + 3)):  # forward 2 pairs; backward 1 or 3
        pair = float(ring_allreduce_s(act, 8, dev.tp_link_Bps))
        got = training_step(GPT3, 2048, par, dev)
        assert float(got.tp_comm_s) == pytest.approx(GPT3.layers * pairs * pair, rel=1e-3)
    # without SP the backward's two all-reduces are exposed, as before
    pair = float(ring_allreduce_s(act, 8, slow.tp_link_Bps))
    got = training_step(GPT3, 2048, Parallel(tp=8), slow)
    assert float(got.tp_comm_s) == pytest.approx(GPT3.layers * 4 * pair)
