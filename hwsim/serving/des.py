"""Request-level discrete-event simulation of an LLM service (SimPy).

One model replica is a chain of pipeline stages joined by links; each stage and each link is a
SimPy resource held for the duration the step model gives (:class:`~hwsim.serving.step.
StepModel`). The replica's batch is split into micro-batch *lanes* (as many as micro-batches);
a lane repeatedly admits waiting requests, runs a prefill step for the new ones or a decode step
for those it holds, and sends the step through every stage and link. Lanes contend for stages
and links, so pipeline bubbles, queueing for a stage and transfer/compute overlap come out of
the simulation rather than a formula.

Events: one per micro-batch step when the stages pass their activations without transfers of
their own (the tandem-queue recursion of :meth:`_Replica._tandem`), else one or two per stage
and link per step (SimPy resources: fair-shared links, or a trace to record); never one per
token of a sequence or per cycle. Per request the run keeps a few numbers in numpy arrays,
per stage running sums, so memory does not grow with the steps. Batching policies (Yu et
al., "Orca", OSDI 2022, for iteration-level scheduling):

- ``static``: a lane takes up to its capacity of waiting requests when it is empty and runs
  them until the last one finishes;
- ``continuous``: at every step a lane refills its free slots; new requests are prefilled in a
  step of their own (prefill-first scheduling), then join the decode steps.

Reported: TTFT and time per output token (TPOT) at p50 and p99, throughput, stage utilisation,
goodput under the SLO, and cost per 1k tokens at the measured throughput and at the SLO; every
mean and percentile with its 95% confidence half-width by batch means (:data:`CI_METHOD`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from array import array
from collections import deque
from dataclasses import dataclass
from heapq import heappush
from pathlib import Path
from typing import Any

import numpy as np
import simpy
from simpy.core import NORMAL
from simpy.events import Event

from hwsim import specs
from hwsim.des import ComputeUnit, Link
from hwsim.des.stats import TimeBins, t_half_width
from hwsim.errors import InputError
from hwsim.metrics import Measured
from hwsim.serving.spec import ServingSpec
from hwsim.serving.step import StepModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requests:
    """A request stream: arrival times (s) and token counts, in arrival order."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.size)


def _lengths(rng: np.random.Generator, mean: int, n: int, dist: str) -> np.ndarray:
    if dist == "fixed" or mean == 1:
        return np.full(n, mean, dtype=np.int64)
    return rng.integers(1, 2 * mean, size=n, endpoint=False).astype(np.int64)


#: the largest trace file read (bytes): some ten million rows of three numbers
MAX_TRACE_BYTES = 256 * 1024 * 1024
#: the columns of a trace file, each exactly once, in any order
TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


def _token_bound(key: str) -> int:
    return int(next(f for f in dataclasses.fields(ServingSpec) if f.name == key).metadata["le"])


def read_trace(path: str | Path) -> Requests:
    """Read a trace: a CSV of ``arrival_s, prompt_tokens, output_tokens`` (``#`` lines are
    comments), in order of arrival.

    The file must be a regular file of at most :data:`MAX_TRACE_BYTES`, in UTF-8, with exactly
    those three columns. Every row is checked: three values, ``arrival_s`` a finite number of
    seconds >= 0, token counts whole numbers within the ``serving`` kind's bounds; a bad row is
    an InputError naming the file, the line, the row, the column and the value. Rows whose
    arrival is earlier than the row before them are served in order of arrival (a stable sort),
    with one warning saying how many there were.
    """
    req = _trace(Path(path))
    return Requests(req.arrival_s.copy(), req.prompt_tokens.copy(), req.output_tokens.copy())


def trace_requests(trace_file: str) -> Requests:
    """The requests of a ``serving`` spec's ``trace_file`` (read-only arrays, read once per
    version of the file); a problem with the file itself names the key ``trace_file``."""
    try:
        return _trace(Path(trace_file))
    except InputError as exc:
        if exc.key is not None:  # a bad row: the trace's file, line, column and value
            raise
        raise InputError(exc.message, file=exc.file, key="trace_file", value=trace_file,
                         has_value=True) from None


def _trace(path: Path) -> Requests:
    """The trace at ``path``, cached by its resolved path, modification time and size."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return _read_trace(path)  # which reports the problem
    return _read_trace_cached(path, key)


@functools.lru_cache(maxsize=8)
def _read_trace_cached(path: Path, key: tuple[str, int, int]) -> Requests:
    del key  # the cache key: the file's resolved path, modification time and size
    req = _read_trace(path)
    for a in (req.arrival_s, req.prompt_tokens, req.output_tokens):
        a.flags.writeable = False  # shared by every caller
    return req


def _read_trace(path: Path) -> Requests:
    file = str(path)
    text = specs.decode_utf8(specs.read_input_bytes(path, MAX_TRACE_BYTES, "trace file"), file)
    limits = {"prompt_tokens": _token_bound("prompt_tokens"),
              "output_tokens": _token_bound("output_tokens")}
    arrival: array[float] = array("d")
    tokens: dict[str, array[int]] = {"prompt_tokens": array("q"), "output_tokens": array("q")}
    table = specs.CheckedCsv(text, file, TRACE_COLUMNS)
    row = 0
    for row, where, cells, _ in table:
        cell = cells["arrival_s"]
        try:
            t = float(cell)
        except ValueError:
            t = math.nan
            ok = False
        else:
            ok = math.isfinite(t) and t >= 0
        if not ok:
            raise InputError(f"row {row}: expected a finite number of seconds >= 0", file=where,
                             key="arrival_s", value=cell, has_value=True)
        arrival.append(t)
        for name, out in tokens.items():
            cell = cells[name]
            n = _whole(cell)
            if n is None or not 1 <= n <= limits[name]:
                raise InputError(f"row {row}: expected a whole number of tokens in "
                                 f"[1, {limits[name]:,}]", file=where, key=name, value=cell,
                                 has_value=True)
            out.append(n)
    if table.header is None:
        raise InputError(f"empty trace; expected a header line {','.join(TRACE_COLUMNS)} and "
                         "one row per request", file=file)
    if row == 0:
        raise InputError("the trace has a header but no requests", file=file)
    a = np.frombuffer(arrival, dtype=np.float64)
    p = np.frombuffer(tokens["prompt_tokens"], dtype=np.int64)
    o = np.frombuffer(tokens["output_tokens"], dtype=np.int64)
    back = int(np.count_nonzero(np.diff(a) < 0))
    if back:
        log.warning("trace %s: %d of %d rows arrive earlier than the row before them; serving "
                    "the requests in order of arrival_s", file, back, row)
    order = np.argsort(a, kind="stable")
    return Requests(a[order], p[order], o[order])


def _whole(text: str) -> int | None:
    """``text`` as a whole number ("12", "12.0", "1e3"), or None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        return None
    return int(x) if math.isfinite(x) and x.is_integer() else None


def make_requests(traffic: ServingSpec, seed: int = 0) -> Requests:
    """The requests a run serves: ``warmup_requests + requests`` of them, seeded.

    A trace's ``trace_file`` was resolved against its spec file's folder when that file was
    loaded; a relative path left (set with ``--set``, or a spec built in Python) is relative
    to the working folder.
    """
    n = traffic.warmup_requests + traffic.requests
    if traffic.arrival == "trace":
        req = trace_requests(traffic.trace_file)
        if len(req) < n:
            log.info("trace %s has %d requests; serving all of them", traffic.trace_file,
                     len(req))
        k = min(n, len(req))
        return Requests(req.arrival_s[:k], req.prompt_tokens[:k], req.output_tokens[:k])
    rng = np.random.default_rng(seed)
    if traffic.arrival == "closed":
        arrival = np.zeros(n)
    else:
        arrival = np.cumsum(rng.exponential(1.0 / traffic.arrival_rate_per_s, size=n))
    prompt = _lengths(rng, traffic.prompt_tokens, n, traffic.length_distribution)
    output = _lengths(rng, traffic.output_tokens, n, traffic.length_distribution)
    return Requests(arrival, prompt, output)


@dataclass(frozen=True)
class Lengths:
    """What the closed forms and capacity checks need of a request stream (tokens)."""

    mean_prompt: float
    mean_output: float
    longest_context: int


def lengths(traffic: ServingSpec) -> Lengths:
    """Mean prompt and output lengths and the longest context (prompt + output) of ``traffic``:
    from the trace file when there is one, else from the spec's means and distribution."""
    if traffic.arrival == "trace":
        req = make_requests(traffic)
        return Lengths(float(req.prompt_tokens.mean()), float(req.output_tokens.mean()),
                       int((req.prompt_tokens + req.output_tokens).max()))
    p, o = traffic.prompt_tokens, traffic.output_tokens
    return Lengths(float(p), float(o), longest_context(p, o, traffic.length_distribution))


def longest_context(prompt_tokens: Any, output_tokens: Any, distribution: str) -> Any:
    """The longest prompt + output of synthetic traffic with these means (scalars or arrays):
    uniform lengths reach 2 x mean - 1, fixed lengths equal their mean."""
    if distribution == "uniform":
        return (2 * prompt_tokens - 1) + (2 * output_tokens - 1)
    return prompt_tokens + output_tokens


@dataclass(frozen=True)
class ServeResult:
    """What a serving run measured (times in seconds unless the name says otherwise)."""

    requests: int
    ttft_p50_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p99_s: float
    ttft_mean_s: float
    tpot_mean_s: float
    throughput_tokens_per_s: float
    goodput_tokens_per_s: float
    slo_attainment: float
    stage_utilization: float
    makespan_s: float
    steps: int
    usd_per_1k_tokens: float
    usd_per_1k_tokens_at_slo: float
    #: 95% confidence half-widths by metric name (:data:`CI_METHOD`; ms where the name says)
    ci95: dict[str, float] = dataclasses.field(default_factory=dict)

    def metrics(self) -> Measured:
        """The flat metric names systems report, with :attr:`ci95`."""
        return Measured({
            "ttft_p50_ms": self.ttft_p50_s * 1e3,
            "ttft_p99_ms": self.ttft_p99_s * 1e3,
            "tpot_p50_ms": self.tpot_p50_s * 1e3,
            "tpot_p99_ms": self.tpot_p99_s * 1e3,
            "latency_ms_per_token": self.tpot_mean_s * 1e3,
            "ttft_ms": self.ttft_mean_s * 1e3,
            "throughput_tokens_per_s": self.throughput_tokens_per_s,
            "goodput_tokens_per_s": self.goodput_tokens_per_s,
            "slo_attainment": self.slo_attainment,
            "stage_utilization": self.stage_utilization,
            "requests": float(self.requests),
            "tco_usd_per_1k_tokens": self.usd_per_1k_tokens,
            "tco_at_slo_usd_per_1k_tokens": self.usd_per_1k_tokens_at_slo,
        }, ci95=self.ci95, ci_method=CI_METHOD)


#: batches of the batch-means confidence intervals
CI_BATCHES = 20
#: how :func:`serve` estimates its confidence intervals (docs/des.md says more)
CI_METHOD = (f"95% confidence half-widths by batch means within the run: the requests after the "
             f"warm-up in {CI_BATCHES} consecutive batches by arrival (means, percentiles, SLO "
             f"attainment), the measured window in {CI_BATCHES} equal intervals of time "
             f"(throughput, goodput, utilisation); Student t, {CI_BATCHES - 1} degrees of "
             f"freedom")


def _intervals(ttft: np.ndarray, tpot: np.ndarray, multi: np.ndarray, ok: np.ndarray,
               arrival: np.ndarray, first: np.ndarray, finish: np.ndarray, out: np.ndarray,
               busy: TimeBins, stages: int, makespan: float) -> dict[str, float]:
    """95% half-widths of the serving metrics by batch means (:data:`CI_METHOD`)."""
    b = CI_BATCHES
    ci: dict[str, float] = {}

    def by_request(name: str, x: np.ndarray, stat: Any, scale: float = 1.0) -> None:
        size = x.size // b
        if size >= 1:
            parts = x[: size * b].reshape(b, size)
            ci[name] = t_half_width(stat(parts)) * scale

    def pct(q: float) -> Any:
        return lambda parts: np.percentile(parts, q, axis=1)

    def mean(parts: np.ndarray) -> np.ndarray:
        return parts.mean(axis=1)

    by_request("ttft_ms", ttft, mean, 1e3)
    by_request("ttft_p50_ms", ttft, pct(50), 1e3)
    by_request("ttft_p99_ms", ttft, pct(99), 1e3)
    by_request("latency_ms_per_token", tpot, mean, 1e3)
    by_request("tpot_p50_ms", tpot, pct(50), 1e3)
    by_request("tpot_p99_ms", tpot, pct(99), 1e3)
    by_request("slo_attainment", ok.astype(float), mean)
    # token rates over equal intervals of the window, each request's output tokens spread
    # evenly over its decode (the first at its prefill)
    t0, t1 = float(arrival.min()), float(finish.max())
    if t1 > t0:
        edges = np.linspace(t0, t1, b + 1)
        span = np.where(multi, finish - first, 1.0)
        rest = (out - 1).astype(float)
        for name, w in (("throughput_tokens_per_s", np.ones(out.size, dtype=bool)),
                        ("goodput_tokens_per_s", ok)):
            rates = np.empty(b)
            for j in range(b):
                lo, hi = edges[j], edges[j + 1]
                at = (first >= lo) & ((first < hi) if j < b - 1 else (first <= hi))
                part = np.clip(np.minimum(finish, hi) - np.maximum(first, lo), 0.0, None)
                tok = at.astype(float) + np.where(multi, rest * part / span, 0.0)
                rates[j] = float(tok[w].sum()) / (hi - lo)
            ci[name] = t_half_width(rates)
    util = busy.batch_rates(makespan, b) / stages
    if util.size:
        ci["stage_utilization"] = t_half_width(util)
    return ci


def lane_sizes(batch: int, micro_batch: int) -> list[int]:
    """Capacities of the micro-batch lanes: ``batch`` split into lanes of ``micro_batch``."""
    if batch < 1 or micro_batch < 1:
        raise InputError(f"batch {batch} and micro_batch {micro_batch} must be >= 1")
    full, rest = divmod(batch, micro_batch)
    return [micro_batch] * full + ([rest] if rest else [])


def _at(env: simpy.Environment, t: float) -> Event:
    """An event that fires at absolute time ``t`` (>= now): a timeout scheduled at ``t`` itself,
    not at ``now + (t - now)``, which may round differently."""
    ev = Event(env)
    ev._ok, ev._value = True, None
    heappush(env._queue, (t, NORMAL, next(env._eid), ev))  # what env.schedule does
    return ev


class _Replica:
    """The SimPy model: stages (:class:`ComputeUnit`) and links (:class:`Link`) as shared
    resources, lanes as processes.

    A stage's work is measured in seconds of service (a unit of peak 1 s/s), the step time the
    step model gives; a link carries the activation bytes at its bandwidth, fair-shared among
    concurrent transfers, plus its latency.
    """

    def __init__(self, env: simpy.Environment, model: StepModel, traffic: ServingSpec,
                 req: Requests, lanes: list[int], trace: Any, *, first: np.ndarray,
                 finish: np.ndarray, prefix: str = "", role: str = "both",
                 hand_over: Any = None, kv_bytes_per_token: float = 0.0,
                 kv_link: tuple[float, float] = (1.0, 0.0),
                 max_batch_tokens: int = 0) -> None:
        self.env, self.model, self.req = env, model, req
        n_st = model.stages
        #: busy stage-seconds (the sum over stages), and when each stage is next free
        self.busy = 0.0
        self.free_at = [0.0] * n_st
        #: the tandem path's latest step when it met no queue, kept as (entry time, stage
        #: time) instead of free_at while the stages are uniform; None: free_at holds it
        self.lazy: tuple[float, float] | None = None
        self.free_end = 0.0  # when the last stage is next free
        self.bins = TimeBins()  # busy stage-seconds over time, for the utilisation's interval
        #: whether steps go through SimPy resources (a trace to record, or transfers on the
        #: stage links, fair-shared); otherwise each step is one event (see _tandem)
        self.resources = trace is not None or any(model.transfer_bytes(k, 1) > 0
                                                  for k in range(n_st - 1))
        self.uniform = bool(getattr(model, "uniform_stages", False))
        self.stages = ([ComputeUnit(env, 1.0, name=f"{prefix}stage{k}", recorder=trace)
                        for k in range(n_st)] if self.resources else [])
        self.prefix = prefix
        self.links = []
        for k in range(n_st - 1 if self.resources else 0):
            bw, lat = model.link(k)
            self.links.append(Link(env, bw, lat, name=f"{prefix}link{k}", recorder=trace))
        self.queue: deque[int] = deque()
        self.closed = False  # every request has been routed
        self.wakeup = env.event()
        self.first, self.finish = first, finish
        #: prompt + output tokens of the requests routed here and not finished
        self.outstanding = 0
        self.steps = 0
        self.continuous = traffic.batching == "continuous"
        #: "both" (prefill and decode), "prefill" (then hand over) or "decode" (prefilled)
        self.role = role
        self.hand_over = hand_over
        self.kv_bytes_per_token = kv_bytes_per_token
        if role == "prefill":
            self.kv_link = Link(env, kv_link[0], kv_link[1], name=f"{prefix}kv",
                                recorder=trace)
        self.max_batch_tokens = max_batch_tokens
        for i, cap in enumerate(lanes):
            env.process(self._lane_chunked(i, cap) if max_batch_tokens > 0
                        else self._lane(i, cap))

    def _hand_over(self, i: int):
        """Send request ``i``'s KV cache over this prefill replica's link, then to decode."""
        nbytes = self.kv_bytes_per_token * float(self.req.prompt_tokens[i])
        yield self.kv_link.transfer(nbytes, label=f"{self.prefix}kv {i}")
        self.outstanding -= int(self.req.prompt_tokens[i] + self.req.output_tokens[i])
        self.hand_over(i)

    def admit(self, i: int) -> None:
        """Request ``i`` arrives at this replica."""
        self.queue.append(i)
        self.outstanding += int(self.req.prompt_tokens[i] + self.req.output_tokens[i])
        self.poke()

    def poke(self) -> None:
        if not self.wakeup.triggered:
            self.wakeup.succeed()

    def _done(self, ids: np.ndarray) -> None:
        self.finish[ids] = self.env.now
        self.outstanding -= int(self.req.prompt_tokens[ids].sum()
                                + self.req.output_tokens[ids].sum())

    # -- one step through the pipeline ------------------------------------------------------------
    def _step(self, lane: int, kind: str, batch: int, tokens: float, rows: int):
        model = self.model
        self.steps += 1
        f = model.prefill_s if kind == "prefill" else model.decode_s
        if not self.resources:
            yield self._tandem(f, batch, tokens)
            return
        last = model.stages - 1
        label = f"{self.prefix}{kind} lane{lane} x{batch}"
        now = self.env.now
        total = 0.0
        for k, stage in enumerate(self.stages):
            dt = f(k, batch, tokens)
            total += dt
            yield stage.run(dt, label=label)
            if k < last:
                nbytes = model.transfer_bytes(k, rows)
                if nbytes > 0:
                    yield self.links[k].transfer(nbytes, label=label)
        self.busy += total
        self.bins.add(now, total)

    def _tandem(self, f: Any, batch: int, tokens: float) -> Event:
        """One step through FIFO stages without transfers between them, as one event.

        Steps enter stage 0 in the order of simulated time and keep that order through every
        stage (FIFO, one unit each), so a step's departure from stage k is
        ``max(its departure from k - 1, stage k's previous departure) + its service time`` (the
        tandem-queue recursion), known when the step starts: the same times the SimPy
        resources give, at one event per step instead of one or two per stage.
        """
        env = self.env
        t = now = env._now
        free = self.free_at
        n = len(free)
        if self.uniform:
            dt = f(0, batch, tokens)
            if t >= self.free_end:  # the stages are all free: no queue anywhere
                self.lazy = (t, dt)
                for _ in range(n):
                    t += dt
            else:
                if self.lazy is not None:  # the previous step's departures, stage by stage
                    u, du = self.lazy
                    for k in range(n):
                        u += du
                        free[k] = u
                    self.lazy = None
                for k in range(n):
                    if free[k] > t:
                        t = free[k]
                    t += dt
                    free[k] = t
            total = dt * n
        else:
            total = 0.0
            for k in range(n):
                dt = f(k, batch, tokens)
                if free[k] > t:
                    t = free[k]
                t += dt
                free[k] = t
                total += dt
        self.free_end = t
        self.busy += total
        self.bins.add(now, total)
        return _at(env, t)

    # -- a micro-batch lane -----------------------------------------------------------------------
    def _lane_chunked(self, lane: int, cap: int):
        """Chunked prefill (one stage, continuous batching): every step decodes the held
        sequences and prefills admitted prompts in chunks within the token budget
        ``max_batch_tokens`` (the decodes first, then the oldest prompts); a prompt's last
        chunk yields its first token."""
        env, req, model = self.env, self.req, self.model
        prompt, output = req.prompt_tokens, req.output_tokens
        ids = np.empty(0, dtype=np.int64)
        finish_at = np.empty(0, dtype=np.int64)
        step, next_finish, ctx_sum = 0, 0, 0
        pending: deque[list[int]] = deque()  # [request, prompt tokens prefilled so far]
        while True:
            while ids.size + len(pending) < cap and self.queue:
                pending.append([self.queue.popleft(), 0])
            n = ids.size
            budget = max(self.max_batch_tokens - n, 0)
            chunks: list[tuple[list[int], int]] = []
            for entry in pending:
                if budget <= 0:
                    break
                q = min(int(prompt[entry[0]]) - entry[1], budget)
                chunks.append((entry, q))
                budget -= q
            if not n and not chunks:
                if self.closed and not self.queue:
                    return
                if self.wakeup.triggered:
                    self.wakeup = env.event()
                yield self.wakeup
                continue
            completing = sum(1 for e, q in chunks if e[1] + q >= int(prompt[e[0]]))
            pre_q = sum(q for _, q in chunks) / len(chunks) if chunks else 0.0
            pre_kv = sum(e[1] for e, _ in chunks) / len(chunks) if chunks else 0.0
            dt = model.mixed_s(0, n, ctx_sum / n - 1.0 if n else 0.0, len(chunks), pre_q,
                               pre_kv, n + completing)
            self.steps += 1
            if self.resources:
                self.busy += dt
                self.bins.add(env.now, dt)
                yield self.stages[0].run(dt, label=f"{self.prefix}mixed lane{lane} x{n}"
                                         f"+{len(chunks)}")
            else:
                yield self._tandem(lambda *_, dt=dt: dt, n, 0.0)
            if n:
                step += 1
                ctx_sum += n
                if step == next_finish:
                    done = finish_at == step
                    gone = ids[done]
                    self._done(gone)
                    ctx_sum -= int(prompt[gone].sum() + output[gone].sum())
                    ids, finish_at = ids[~done], finish_at[~done]
                    next_finish = int(finish_at.min()) if ids.size else 0
            for entry, q in chunks:
                entry[1] += q
                i = entry[0]
                if entry[1] < int(prompt[i]):
                    continue
                pending.remove(entry)
                self.first[i] = env.now
                more = int(output[i]) - 1
                if more == 0:
                    self._done(np.asarray([i], dtype=np.int64))
                    continue
                ids = np.append(ids, i)
                finish_at = np.append(finish_at, step + more)
                ctx_sum += int(prompt[i]) + 1
                next_finish = int(finish_at.min())

    def _lane(self, lane: int, cap: int):
        """Admit, prefill and decode until every request has arrived and been served.

        Held requests are arrays (ids, the lane's decode step at which each finishes); between
        finishes a decode step only updates scalars (the sum of the held contexts).
        """
        env, req = self.env, self.req
        prompt, output = req.prompt_tokens, req.output_tokens
        ids = np.empty(0, dtype=np.int64)
        finish_at = np.empty(0, dtype=np.int64)  # decode step of this lane that ends each
        step = 0  # decode steps this lane has run
        next_finish = 0
        ctx_sum = 0  # sum over held requests of their context (prompt + tokens generated)
        while True:
            new: list[int] = []
            if not ids.size or self.continuous:
                while len(new) + ids.size < cap and self.queue:
                    new.append(self.queue.popleft())
            if new:
                new_ids = np.asarray(new, dtype=np.int64)
                p_tokens = int(prompt[new_ids].sum())
                if self.role != "decode":  # a decode replica gets them prefilled
                    yield from self._step(lane, "prefill", len(new), p_tokens / len(new),
                                          p_tokens)
                    self.first[new_ids] = env.now  # the prefill yields each first token
                more = output[new_ids] - 1
                if self.role == "prefill":  # hand the rest over with the KV cache
                    ended = new_ids[more == 0]
                    self._done(ended)
                    if ended.size:
                        self.hand_over.skip(int(ended.size))
                    for i in new_ids[more > 0]:
                        env.process(self._hand_over(int(i)))
                    continue
                self._done(new_ids[more == 0])
                keep = more > 0
                if keep.any():
                    ids = np.concatenate([ids, new_ids[keep]])
                    finish_at = np.concatenate([finish_at, step + more[keep]])
                    ctx_sum += int(prompt[new_ids[keep]].sum()) + int(keep.sum())
                    next_finish = int(finish_at.min())
                continue
            n = ids.size
            if n:
                # one new token per held request; the cache holds its context minus that token
                yield from self._step(lane, "decode", n, ctx_sum / n - 1.0, n)
                step += 1
                ctx_sum += n
                if step == next_finish:
                    done = finish_at == step
                    gone = ids[done]
                    self._done(gone)
                    ctx_sum -= int(prompt[gone].sum() + output[gone].sum())
                    ids, finish_at = ids[~done], finish_at[~done]
                    next_finish = int(finish_at.min()) if ids.size else 0
                continue
            if self.closed and not self.queue:
                return
            if self.wakeup.triggered:
                self.wakeup = env.event()
            yield self.wakeup


#: how a request picks its replica
ROUTERS = ("round-robin", "least-tokens")


def _pick(reps: list[_Replica], router: str, i: int) -> _Replica:
    if router == "round-robin":
        return reps[i % len(reps)]
    return min(reps, key=lambda r: r.outstanding)


class _Handover:
    """Prefilled requests to the decode replicas (by the router), closing them after the
    last request of the ``total`` (those of one output token never come)."""

    def __init__(self, reps: list[_Replica], router: str, total: int) -> None:
        self.reps, self.router, self.count = reps, router, 0
        self.expected = total

    def __call__(self, i: int) -> None:
        _pick(self.reps, self.router, self.count).admit(i)
        self.count += 1
        self._maybe_close()

    def skip(self, k: int) -> None:
        """``k`` requests finished at their prefill: none of them comes."""
        self.expected -= k
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.count >= self.expected:
            for rep in self.reps:
                rep.closed = True
                rep.poke()


def _route(env: simpy.Environment, req: Requests, reps: list[_Replica], router: str):
    """Hand each request to a replica as it arrives: in turn, or to the one with the fewest
    outstanding tokens (the first such on a tie)."""
    a = req.arrival_s
    for i in range(len(a)):
        if a[i] > env.now:
            yield env.timeout(a[i] - env.now)
        _pick(reps, router, i).admit(i)
    for rep in reps:
        rep.closed = True
        rep.poke()


def serve(
    model: StepModel,
    traffic: ServingSpec,
    *,
    batch: int,
    micro_batch: int | None = None,
    seed: int = 0,
    trace: Any = None,
    usd_per_hour: float = math.nan,
    requests: Requests | None = None,
    replicas: int = 1,
    router: str = "round-robin",
    prefill_replicas: int = 0,
    kv_bytes_per_token: float = 0.0,
    kv_link: tuple[float, float] = (1.0, 0.0),
    max_batch_tokens: int = 0,
) -> ServeResult:
    """Simulate ``replicas`` identical replicas behind a router serving ``traffic`` and
    measure them.

    ``model`` gives per-stage step times; ``batch`` sequences are in flight at most per
    replica, in lanes of ``micro_batch`` (default: ``batch`` split evenly over the stages);
    ``router`` (:data:`ROUTERS`) picks a replica per arriving request; ``usd_per_hour`` is what
    the replicas cost to run (rental or owned TCO), for the cost per 1k tokens. The throughput
    is every replica's together, the latencies and utilisation per request and stage. With
    ``prefill_replicas`` (disaggregation) those replicas only prefill, one request at a time,
    and send its KV cache (``kv_bytes_per_token`` per prompt token, over a link of
    ``kv_link`` = (bytes/s, latency s) each) to one of the ``replicas`` decode replicas. With
    ``max_batch_tokens`` (chunked prefill, one stage, continuous batching) every step mixes the
    decodes with prompt chunks within that token budget; ``model`` then needs
    ``mixed_s(stage, decodes, decode_context, chunks, chunk_tokens, chunk_context, rows_out)``.
    ``trace`` is an optional :class:`hwsim.des.trace.TraceRecorder`.
    """
    if micro_batch is None or micro_batch <= 0:
        micro_batch = -(-batch // model.stages)
    if replicas < 1:
        raise InputError(f"replicas {replicas} must be >= 1")
    if router not in ROUTERS:
        raise InputError(f"router {router!r} is not one of {', '.join(ROUTERS)}")
    req = requests if requests is not None else make_requests(traffic, seed)
    if len(req) == 0:
        raise InputError("no requests to serve")
    env = simpy.Environment()
    n = len(req)
    first, finish = np.full(n, math.nan), np.full(n, math.nan)
    lanes = lane_sizes(batch, micro_batch)
    role = "decode" if prefill_replicas else "both"
    if max_batch_tokens > 0 and (model.stages > 1 or prefill_replicas or
                                 traffic.batching != "continuous"):
        raise InputError("chunked prefill (max_batch_tokens) is modelled for one stage with "
                         "continuous batching and no disaggregation")
    reps = [_Replica(env, model, traffic, req, lanes, trace, first=first, finish=finish,
                     prefix=f"r{r}." if replicas > 1 or prefill_replicas else "", role=role,
                     max_batch_tokens=max_batch_tokens)
            for r in range(replicas)]
    pool = reps
    if prefill_replicas:
        handed = _Handover(reps, router, n)
        pool = [_Replica(env, model, traffic, req, [1], trace, first=first, finish=finish,
                         prefix=f"p{r}.", role="prefill", hand_over=handed,
                         kv_bytes_per_token=kv_bytes_per_token, kv_link=kv_link)
                for r in range(prefill_replicas)]
        reps = [*reps, *pool]
    env.process(_route(env, req, pool, router))
    env.run()
    if np.isnan(finish).any():  # pragma: no cover - a scheduling bug, not user input
        raise RuntimeError("serving DES ended with unfinished requests")
    makespan = float(env.now)
    stages = sum(len(rep.free_at) for rep in reps)
    util = (sum(rep.busy for rep in reps) / stages / makespan if makespan > 0
            else math.nan)

    skip = min(traffic.warmup_requests, len(req) - 1)
    sel = slice(skip, None)
    arrival, first, finish = req.arrival_s[sel], first[sel], finish[sel]
    out = req.output_tokens[sel]
    ttft = first - arrival
    multi = out > 1
    tpot = (finish[multi] - first[multi]) / (out[multi] - 1)
    window = float(finish.max() - arrival.min())
    tokens = float(out.sum())
    throughput = tokens / window if window > 0 else math.nan

    ok = np.ones(out.size, dtype=bool)
    if traffic.slo_ttft_ms > 0:
        ok &= ttft <= traffic.slo_ttft_ms * 1e-3
    if traffic.slo_tpot_ms > 0:
        per_tok = np.zeros(out.size)
        per_tok[multi] = tpot
        ok &= per_tok <= traffic.slo_tpot_ms * 1e-3
    goodput = float(out[ok].sum()) / window if window > 0 else math.nan

    def per_1k(rate: float) -> float:
        if not math.isfinite(usd_per_hour) or not rate > 0:
            return math.nan if not math.isfinite(usd_per_hour) else math.inf
        return usd_per_hour / 3600.0 / rate * 1e3

    def pct(x: np.ndarray, q: float) -> float:
        return float(np.percentile(x, q)) if x.size else math.nan

    bins = reps[0].bins
    for rep in reps[1:]:  # same width for all: merge to the coarsest
        while rep.bins.width > bins.width:
            bins._merge()
    for rep in reps[1:]:
        while rep.bins.width < bins.width:
            rep.bins._merge()
        for j, x in enumerate(rep.bins.sums):
            bins.add((j + 0.5) * bins.width, x)
    ci = _intervals(ttft, tpot, multi, ok, arrival, first, finish, out, bins, stages,
                    makespan)

    return ServeResult(
        requests=int(out.size),
        ttft_p50_s=pct(ttft, 50), ttft_p99_s=pct(ttft, 99),
        tpot_p50_s=pct(tpot, 50), tpot_p99_s=pct(tpot, 99),
        ttft_mean_s=float(ttft.mean()),
        tpot_mean_s=float(tpot.mean()) if tpot.size else math.nan,
        throughput_tokens_per_s=throughput,
        goodput_tokens_per_s=goodput,
        slo_attainment=float(ok.mean()),
        stage_utilization=util,
        makespan_s=makespan,
        steps=sum(rep.steps for rep in reps),
        usd_per_1k_tokens=per_1k(throughput),
        usd_per_1k_tokens_at_slo=per_1k(goodput),
        ci95=ci,
    )
