"""The discrete-event kernel (hwsim.des) against closed forms."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.des import (
    ComputeUnit,
    FairShare,
    Link,
    Memory,
    Pipeline,
    Stage,
    Stats,
    TimeWeighted,
    batch_means,
    control_variate_mean,
    markov_factors,
    summarize,
)

FAST = settings(max_examples=40, deadline=None)


def finish_times(env: simpy.Environment, events) -> list[float]:
    """Run ``env`` and return when each event fired."""
    times = [None] * len(events)
    for i, ev in enumerate(events):
        ev.callbacks.append(lambda _, i=i: times.__setitem__(i, env.now))
    env.run()
    return times


# -- Link: bandwidth, latency, fair sharing ------------------------------------------------------
def test_idle_link_takes_latency_plus_size_over_bandwidth():
    env = simpy.Environment()
    link = Link(env, bandwidth_Bps=25e9, latency_s=1.5e-6)
    ev = link.transfer(123_456_789)
    env.run()
    assert env.now == 1.5e-6 + 123_456_789 / 25e9
    assert ev.value == 123_456_789


def test_idle_link_later_start():
    env = simpy.Environment()
    link = Link(env, 1e6, 0.01)
    t = []

    def proc():
        yield env.timeout(3.0)
        yield link.transfer(5e5)
        t.append(env.now)

    env.process(proc())
    env.run()
    assert t[0] == pytest.approx(3.0 + 0.01 + 0.5, rel=1e-15)


def test_two_equal_flows_each_take_twice_as_long():
    one = simpy.Environment()
    [t1] = finish_times(one, [Link(one, 1e3, 0.0).transfer(1e4)])
    two = simpy.Environment()
    link = Link(two, 1e3, 0.0)
    ta, tb = finish_times(two, [link.transfer(1e4), link.transfer(1e4)])
    assert ta == tb == 2 * t1


def test_staggered_flows_processor_sharing():
    env = simpy.Environment()
    link = Link(env, 100.0, 0.0)
    out = {}

    def flow(name, start, size):
        yield env.timeout(start)
        yield link.transfer(size)
        out[name] = env.now

    env.process(flow("a", 0.0, 100.0))
    env.process(flow("b", 0.5, 100.0))
    env.run()
    # a alone for 0.5 s (50 B), then 50 B/s each: a ends at 1.5, b's last 50 B alone: 2.0
    assert out["a"] == pytest.approx(1.5)
    assert out["b"] == pytest.approx(2.0)


@FAST
@given(sizes=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=25),
       bw=st.floats(1e3, 1e10), lat=st.floats(0.0, 1e-2))
def test_shared_link_matches_processor_sharing(sizes, bw, lat):
    env = simpy.Environment()
    link = Link(env, bw, lat)
    times = finish_times(env, [link.transfer(s) for s in sizes])
    # all start together: the k-th smallest ends after sum_{j<k} s_j + (n-k) s_k bytes
    s = np.sort(sizes)
    n = len(s)
    expect = (np.cumsum(s) - s + (n - np.arange(n)) * s) / bw + lat
    assert max(times) == pytest.approx(sum(sizes) / bw + lat, rel=1e-9)
    assert np.sort(times) == pytest.approx(expect, rel=1e-9)


def _ps_reference(arrivals: list[tuple[float, float]], bw: float) -> list[float]:
    """Processor sharing by brute force: step from event to event, sharing equally."""
    left = {i: size for i, (_, size) in enumerate(arrivals)}
    order = sorted(range(len(arrivals)), key=lambda i: arrivals[i][0])
    active: set[int] = set()
    done = [0.0] * len(arrivals)
    t, k = 0.0, 0
    while k < len(order) or active:
        t_arr = arrivals[order[k]][0] if k < len(order) else np.inf
        if active:
            rate = bw / len(active)
            i_min = min(active, key=lambda i: left[i])
            t_fin = t + left[i_min] / rate
        else:
            t_fin = np.inf
        t_next = min(t_arr, t_fin)
        if active:
            for i in active:
                left[i] -= rate * (t_next - t)
        t = t_next
        if t_fin <= t_arr:
            for i in [i for i in active if left[i] <= 1e-9 * arrivals[i][1]]:
                active.discard(i)
                done[i] = t
        else:
            active.add(order[k])
            k += 1
    return done


@FAST
@given(flows=st.lists(st.tuples(st.floats(0.0, 10.0), st.floats(1.0, 1e3)),
                      min_size=1, max_size=15), bw=st.floats(1.0, 1e3))
def test_fair_share_matches_brute_force(flows, bw):
    env = simpy.Environment()
    fs = FairShare(env, bw)
    done = [0.0] * len(flows)

    def flow(i, start, size):
        yield env.timeout(start)
        yield fs.submit(size)
        done[i] = env.now

    for i, (start, size) in enumerate(flows):
        env.process(flow(i, start, size))
    env.run()
    assert done == pytest.approx(_ps_reference(flows, bw), rel=1e-6, abs=1e-9)
    assert fs.served == pytest.approx(sum(size for _, size in flows), rel=1e-9)


def test_weighted_shares():
    env = simpy.Environment()
    fs = FairShare(env, 30.0)
    ta, tb = finish_times(env, [fs.submit(20.0, weight=2.0), fs.submit(20.0, weight=1.0)])
    # a gets 20 B/s, b 10 B/s: a done at 1.0 (b has 10 left, alone at 30 B/s: +1/3)
    assert ta == pytest.approx(1.0)
    assert tb == pytest.approx(1.0 + 1.0 / 3.0)


# -- bandwidth over time -------------------------------------------------------------------------
def test_bandwidth_trace_closed_form():
    env = simpy.Environment()
    link = Link(env, 100.0, 0.25, bandwidth_trace=[(1.0, 50.0), (3.0, 200.0)])
    [t] = finish_times(env, [link.transfer(300.0)])
    # 100 B in [0,1), 100 B in [1,3) at 50 B/s, the last 100 B at 200 B/s: 3.5 s, + latency
    assert t == pytest.approx(3.75)


def test_zero_bandwidth_stalls():
    env = simpy.Environment()
    link = Link(env, 10.0, bandwidth_trace=[(1.0, 0.0), (4.0, 10.0)])
    [t] = finish_times(env, [link.transfer(20.0)])
    assert t == pytest.approx(5.0)


def _serve_time(start: float, size: float, steps: list[tuple[float, float]]) -> float:
    """When ``size`` bytes started at ``start`` finish under piecewise bandwidth ``steps``."""
    left = size
    for (t0, bw), (t1, _) in zip(steps, [*steps[1:], (np.inf, 0.0)], strict=True):
        a, b = max(t0, start), t1
        if b <= a:
            continue
        if bw > 0 and left <= bw * (b - a):
            return a + left / bw
        left -= bw * (b - a)
    raise AssertionError("never finishes")


@FAST
@given(bws=st.lists(st.floats(1.0, 1e3), min_size=1, max_size=8),
       gaps=st.lists(st.floats(0.01, 5.0), min_size=8, max_size=8),
       base=st.floats(1.0, 1e3), size=st.floats(1.0, 1e4), start=st.floats(0.0, 10.0))
def test_bandwidth_trace_property(bws, gaps, base, size, start):
    times = np.cumsum(gaps[: len(bws)])
    trace = list(zip(times.tolist(), bws, strict=True))
    env = simpy.Environment()
    link = Link(env, base, bandwidth_trace=trace)
    done = []

    def proc():
        yield env.timeout(start)
        yield link.transfer(size)
        done.append(env.now)

    env.process(proc())
    env.run()
    assert done[0] == pytest.approx(_serve_time(start, size, [(0.0, base), *trace]), rel=1e-9)


def test_stochastic_bandwidth_replays_and_terminates():
    env = simpy.Environment()
    steps = markov_factors(np.random.default_rng(7), [1.0, 0.25, 0.0], [0.5, 1.0, 0.2])
    link = Link(env, 1000.0, bandwidth_factors=steps)
    [t] = finish_times(env, [link.transfer(5000.0)])  # env.run() ends: the process is lazy
    # the same draws, replayed as a trace
    replay = markov_factors(np.random.default_rng(7), [1.0, 0.25, 0.0], [0.5, 1.0, 0.2])
    trace, now = [], 0.0
    while now < t + 10:
        dwell, f = next(replay)
        trace.append((now, 1000.0 * f))
        now += dwell
    assert t == pytest.approx(_serve_time(0.0, 5000.0, trace), rel=1e-9)
    assert t > 5.0


def test_trace_and_factors_multiply():
    env = simpy.Environment()
    link = Link(env, 100.0, bandwidth_trace=[(1.0, 200.0)],
                bandwidth_factors=iter([(2.0, 0.5), (1e9, 1.0)]))
    [t] = finish_times(env, [link.transfer(250.0)])
    # [0,1): 50 B/s; [1,2): 100 B/s; then 200 B/s for the last 100 B
    assert t == pytest.approx(2.5)


# -- loss ----------------------------------------------------------------------------------------
def test_loss_fraction_and_conservation():
    env = simpy.Environment()
    link = Link(env, 1e9, 1e-6, loss=0.05, mtu_bytes=1500, rng=np.random.default_rng(3))
    sizes = np.random.default_rng(4).integers(1, 200_000, 2000).astype(float)
    evs = [link.transfer(s) for s in sizes]
    env.run()
    delivered = sum(ev.value for ev in evs)
    assert link.bytes_in == sizes.sum()
    assert link.bytes_in == link.bytes_out + link.bytes_dropped
    assert delivered == link.bytes_out
    frac = link.bytes_dropped / link.bytes_in
    packets = np.ceil(sizes / 1500).sum()
    assert abs(frac - 0.05) < 4 * np.sqrt(0.05 * 0.95 / packets) * 1.2


@FAST
@given(sizes=st.lists(st.integers(0, 10**6), min_size=1, max_size=30),
       loss=st.floats(0.0, 0.9), seed=st.integers(0, 2**32 - 1))
def test_loss_conservation_property(sizes, loss, seed):
    env = simpy.Environment()
    link = Link(env, 1e6, 0.001, loss=loss, mtu_bytes=1000, rng=np.random.default_rng(seed))
    evs = [link.transfer(float(s)) for s in sizes]
    env.run()
    assert link.bytes_in == link.bytes_out + link.bytes_dropped == sum(sizes)
    assert all(0 <= ev.value <= s for ev, s in zip(evs, sizes, strict=True))
    assert link.in_flight_bytes == 0


def test_lossy_link_needs_a_seeded_rng():
    with pytest.raises(ValueError, match="rng"):
        Link(simpy.Environment(), 1e9, loss=0.1)


# -- Memory --------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 5])
def test_memory_bandwidth_fair_share(k):
    env = simpy.Environment()
    mem = Memory(env, capacity_bytes=1e9, bandwidth_Bps=1e9, latency_s=1e-7)
    times = finish_times(env, [mem.read(1e6) if i % 2 else mem.write(1e6) for i in range(k)])
    assert times == pytest.approx([k * 1e-3 + 1e-7] * k, rel=1e-12)
    assert mem.bytes_read + mem.bytes_written == k * 1e6


def test_memory_capacity_blocks_until_freed():
    env = simpy.Environment()
    mem = Memory(env, capacity_bytes=100, bandwidth_Bps=1.0)
    got = {}

    def first():
        yield mem.alloc(60)
        yield env.timeout(2.0)
        yield mem.free(60)

    def second():
        yield env.timeout(0.5)
        yield mem.alloc(50)
        got["t"] = env.now

    env.process(first())
    env.process(second())
    env.run()
    assert got["t"] == 2.0
    assert mem.peak_bytes == 60
    assert mem.used_bytes == 50
    with pytest.raises(ValueError):
        mem.alloc(101)


# -- ComputeUnit ---------------------------------------------------------------------------------
def test_compute_unit_service_time_and_units():
    env = simpy.Environment()
    stats = Stats(env)
    cu = ComputeUnit(env, peak_ops_per_s=1e12, efficiency=0.5, n=2, stats=stats)
    times = finish_times(env, [cu.run(1e12) for _ in range(3)])
    assert times == [2.0, 2.0, 4.0]
    assert stats.array("compute.wait_s").tolist() == [0.0, 0.0, 2.0]
    assert stats.utilisation("compute.busy", 2) == pytest.approx(0.75)
    assert cu.jobs_done == 3


def test_compute_unit_is_a_resource_shared_with_direct_requests():
    env = simpy.Environment()
    cu = ComputeUnit(env, 1.0, n=1)
    log = []

    def holder():
        with cu.request() as req:
            yield req
            log.append(("hold", env.now))
            yield env.timeout(3.0)

    def job():
        yield env.timeout(1.0)
        t = yield cu.run(2.0)
        log.append(("job", env.now, t))

    def late():
        yield env.timeout(2.0)
        with cu.request() as req:
            yield req  # queued behind nobody: granted when the job is done
            log.append(("late", env.now))

    env.process(holder())
    env.process(job())
    env.process(late())
    env.run()
    # the direct request waiting since t=2 gets the unit at 3 before the run() job queued at 1
    assert log == [("hold", 0.0), ("late", 3.0), ("job", 5.0, 2.0)]


def test_compute_unit_direct_holder_takes_one_of_n_units():
    env = simpy.Environment()
    cu = ComputeUnit(env, 1.0, n=2)
    seen = []

    def holder():
        with cu.request() as req:
            yield req
            yield env.timeout(10.0)

    def probe():
        yield env.timeout(0.5)
        seen.append(cu.count)

    env.process(holder())
    env.process(probe())
    env.run(until=0.1)
    times = finish_times(env, [cu.run(1.0) for _ in range(3)])
    assert times == pytest.approx([1.1, 2.1, 3.1])  # one unit left for the jobs
    assert seen == [2]


def test_compute_unit_done_event_can_be_yielded_late():
    env = simpy.Environment()
    cu = ComputeUnit(env, 1.0)
    got = []

    def proc():
        ev = cu.run(1.0)
        yield env.timeout(5.0)
        got.append((yield ev))  # finished long ago: resumes at once with its value
        got.append(env.now)

    env.process(proc())
    env.run()
    assert got == [1.0, 5.0]


def _fifo_waits(ia: np.ndarray, svc: np.ndarray, c: int) -> np.ndarray:
    """FIFO c-server waits by direct recursion (each customer takes the earliest free server)."""
    free = [0.0] * c
    t, out = 0.0, []
    for a, s in zip(ia, svc, strict=True):
        t += a
        start = max(t, heapq.heappop(free))
        out.append(start - t)
        heapq.heappush(free, start + s)
    return np.array(out)


@pytest.mark.parametrize("c", [1, 3])
def test_compute_unit_waits_match_fifo_recursion(c):
    rng = np.random.default_rng(11)
    ia, svc = rng.exponential(1.0, 3000), rng.exponential(0.9 * c, 3000)
    env = simpy.Environment()
    stats = Stats(env)
    cu = ComputeUnit(env, 1.0, n=c, stats=stats)

    def arrivals():
        for a, s in zip(ia.tolist(), svc.tolist(), strict=True):
            yield env.timeout(a)
            cu.run(s)

    env.process(arrivals())
    env.run()
    assert stats.array("compute.wait_s") == pytest.approx(_fifo_waits(ia, svc, c), abs=1e-9)


# -- Pipeline ------------------------------------------------------------------------------------
def test_pipeline_double_buffering_overlaps_stages():
    env = simpy.Environment()
    pipe = Pipeline(env, [Stage("load", 1.0), Stage("compute", 1.0), Stage("store", 1.0)])
    proc = pipe.run(range(10))
    env.run()
    assert proc.value == 10
    assert pipe.completed[-1] == pytest.approx(12.0)  # 3 + 9, not 30
    assert pipe.throughput_per_s() == pytest.approx(1.0)


@FAST
@given(times=st.lists(st.floats(0.1, 5.0), min_size=1, max_size=5),
       depth=st.integers(1, 3))
def test_pipeline_throughput_is_bottleneck_rate(times, depth):
    env = simpy.Environment()
    stages = [Stage(f"s{i}", t) for i, t in enumerate(times)]
    pipe = Pipeline(env, stages, buffer_items=depth)
    pipe.run(range(60))
    env.run()
    gaps = np.diff(pipe.completed[-20:])
    assert gaps == pytest.approx(max(times), rel=1e-9)
    assert pipe.busy_s[stages[0].name] == pytest.approx(60 * times[0])


def test_pipeline_stage_work_can_be_a_shared_component():
    env = simpy.Environment()
    link = Link(env, 100.0, 0.0)
    cu = ComputeUnit(env, 10.0)
    pipe = Pipeline(env, [Stage("fetch", lambda item: link.transfer(item)),
                          Stage("compute", lambda item: cu.run(item / 100)),
                          Stage("post", lambda item: 0.0)])
    pipe.run([100.0] * 8)
    env.run()
    # fetch 1 s/item and compute 0.1 s/item: the link is the bottleneck
    assert pipe.throughput_per_s() == pytest.approx(1.0)
    assert pipe.completed[-1] == pytest.approx(8.1)


# -- Stats ---------------------------------------------------------------------------------------
def test_percentiles_match_numpy():
    x = np.random.default_rng(0).lognormal(size=10_001)
    s = summarize(x)
    assert (s.p50, s.p95, s.p99) == pytest.approx(tuple(np.percentile(x, [50, 95, 99])))
    assert s.mean == pytest.approx(x.mean()) and s.count == x.size
    stats = Stats()
    for v in x:
        stats.record("lat", v)
    stats.count("n", 3)
    assert stats.percentile("lat", 99, skip=1) == pytest.approx(np.percentile(x[1:], 99))
    assert stats.counters["n"] == 3
    assert np.isnan(summarize([]).mean)


def test_time_weighted_level_and_window():
    tw = TimeWeighted(0.0, 0.0)
    tw.set(1.0, 2.0)      # 0 on [0,1)
    tw.set(3.0, 1.0)      # 2 on [1,3)
    assert tw.mean(4.0) == pytest.approx((0 + 4 + 1) / 4)
    tw.reset(4.0)
    tw.add(5.0, 1.0)      # 1 on [4,5), 2 after
    tw.freeze(6.0)
    tw.set(7.0, 100.0)    # after the window: ignored
    assert tw.mean(10.0) == pytest.approx((1 + 2) / 2)


def test_batch_means_interval_covers_the_mean():
    x = np.random.default_rng(1).normal(5.0, 1.0, 100_000)
    m, half = batch_means(x, 20)
    assert abs(m - 5.0) < half < 0.05


def test_control_variates_reduce_error():
    rng = np.random.default_rng(2)
    errs_cv, errs_raw = [], []
    for _ in range(20):
        c = rng.exponential(1.0, 10_000)
        y = 3.0 * c + rng.normal(0.0, 0.1, c.size)  # E[y] = 3
        errs_raw.append(abs(y.mean() - 3.0))
        errs_cv.append(abs(control_variate_mean(y, [c, np.ones_like(c)], [1.0, 1.0]) - 3.0))
    assert np.mean(errs_cv) < 0.1 * np.mean(errs_raw)
