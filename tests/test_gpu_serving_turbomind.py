"""LMDeploy's benchmark on TurboMind's persistent batch (hwsim.gpu_serving.turbomind): the
closed-loop clients, the KV blocks and the admission, against the closed forms where nothing
interacts."""

from __future__ import annotations

import math

import pytest

from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving import measured, turbomind
from hwsim.gpu_serving.analytical import build


def _model(batch: int, prompt: int, output: int, model: str = "Llama-2-7B"):
    row = next(r for r in measured.serving_rows() if r.is_lmdeploy and r.model == model
               and r.batch == str(batch) and r.input_len == prompt
               and r.output_len == output)
    return build(row.inputs())


def test_one_client_is_the_step_model():
    """One client, cache ample: every round is one prefill iteration then decode steps, so the
    first token is the model's prefill and the throughput its closed form."""
    m = _model(1, 128, 128)
    r = turbomind.run(m, clients=1, prompt=128, output=128, rounds=3)
    pre = m.prefill_s(0, 1, 128)
    assert r.ttft_mean_s == pytest.approx(pre, rel=1e-9)
    decode = sum(m.decode_s(0, 1, 128 + j) for j in range(127))
    assert r.elapsed_s == pytest.approx(3 * (pre + decode), rel=1e-9)
    assert r.throughput_tokens_per_s == pytest.approx(3 * 128 / r.elapsed_s, rel=1e-12)
    assert r.preemptions == 0 and r.requests == 3


def test_ample_cache_is_a_static_batch_without_the_lag():
    """16 clients whose requests all fit, seen at once: each round is one batched prefill and
    identical decode steps (a static batch refilled), every first token the batch prefill."""
    m = _model(16, 128, 128)
    r = turbomind.run(m, clients=16, prompt=128, output=128, rounds=2, admission_lag=False)
    assert r.ttft_min_s == pytest.approx(r.ttft_max_s, rel=1e-12)
    assert r.ttft_mean_s == pytest.approx(m.prefill_s(0, 16, 128), rel=1e-9)
    assert r.preemptions == 0


def test_admission_lag_wakes_on_the_first_request():
    """With the lag an idle engine takes the first request alone; the others wait for that
    iteration, so the longest first token is the lone one's prefill plus the rest's."""
    m = _model(16, 128, 128)
    lag = turbomind.run(m, clients=16, prompt=128, output=128, rounds=1)
    assert lag.ttft_min_s == pytest.approx(m.prefill_s(0, 1, 128), rel=1e-9)
    assert lag.ttft_max_s > m.prefill_s(0, 15, 128)
    assert lag.ttft_max_s < m.prefill_s(0, 1, 128) + m.prefill_s(0, 16, 128)


def test_kv_shortage_preempts_and_serves_everything():
    """A cache of 24 blocks for 8 clients of 128 + 512 tokens (5 blocks each when done): the
    sequences grow out of the cache, lower priorities are preempted and recomputed (the run
    takes longer), every request still finishes (conservation of tokens)."""
    m = _model(1, 128, 2048)
    ample = turbomind.run(m, clients=8, prompt=128, output=512, rounds=2)
    short = turbomind.run(m, clients=8, prompt=128, output=512, rounds=2, blocks=24)
    assert ample.preemptions == 0 and short.preemptions > 0
    assert short.requests == ample.requests == 16
    # the same tokens over a longer run
    assert short.elapsed_s > ample.elapsed_s
    assert short.throughput_tokens_per_s * short.elapsed_s == pytest.approx(16 * 512)


def test_never_more_blocks_than_the_cache():
    """The blocks held never exceed the cache, whatever the shortage (checked by the run)."""
    m = _model(1, 128, 2048)
    for blocks in (5, 9, 17, 33):
        r = turbomind.run(m, clients=6, prompt=100, output=300, rounds=2, blocks=blocks)
        assert r.max_blocks_held <= blocks
        assert math.isfinite(r.ttft_mean_s)


def test_a_sequence_larger_than_the_cache_is_infeasible():
    m = _model(1, 128, 2048)
    with pytest.raises(InfeasibleDesign, match="KV blocks"):
        turbomind.run(m, clients=2, prompt=128, output=2048, blocks=10)


def test_measured_kv_exhaustion_longest_waits():
    """Llama-2-7B, 64 clients of 2,048 + 2,048 tokens: the cache holds about half of them, so
    the longest first-token wait is about one whole generation (measured: 116.3 s)."""
    row = next(r for r in measured.serving_rows() if r.is_lmdeploy and r.model == "Llama-2-7B"
               and r.batch == "64" and r.input_len == 2048 and r.output_len == 2048)
    res = measured.lmdeploy_benchmark(row.specs, row.sets)
    assert res.preemptions > 0
    assert res.ttft_max_s == pytest.approx(116.285, rel=0.1)


def test_blocks_are_reserved_one_token_ahead():
    """Materialize asks for the context plus ``step_length`` tokens: a 256-token prompt takes
    three 128-token blocks, not two, so 8 blocks admit two of four prompts at once."""
    m = _model(1, 128, 2048)
    exact = turbomind.run(m, clients=4, prompt=256, output=2, rounds=1, blocks=8,
                          reserve_ahead=0, admission_lag=False)
    ahead = turbomind.run(m, clients=4, prompt=256, output=2, rounds=1, blocks=8,
                          admission_lag=False)
    assert exact.max_blocks_held == 8 and exact.ttft_min_s == exact.ttft_max_s
    assert ahead.max_blocks_held == 6 and ahead.ttft_max_s > exact.ttft_max_s


def test_a_victim_keeps_its_prefix():
    """Two sequences of 1,024 + 512 tokens in 22 blocks (24 needed at the end): the younger
    is preempted for one block; it loses that block only and recomputes 128 tokens, not its
    whole context, so the run is shorter for the same decode iterations."""
    m = _model(1, 128, 2048)
    kw = dict(clients=2, prompt=1024, output=512, rounds=2, blocks=22, admission_lag=False)
    lose_all = turbomind.run(m, keep_prefix=False, **kw)
    keep = turbomind.run(m, **kw)
    assert keep.preemptions == lose_all.preemptions > 0
    assert keep.iterations == lose_all.iterations
    assert keep.elapsed_s < lose_all.elapsed_s


def test_a_request_sent_during_a_decode_run_joins_the_next_iteration():
    """8 clients of 128 + 512 tokens in 36 blocks: preemptions desynchronise the clients, so
    requests are sent while the others decode; each joins the next iteration (its first token
    within a few iterations), never waiting for the others' run to end (about 5.6 s)."""
    m = _model(1, 128, 2048)
    r = turbomind.run(m, clients=8, prompt=128, output=512, rounds=3, blocks=36)
    assert r.preemptions > 0
    assert r.ttft_max_s < 3 * m.prefill_s(0, 8, 128)
