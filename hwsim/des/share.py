"""Fair (processor-sharing) division of a time-varying capacity among concurrent flows.

This is the one mechanism behind a link's bandwidth and a memory's bandwidth: while ``n`` flows
are active each receives ``capacity * w_i / sum(w)`` (equal shares with the default weights).

The cost per flow is O(log n) and a constant number of events, independent of its size: the
server keeps a *virtual time* ``V`` (service received so far by a flow of weight 1). A flow of
``amount`` and weight ``w`` arriving at ``V0`` finishes when ``V`` reaches ``V0 + amount / w``,
its *tag*; tags never change, so flows wait in a heap ordered by tag. ``V`` advances at
``capacity / sum(w)``, so only the time of the earliest completion has to be recomputed, and
only when the set of flows or the capacity changes. One timer is pending at a time; a timer made
stale by a later change is recognised by its generation number and ignored.

Capacity changes come from an iterator of ``(time_s, capacity)`` that is consumed lazily: a
change costs an event only while flows are active, so an endless stochastic bandwidth process
does not keep ``env.run()`` from finishing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from heapq import heappop, heappush

import simpy
from simpy.events import Event

_TAG_RTOL = 1e-9  # flows whose tag is this close to V finish together (float rounding)


def settle(event: Event, value: object = None) -> None:
    """Succeed ``event`` with ``value``; if nothing waits on it yet, mark it processed at once.

    Scheduling an event nobody listens to costs a heap push and a scheduler step for nothing.
    A process that yields an already-processed event later resumes immediately with its value
    (SimPy's rule for processed events), so skipping the schedule is not observable.
    """
    if event.callbacks:
        event.succeed(value)
    else:
        event._ok, event._value, event.callbacks = True, value, None


class FairShare:
    """Processor sharing of ``capacity`` (units/s) among concurrent flows."""

    def __init__(
        self,
        env: simpy.Environment,
        capacity: float,
        *,
        changes: Iterable[tuple[float, float]] | None = None,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.env = env
        self._cap = float(capacity)
        self._v = 0.0            # virtual time: service per unit weight so far
        self._t = env.now        # time up to which _v (and the totals) are integrated
        self._wsum = 0.0         # total weight of active flows
        self._heap: list[tuple[float, int, float, float, Callable[[float], object]]] = []
        self._seq = itertools.count()
        self._gen = 0
        self._changes: Iterator[tuple[float, float]] | None = None
        self._next_change = (math.inf, self._cap)
        if changes is not None:
            self._changes = iter(changes)
            self._pull_change()
        #: time with at least one active flow and its integral of delivered units
        self.busy_s = 0.0
        self.served = 0.0
        self.flows_done = 0

    # -- public --------------------------------------------------------------------------------
    @property
    def capacity(self) -> float:
        """Capacity now (after applying any change due by now)."""
        self._advance()
        return self._cap

    @property
    def active(self) -> int:
        """Number of flows in progress."""
        return len(self._heap)

    def submit(self, amount: float, weight: float = 1.0) -> Event:
        """Start a flow of ``amount`` units; the event fires when all of it has been served."""
        done = Event(self.env)
        self.submit_callback(amount, done.succeed, weight)
        return done

    def submit_callback(
        self, amount: float, on_done: Callable[[float], object], weight: float = 1.0
    ) -> None:
        """Start a flow; ``on_done(amount)`` is called when it has been served.

        Cheaper than :meth:`submit` (no event of its own) for components that chain more work
        on completion. A flow of zero units calls ``on_done`` at once.
        """
        if amount < 0 or not math.isfinite(amount):
            raise ValueError(f"amount must be finite and >= 0, got {amount}")
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        if amount == 0:
            on_done(0.0)
            return
        self._advance()
        heappush(self._heap, (self._v + amount / weight, next(self._seq), weight, amount, on_done))
        self._wsum += weight
        self._reschedule()

    # -- internals -----------------------------------------------------------------------------
    def _pull_change(self) -> None:
        try:
            t, cap = next(self._changes)  # type: ignore[arg-type]
        except StopIteration:
            self._next_change = (math.inf, self._cap)
            self._changes = None
            return
        if cap < 0:
            raise ValueError(f"capacity change to {cap} < 0 at t={t}")
        self._next_change = (float(t), float(cap))

    def _integrate(self, t: float) -> None:
        dt = t - self._t
        if dt > 0 and self._wsum > 0:
            self._v += self._cap * dt / self._wsum
            self.busy_s += dt
            self.served += self._cap * dt
        self._t = t

    def _advance(self) -> None:
        now = self.env.now
        while self._next_change[0] <= now:
            t, cap = self._next_change
            self._integrate(max(t, self._t))
            self._cap = cap
            self._pull_change()
        self._integrate(now)

    def _reschedule(self) -> None:
        self._gen += 1
        if not self._heap:
            self._v = 0.0   # idle: restart virtual time (exact timings, no drift)
            self._wsum = 0.0
            return
        now = self.env.now
        t_done = math.inf
        if self._cap > 0:
            t_done = now + (self._heap[0][0] - self._v) * self._wsum / self._cap
        t_change = self._next_change[0]
        if t_done == math.inf and t_change == math.inf:
            return  # stalled at zero capacity with no change to come
        if t_done <= t_change:
            delay, completion = t_done - now, True
        elif math.isfinite(t_change):
            delay, completion = t_change - now, False
        else:
            return  # stalled at zero capacity with no change to come
        timer = self.env.timeout(max(delay, 0.0), (self._gen, completion))
        timer.callbacks.append(self._on_timer)

    def _on_timer(self, timer: Event) -> None:
        gen, completion = timer._value
        if gen != self._gen:
            return  # superseded by a later change
        self._advance()
        heap = self._heap
        if completion:  # the head is done whatever rounding left of it
            self._v = max(self._v, heap[0][0])
        while heap and heap[0][0] - self._v <= _TAG_RTOL * abs(heap[0][0]):
            _, _, weight, amount, on_done = heappop(heap)
            self._wsum -= weight
            self.flows_done += 1
            on_done(amount)
        self._reschedule()
