"""A linear pipeline of stages joined by bounded buffers (double buffering).

Each stage is one process: take an item from its input buffer, work on it, put it into its
output buffer, which holds ``buffer_items`` items (1 by default: classic double buffering, where
a stage works on item ``i + 1`` while its output buffer still holds item ``i``). A stage whose
output buffer is full blocks (back-pressure), one with an empty input buffer starves, so in
steady state items leave at the rate of the slowest stage.

A stage's ``work`` is seconds per item (a number), or a callable ``item -> seconds`` or
``item -> Event`` (e.g. ``lambda tile: link.transfer(tile.nbytes)`` or
``lambda tile: unit.run(tile.ops)``), so stages can contend for shared kernel components.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import simpy
from simpy.events import Event

from hwsim.des.stats import Stats
from hwsim.des.trace import TraceRecorder

_END = object()  # end-of-stream marker passed down the buffers


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a name and its work per item (seconds, or a callable)."""

    name: str
    work: float | Callable[[Any], float | Event]


class Pipeline:
    """Stages in a line with ``buffer_items``-deep buffers between consecutive stages."""

    def __init__(
        self,
        env: simpy.Environment,
        stages: Sequence[Stage],
        *,
        buffer_items: int = 1,
        name: str = "pipeline",
        stats: Stats | None = None,
        recorder: TraceRecorder | None = None,
    ) -> None:
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        if buffer_items < 1:
            raise ValueError("buffer_items must be >= 1")
        if len({s.name for s in stages}) != len(stages):
            raise ValueError("stage names must be unique")
        self.env = env
        self.stages = tuple(stages)
        self.name = name
        self.buffer_items = buffer_items
        self.stats = stats
        self.recorder = recorder
        #: simulated time at which each item left the last stage
        self.completed: list[float] = []
        self.busy_s = {s.name: 0.0 for s in stages}
        self.blocked_s = {s.name: 0.0 for s in stages}

    def run(self, items: Iterable[Any]) -> simpy.Process:
        """Push ``items`` through; the process ends when the last leaves the last stage."""
        env = self.env
        buffers = [simpy.Store(env, capacity=self.buffer_items)
                   for _ in range(len(self.stages) - 1)]
        procs = [env.process(self._stage(i, buffers, items)) for i in range(len(self.stages))]
        return env.process(self._join(procs))

    def _join(self, procs: list[simpy.Process]):
        yield self.env.all_of(procs)
        return len(self.completed)

    def _stage(self, i: int, buffers: list[simpy.Store], items: Iterable[Any]):
        env = self.env
        stage = self.stages[i]
        last = i == len(self.stages) - 1
        src = iter(items) if i == 0 else None
        inp = buffers[i - 1] if i > 0 else None
        out = None if last else buffers[i]
        work = stage.work
        thread = f"{self.name}.{stage.name}"
        k = 0
        while True:
            item = next(src, _END) if src is not None else (yield inp.get())  # type: ignore[union-attr]
            if item is _END:
                if out is not None:
                    yield out.put(_END)
                return
            t0 = env.now
            w = work(item) if callable(work) else work
            yield w if isinstance(w, Event) else env.timeout(w)
            t1 = env.now
            self.busy_s[stage.name] += t1 - t0
            if self.recorder is not None:
                self.recorder.complete(f"item {k}", t0, t1 - t0, thread=thread, cat="pipeline")
            if self.stats is not None:
                self.stats.record(f"{thread}.work_s", t1 - t0)
            k += 1
            if out is None:
                self.completed.append(t1)
            else:
                yield out.put(item)
                self.blocked_s[stage.name] += env.now - t1

    def throughput_per_s(self) -> float:
        """Items per second in steady state, from the spacing of completions."""
        c = self.completed
        if len(c) < 2 or c[-1] <= c[0]:
            return float("nan")
        return (len(c) - 1) / (c[-1] - c[0])
