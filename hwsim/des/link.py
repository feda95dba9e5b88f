"""A network link: bandwidth shared fairly by concurrent transfers, latency, loss, and
bandwidth that changes over time.

A transfer of ``n`` bytes is serialised at the link's fair share of the bandwidth
(:class:`~hwsim.des.share.FairShare`), then propagates for ``latency_s``; over an idle link with
constant bandwidth it takes exactly ``latency_s + n / bandwidth``. Lost bytes are sampled once
per transfer (packets of ``mtu_bytes``, each lost independently with probability ``loss``): they
use bandwidth but are not delivered, so ``bytes_in == bytes_out + bytes_dropped`` once the link
is drained; a caller with its own loss process passes the bytes a transfer loses
(``transfer(n, dropped=...)``). The bandwidth may follow a piecewise-constant trace of
``(time_s, bytes/s)`` and/or a stochastic factor process of ``(duration_s, factor)`` steps (e.g.
:func:`markov_factors`); the effective bandwidth is their product. Each change costs one event,
and only while transfers are in progress.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise

import numpy as np
import simpy
from simpy.events import Event

from hwsim.des.share import FairShare, settle
from hwsim.des.stats import Stats
from hwsim.des.trace import Lanes, TraceRecorder


def markov_factors(
    rng: np.random.Generator,
    levels: Sequence[float],
    mean_dwell_s: float | Sequence[float],
    transition: Sequence[Sequence[float]] | None = None,
    start: int = 0,
) -> Iterator[tuple[float, float]]:
    """An endless continuous-time Markov chain of bandwidth factors, as ``(dwell_s, factor)``.

    State ``i`` holds ``levels[i]`` for an exponential time of mean ``mean_dwell_s[i]`` and then
    jumps by row ``i`` of ``transition`` (default: uniformly to another state). Two states
    (1.0, 0.0) give a Gilbert-Elliott on/off link; more model cross-traffic levels.
    """
    k = len(levels)
    dwell = np.broadcast_to(np.asarray(mean_dwell_s, dtype=float), (k,))
    if k < 1 or np.any(dwell <= 0) or any(x < 0 for x in levels):
        raise ValueError("markov_factors needs >= 1 level >= 0 and dwell times > 0")
    if transition is None:
        p = np.full((k, k), 1.0 / max(k - 1, 1))
        np.fill_diagonal(p, 0.0 if k > 1 else 1.0)
    else:
        p = np.asarray(transition, dtype=float)
        if p.shape != (k, k) or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0):
            raise ValueError("transition must be a k x k row-stochastic matrix")
    state = start
    while True:
        yield float(rng.exponential(dwell[state])), float(levels[state])
        state = int(rng.choice(k, p=p[state]))


def _capacity_steps(
    t0: float,
    base: float,
    trace: Sequence[tuple[float, float]],
    factors: Iterable[tuple[float, float]] | None,
) -> Iterator[tuple[float, float]]:
    """Merge a bandwidth trace and a factor process into ``(time_s, bandwidth)`` changes."""
    bw, f = base, 1.0
    tr = iter(trace)
    t_tr, bw_next = next(tr, (math.inf, base))
    fa = iter(factors) if factors is not None else None
    t_f = math.inf
    if fa is not None:
        dur, f = next(fa, (math.inf, 1.0))
        t_f = t0 + dur
        yield t0, bw * f
    while True:
        t = min(t_tr, t_f)
        if t == math.inf:
            return
        if t_tr == t:
            bw = bw_next
            t_tr, bw_next = next(tr, (math.inf, bw))
        if t_f == t:
            dur, f = next(fa, (math.inf, f))  # type: ignore[arg-type]
            t_f = t + dur
        yield t, bw * f


class Link:
    """A link of ``bandwidth_Bps`` bytes/s and ``latency_s``, fair-shared by its transfers."""

    def __init__(
        self,
        env: simpy.Environment,
        bandwidth_Bps: float,
        latency_s: float = 0.0,
        *,
        loss: float = 0.0,
        mtu_bytes: int = 1500,
        rng: np.random.Generator | None = None,
        bandwidth_trace: Sequence[tuple[float, float]] = (),
        bandwidth_factors: Iterable[tuple[float, float]] | None = None,
        name: str = "link",
        stats: Stats | None = None,
        recorder: TraceRecorder | None = None,
    ) -> None:
        if bandwidth_Bps < 0 or latency_s < 0:
            raise ValueError("bandwidth and latency must be >= 0")
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {loss}")
        if loss > 0 and rng is None:
            raise ValueError("a lossy link needs rng (a seeded numpy Generator)")
        if mtu_bytes <= 0:
            raise ValueError("mtu_bytes must be > 0")
        trace = [(float(t), float(b)) for t, b in bandwidth_trace]
        if any(b < 0 for _, b in trace) or any(b[0] < a[0] for a, b in pairwise(trace)):
            raise ValueError("bandwidth_trace must be (time, bandwidth >= 0) in time order")
        self.env = env
        self.name = name
        self.latency_s = float(latency_s)
        self.loss = float(loss)
        self.mtu_bytes = int(mtu_bytes)
        self.rng = rng
        changes = None
        if trace or bandwidth_factors is not None:
            changes = _capacity_steps(env.now, float(bandwidth_Bps), trace, bandwidth_factors)
        self.share = FairShare(env, bandwidth_Bps, changes=changes)
        self.stats = stats
        self.recorder = recorder
        self._lanes = Lanes() if recorder is not None else None
        self.bytes_in = 0.0
        self.bytes_out = 0.0
        self.bytes_dropped = 0.0
        self.transfers = 0

    @property
    def bandwidth_Bps(self) -> float:
        """Bandwidth now."""
        return self.share.capacity

    @property
    def in_flight_bytes(self) -> float:
        return self.bytes_in - self.bytes_out - self.bytes_dropped

    def _dropped(self, nbytes: float) -> float:
        if self.loss <= 0 or nbytes <= 0:
            return 0.0
        mtu = self.mtu_bytes
        full = int(nbytes // mtu)
        rest = nbytes - full * mtu
        lost = float(self.rng.binomial(full, self.loss)) * mtu if full else 0.0  # type: ignore[union-attr]
        if rest > 0 and self.rng.random() < self.loss:  # type: ignore[union-attr]
            lost += rest
        return lost

    def transfer(self, nbytes: float, *, weight: float = 1.0, label: str = "transfer",
                 dropped: float | None = None) -> Event:
        """Send ``nbytes``; the event fires on arrival with the number of bytes delivered.

        ``dropped`` (0 <= dropped <= nbytes) gives the bytes lost instead of the link's own
        independent draw, for a caller with its own loss process (bursty loss, an outage): they
        are accounted the same way, using bandwidth and counted in ``bytes_dropped``.
        """
        env = self.env
        t0 = env.now
        if dropped is None:
            dropped = self._dropped(nbytes)
        elif not 0.0 <= dropped <= nbytes:
            raise ValueError(f"dropped must be within [0, {nbytes}], got {dropped}")
        self.bytes_in += nbytes
        self.transfers += 1
        done = Event(env)
        lane = self._lanes.acquire() if self._lanes is not None else -1

        def arrived(_: object) -> None:
            delivered = nbytes - dropped
            self.bytes_out += delivered
            self.bytes_dropped += dropped
            if self.stats is not None:
                self.stats.record(f"{self.name}.transfer_s", env.now - t0)
                self.stats.count(f"{self.name}.bytes_dropped", dropped)
            settle(done, delivered)

        def sent(_: object) -> None:
            if self.recorder is not None:
                self.recorder.complete(label, t0, env.now - t0, thread=f"{self.name}[{lane}]",
                                       cat="link", args={"bytes": nbytes, "dropped": dropped})
                self._lanes.release(lane)  # type: ignore[union-attr]
            if self.latency_s > 0:
                env.timeout(self.latency_s).callbacks.append(arrived)
            else:
                arrived(None)

        self.share.submit_callback(nbytes, sent, weight)
        return done
