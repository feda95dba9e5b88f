"""A pool of ``n`` identical compute units, a SimPy resource with a peak rate and efficiency.

``run(ops)`` queues FIFO for a unit and holds it for ``ops / (peak_ops_per_s * efficiency)``
seconds; the returned event fires at the end of service. Jobs are dispatched by callbacks, not
by a process each, and a unit passes straight from one job to the next, so a job costs one or
two scheduler events (its service timeout and, if something waits on it, its completion)
instead of the six of a process around ``with resource.request()``.

:class:`ComputeUnit` is still a :class:`simpy.Resource`: other processes may
``request()``/``release()`` units directly and share the same ``n`` units with ``run`` jobs
(a freed unit goes to a waiting direct request first, then to the oldest waiting job). Only
``run`` jobs enter the statistics.

With a :class:`~hwsim.des.stats.Stats` each job's queueing delay (``<name>.wait_s``) and
service time (``<name>.service_s``) are recorded in the order jobs start (arrival order: the
queue is FIFO), with two time-weighted levels: ``<name>.busy`` (units in use; over ``n`` its
time average is the utilisation) and ``<name>.queue`` (jobs waiting).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import simpy
from simpy.events import Event

from hwsim.des.share import settle
from hwsim.des.stats import Stats
from hwsim.des.trace import Lanes, TraceRecorder


class _Job(Event):
    """A ``run`` job and its completion event."""

    __slots__ = ("dur", "label", "lane", "ops", "t_req", "t_start")

    def __init__(self, env: simpy.Environment, t_req: float, dur: float, ops: float,
                 label: str) -> None:
        super().__init__(env)
        self.t_req = t_req
        self.dur = dur
        self.ops = ops
        self.label = label
        self.t_start = t_req
        self.lane = -1


class ComputeUnit(simpy.Resource):
    """``n`` units of ``peak_ops_per_s`` each, running at ``efficiency`` of peak."""

    def __init__(
        self,
        env: simpy.Environment,
        peak_ops_per_s: float,
        efficiency: float = 1.0,
        n: int = 1,
        *,
        name: str = "compute",
        stats: Stats | None = None,
        recorder: TraceRecorder | None = None,
    ) -> None:
        if peak_ops_per_s <= 0 or not 0 < efficiency <= 1 or n < 1:
            raise ValueError("need peak_ops_per_s > 0, 0 < efficiency <= 1 and n >= 1")
        self._jobs: deque[_Job] = deque()
        self._held = 0  # units held by run() jobs (direct requests are in self.users)
        super().__init__(env, capacity=n)
        self.name = name
        self.peak_ops_per_s = float(peak_ops_per_s)
        self.efficiency = float(efficiency)
        self.n = n
        self.s_per_op = 1.0 / (self.peak_ops_per_s * self.efficiency)
        self.stats = stats
        self.recorder = recorder
        self.jobs_done = 0
        self.ops_done = 0.0
        self._wait: Any = None
        if stats is not None:
            self._wait = stats.appender(f"{name}.wait_s")
            self._service = stats.appender(f"{name}.service_s")
            self._busy = stats.level(f"{name}.busy")
            self._queued = stats.level(f"{name}.queue")
        self._lanes = Lanes() if recorder is not None else None

    def seconds(self, ops: float) -> float:
        """Service time of ``ops`` on one unit."""
        return ops * self.s_per_op

    @property
    def count(self) -> int:
        """Units in use, by run() jobs and direct requests."""
        return len(self.users) + self._held

    @property
    def waiting(self) -> int:
        """Jobs and direct requests waiting for a unit."""
        return len(self._jobs) + len(self.put_queue)

    def run(self, ops: float, *, label: str = "run") -> Event:
        """Queue for a unit and hold it for the time ``ops`` take; fires at the end."""
        env = self._env
        now = env._now
        job = _Job(env, now, ops * self.s_per_op, ops, label)
        if not self._jobs and not self.put_queue and len(self.users) + self._held < self._capacity:
            self._held += 1
            self._start(job, now)
        else:
            self._jobs.append(job)
            if self._wait is not None:
                self._queued.set(now, len(self._jobs))
            if self.recorder is not None:
                self.recorder.counter(f"{self.name}.queue", now, self.waiting)
        return job

    # -- dispatch --------------------------------------------------------------------------
    def _start(self, job: _Job, now: float, handover: bool = False) -> None:
        job.t_start = now
        if self._wait is not None:
            self._wait(now - job.t_req)
            self._service(job.dur)
            if not handover:
                self._busy.set(now, len(self.users) + self._held)
        if self._lanes is not None:
            job.lane = self._lanes.acquire()
        self._env.timeout(job.dur, job).callbacks.append(self._end)

    def _end(self, timer: Event) -> None:
        job: _Job = timer._value
        now = self._env._now
        self.jobs_done += 1
        self.ops_done += job.ops
        if self.recorder is not None:
            self.recorder.complete(job.label, job.t_start, now - job.t_start,
                                   thread=f"{self.name}[{job.lane}]", cat="compute",
                                   args={"ops": job.ops, "wait_s": job.t_start - job.t_req})
            self._lanes.release(job.lane)  # type: ignore[union-attr]
        if self._jobs and not self.put_queue:
            nxt = self._jobs.popleft()  # hand the unit straight to the next job
            if self._wait is not None:
                self._queued.set(now, len(self._jobs))
            if self.recorder is not None:
                self.recorder.counter(f"{self.name}.queue", now, self.waiting)
            self._start(nxt, now, True)
        else:
            self._held -= 1
            if self._wait is not None:
                self._busy.set(now, len(self.users) + self._held)
            self._trigger_put(None)
        settle(job, job.dur)

    def _do_put(self, event: simpy.resources.resource.Request) -> None:
        # SimPy's grant rule, counting the units held by run() jobs.
        if len(self.users) + self._held < self._capacity:
            self.users.append(event)
            event.usage_since = self._env._now
            event.succeed()

    def _trigger_put(self, get_event: Event | None) -> None:
        # Direct requests first (SimPy's own queue), then waiting run() jobs.
        super()._trigger_put(get_event)
        jobs = self._jobs
        if not jobs or self.put_queue:
            return
        now = self._env._now
        started = False
        while jobs and len(self.users) + self._held < self._capacity:
            job = jobs.popleft()
            self._held += 1
            self._start(job, now)
            started = True
        if started:
            if self._wait is not None:
                self._queued.set(now, len(jobs))
            if self.recorder is not None:
                self.recorder.counter(f"{self.name}.queue", now, self.waiting)
