"""A memory (or on-chip buffer): capacity in bytes and bandwidth shared by concurrent users.

Capacity is a :class:`simpy.Container` of used bytes: :meth:`Memory.alloc` waits until the bytes
fit, :meth:`Memory.free` returns them. Reads and writes share one bandwidth fairly through the
same :class:`~hwsim.des.share.FairShare` a link uses, so ``k`` equal concurrent accesses each
take ``k`` times as long as one alone.
"""

from __future__ import annotations

import simpy
from simpy.events import Event

from hwsim.des.share import FairShare, settle
from hwsim.des.stats import Stats
from hwsim.des.trace import Lanes, TraceRecorder


class Memory:
    """``capacity_bytes`` of storage with ``bandwidth_Bps`` shared fairly by its accesses."""

    def __init__(
        self,
        env: simpy.Environment,
        capacity_bytes: float,
        bandwidth_Bps: float,
        *,
        latency_s: float = 0.0,
        name: str = "memory",
        stats: Stats | None = None,
        recorder: TraceRecorder | None = None,
    ) -> None:
        if capacity_bytes <= 0 or bandwidth_Bps <= 0 or latency_s < 0:
            raise ValueError("capacity and bandwidth must be > 0 and latency >= 0")
        self.env = env
        self.name = name
        self.capacity_bytes = float(capacity_bytes)
        self.latency_s = float(latency_s)
        self.space = simpy.Container(env, capacity=self.capacity_bytes, init=0.0)
        self.share = FairShare(env, bandwidth_Bps)
        self.stats = stats
        self.recorder = recorder
        self._lanes = Lanes() if recorder is not None else None
        self.peak_bytes = 0.0
        self.bytes_read = 0.0
        self.bytes_written = 0.0

    @property
    def used_bytes(self) -> float:
        return float(self.space.level)

    def alloc(self, nbytes: float) -> Event:
        """Reserve ``nbytes``; the event fires once they fit (FIFO among waiters)."""
        if nbytes > self.capacity_bytes:
            raise ValueError(f"{self.name}: allocation of {nbytes} B exceeds the capacity "
                             f"{self.capacity_bytes} B")
        ev = self.space.put(nbytes)

        def granted(_: object) -> None:
            self.peak_bytes = max(self.peak_bytes, self.space.level)
            if self.recorder is not None:
                self.recorder.counter(f"{self.name}.used_bytes", self.env.now,
                                      self.space.level, process=self.name)

        ev.callbacks.append(granted)
        return ev

    def free(self, nbytes: float) -> Event:
        """Release ``nbytes`` reserved by :meth:`alloc`."""
        if nbytes > self.space.level + 1e-9 * self.capacity_bytes:
            raise ValueError(f"{self.name}: freeing {nbytes} B but only {self.space.level} B used")
        return self.space.get(min(nbytes, self.space.level))

    def read(self, nbytes: float, *, label: str = "read") -> Event:
        """Read ``nbytes`` at this memory's fair share of bandwidth (plus latency)."""
        self.bytes_read += nbytes
        return self._access(nbytes, label)

    def write(self, nbytes: float, *, label: str = "write") -> Event:
        """Write ``nbytes`` at this memory's fair share of bandwidth (plus latency)."""
        self.bytes_written += nbytes
        return self._access(nbytes, label)

    def _access(self, nbytes: float, label: str) -> Event:
        env = self.env
        t0 = env.now
        done = Event(env)
        lane = self._lanes.acquire() if self._lanes is not None else -1

        def finished(_: object) -> None:
            if self.stats is not None:
                self.stats.record(f"{self.name}.{label}_s", env.now - t0)
            settle(done, nbytes)

        def moved(_: object) -> None:
            if self.recorder is not None:
                self.recorder.complete(label, t0, env.now - t0, thread=f"{self.name}[{lane}]",
                                       cat="memory", args={"bytes": nbytes})
                self._lanes.release(lane)  # type: ignore[union-attr]
            if self.latency_s > 0:
                env.timeout(self.latency_s).callbacks.append(finished)
            else:
                finished(None)

        self.share.submit_callback(nbytes, moved)
        return done


Buffer = Memory  # an on-chip buffer is the same model with a smaller capacity
