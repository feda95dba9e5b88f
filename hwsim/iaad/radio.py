"""The radio link in the DES: messages split into packets, queued, serialised at the current
rate, lost, retransmitted (bounded ARQ) and propagated.

A message of ``B`` bytes is ``ceil(B / payload)`` packets, each carrying ``header_bytes`` more
on air. The transmitter starts one message's first *round* at a time, first in first out (two
priority classes: planning hints ahead of perception data, non-preemptive). A round is the
message's packets that still need sending, serialised as one transfer on a
:class:`hwsim.des.Link` whose bandwidth follows the drive's
:class:`~hwsim.iaad.channel.Timeline` and cell load (so the rate may change, or drop to 0 in a
handover, in the middle of a round). Which packets of a round are lost is drawn from the link's
Gilbert-Elliott chain (:class:`hwsim.hw.link.GilbertElliott`; it runs on in packet times at
the current rate while the link is idle), or the trace's loss, or all of them while a broadcast
link is out of coverage; the Link accounts the lost bytes, so ``bytes_in == bytes_out +
bytes_dropped``. The lost packets are sent again as a new round ``arq_delay_ms`` later (the
feedback round trip), at once, sharing the link fairly with any round in progress (HARQ
interleaves retransmissions with new data rather than queueing them behind a whole message); a
packet that fails ``max_transmissions`` times loses its message. A delivered message arrives
``base_latency_ms`` plus an exponential jitter of mean ``jitter_ms`` (the trace's latency
instead, for a trace) after its last round is serialised. A message not started before its
``expire`` time is dropped by the unit unsent.

Events: one transfer (one or two scheduler events) per round, one timeout per retransmission,
the bandwidth steps while a round is in flight; never one per packet or per byte.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import simpy

from hwsim.des import Link
from hwsim.des.trace import TraceRecorder
from hwsim.hw.link import GilbertElliott, LinkSpec
from hwsim.iaad.channel import Timeline, load_factors

DELIVERED, LOST, EXPIRED = "delivered", "lost", "expired"


class Message:
    """One message from a unit to the vehicle and what became of it."""

    __slots__ = ("arrival", "attempts", "capture", "expire", "kind", "nbytes", "priority",
                 "ready", "role", "sent_end", "start", "status")

    def __init__(self, kind: str, role: str, nbytes: float, capture: float, ready: float,
                 expire: float, priority: int = 1) -> None:
        self.kind, self.role, self.nbytes = kind, role, float(nbytes)
        self.capture, self.ready, self.expire, self.priority = capture, ready, expire, priority
        self.start = math.nan
        self.sent_end = math.nan
        self.arrival = math.nan
        self.status = ""
        self.attempts = 0


class _Round:
    __slots__ = ("full", "last", "msg", "number")

    def __init__(self, msg: Message, full: int, last: float, number: int) -> None:
        self.msg, self.full, self.last, self.number = msg, full, last, number


class RadioLink:
    """The transmitter and the air interface of one unit-to-vehicle link."""

    def __init__(self, env: simpy.Environment, spec: LinkSpec, timeline: Timeline,
                 rng: np.random.Generator, *, recorder: TraceRecorder | None = None,
                 on_done=None) -> None:
        self.env, self.spec, self.timeline, self.rng = env, spec, timeline, rng
        bw = timeline.bandwidth
        self.link = Link(env, bw[0][1], 0.0, bandwidth_trace=bw[1:] if len(bw) > 1 else (),
                         bandwidth_factors=load_factors(spec, timeline), name="radio",
                         recorder=recorder)
        self.loss = None if timeline.trace is not None else GilbertElliott(
            rng, spec.loss_good, spec.loss_bad, spec.bad_fraction, spec.bad_burst_packets)
        self.payload = spec.payload_bytes
        self.header = spec.header_bytes
        self.queues: tuple[deque, deque] = (deque(), deque())
        self.active = 0              # rounds on the link now
        self.busy = False
        self.queued_bytes = 0.0      # payload waiting, not yet started
        self.on_done = on_done       # called with each message when its fate is known
        self.messages: list[Message] = []
        self.payload_delivered = 0.0
        self.payload_lost = 0.0
        self.payload_expired = 0.0
        self._idle_since = env.now

    # -- sending ---------------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Queue ``msg`` (its ``ready`` time is now)."""
        self.messages.append(msg)
        n = max(1, math.ceil(msg.nbytes / self.payload))
        last = msg.nbytes - (n - 1) * self.payload
        self.queues[msg.priority].append(_Round(msg, n - 1, last, 1))
        self.queued_bytes += msg.nbytes
        if not self.busy:
            self._start_next()

    def air_bytes(self, nbytes: float) -> float:
        """Bytes on air of a message of ``nbytes`` sent once."""
        return nbytes + max(1, math.ceil(nbytes / self.payload)) * self.header

    def _pop(self) -> _Round | None:
        now = self.env.now
        for q in self.queues:
            while q:
                r = q.popleft()
                self.queued_bytes -= r.msg.nbytes
                if now > r.msg.expire:
                    self._finish(r.msg, EXPIRED)
                    continue
                return r
        return None

    def _start_next(self) -> None:
        """Start the next first transmission (first in first out, by priority)."""
        r = self._pop()
        self.busy = r is not None
        if r is not None:
            r.msg.start = self.env.now
            self._transmit(r, main=True)

    def _transmit(self, r: _Round, main: bool) -> None:
        if self.active == 0 and self.loss is not None:
            # the loss chain runs on in packet times while nothing is sent
            idle = self.env.now - self._idle_since
            steps = idle * self.link.bandwidth_Bps / (self.payload + self.header)
            if steps >= 1:
                self.loss.skip(int(min(steps, 1e12)))
        self.active += 1
        msg = r.msg
        msg.attempts = r.number
        has_last = r.last > 0
        k = r.full + (1 if has_last else 0)
        lost_full, lost_last = self._losses(r.full, has_last, k)
        unit = self.payload + self.header
        nbytes = r.full * unit + ((r.last + self.header) if has_last else 0.0)
        dropped = lost_full * unit + ((r.last + self.header) if lost_last else 0.0)
        ev = self.link.transfer(nbytes, dropped=dropped, label=msg.kind)
        ev.callbacks.append(
            lambda _e, r=r, lf=lost_full, ll=lost_last, m=main: self._sent(r, lf, ll, m))

    def _losses(self, full: int, has_last: bool, k: int) -> tuple[int, bool]:
        tl = self.timeline
        now = self.env.now
        if tl.in_outage(now):
            return full, has_last
        if tl.trace is not None:
            p = float(tl.trace.loss[tl.trace.at(now)])
            lf = int(self.rng.binomial(full, p)) if full and p > 0 else 0
            return lf, bool(has_last and p > 0 and self.rng.random() < p)
        head, last = self.loss.lost(k)  # type: ignore[union-attr]
        if has_last:
            return head, last
        return head + int(last), False

    def _sent(self, r: _Round, lost_full: int, lost_last: bool, main: bool) -> None:
        msg = r.msg
        env = self.env
        self.active -= 1
        if self.active == 0:
            self._idle_since = env.now
        if lost_full or lost_last:
            if r.number >= self.spec.max_transmissions:
                self._finish(msg, LOST)
            else:
                nxt = _Round(msg, lost_full, r.last if lost_last else 0.0, r.number + 1)
                delay = self.spec.arq_delay_ms / 1e3
                if delay > 0:
                    env.timeout(delay).callbacks.append(
                        lambda _e, n=nxt: self._transmit(n, main=False))
                else:
                    self._transmit(nxt, main=False)
        else:
            msg.sent_end = env.now
            msg.arrival = env.now + self.latency_s()
            self._finish(msg, DELIVERED)
        if main:
            self._start_next()

    def latency_s(self) -> float:
        """One-way latency of a message whose last bit leaves now."""
        tl = self.timeline
        if tl.trace is not None:
            return float(tl.trace.latency_s[tl.trace.at(self.env.now)])
        j = self.spec.jitter_ms
        return (self.spec.base_latency_ms + (self.rng.exponential(j) if j > 0 else 0.0)) / 1e3

    def _finish(self, msg: Message, status: str) -> None:
        msg.status = status
        if status == DELIVERED:
            self.payload_delivered += msg.nbytes
        elif status == LOST:
            self.payload_lost += msg.nbytes
        else:
            self.payload_expired += msg.nbytes
        if self.on_done is not None:
            self.on_done(msg)

    # -- state the sender may read ----------------------------------------------------------
    @property
    def rate_Bps(self) -> float:
        """The rate now (what a channel-quality report tells the sender)."""
        return self.link.bandwidth_Bps

    @property
    def backlog_bytes(self) -> float:
        """Payload waiting to be sent (not counting the round in progress)."""
        return self.queued_bytes
