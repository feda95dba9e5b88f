"""Chrome/Perfetto trace-event export, so a simulation can be looked at on a timeline.

:class:`TraceRecorder` collects *complete* events (``ph: "X"``: a named span on a track),
*counters* (``ph: "C"``: a value over time) and *instants* (``ph: "i"``) while a simulation
runs, and :meth:`TraceRecorder.write` writes the JSON object format
(``{"traceEvents": [...], "displayTimeUnit": "ms"}``) that https://ui.perfetto.dev and
``chrome://tracing`` open. Simulated seconds become trace microseconds.

A track is a (process, thread) pair of names; the recorder turns names into the integer
``pid``/``tid`` the format wants and emits ``process_name``/``thread_name`` metadata for them.
Recording is an append to a list (cheap enough to leave on for a short run); ``max_events``
bounds the memory a long run can use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_US = 1e6  # trace timestamps are microseconds


class TraceRecorder:
    """Collects trace events during a simulation and writes them as trace-event JSON."""

    def __init__(self, *, max_events: int = 250_000, process: str = "hwsim") -> None:
        self.max_events = int(max_events)
        self.default_process = process
        self.events: list[dict[str, Any]] = []
        self.dropped = 0
        self._pids: dict[str, int] = {}
        self._tids: dict[tuple[str, str], int] = {}

    # -- tracks --------------------------------------------------------------------------------
    def _pid(self, process: str) -> int:
        pid = self._pids.get(process)
        if pid is None:
            pid = self._pids[process] = len(self._pids) + 1
        return pid

    def _tid(self, process: str, thread: str) -> tuple[int, int]:
        pid = self._pid(process)
        tid = self._tids.get((process, thread))
        if tid is None:
            tid = self._tids[(process, thread)] = len(self._tids) + 1
        return pid, tid

    def _full(self) -> bool:
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return True
        return False

    # -- events --------------------------------------------------------------------------------
    def complete(
        self,
        name: str,
        start_s: float,
        dur_s: float,
        *,
        thread: str = "main",
        process: str | None = None,
        cat: str = "sim",
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """A span ``[start_s, start_s + dur_s)`` named ``name`` on track (process, thread)."""
        self._track_event(name, "X", start_s, thread, process, cat, args,
                          dur=max(dur_s, 0.0) * _US)

    def counter(
        self,
        name: str,
        t_s: float,
        values: float | Mapping[str, float],
        *,
        process: str | None = None,
        cat: str = "sim",
    ) -> None:
        """A counter sample: ``values`` is a number or a mapping of series name to number."""
        if self._full():
            return
        pid = self._pid(process or self.default_process)
        args = dict(values) if isinstance(values, Mapping) else {"value": float(values)}
        self.events.append({"name": name, "cat": cat, "ph": "C", "ts": t_s * _US, "pid": pid,
                            "tid": 0, "args": args})

    def instant(
        self,
        name: str,
        t_s: float,
        *,
        thread: str = "main",
        process: str | None = None,
        cat: str = "sim",
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """A point event at ``t_s`` on track (process, thread)."""
        self._track_event(name, "i", t_s, thread, process, cat, args, s="t")

    def _track_event(self, name: str, ph: str, t_s: float, thread: str, process: str | None,
                     cat: str, args: Mapping[str, Any] | None, **extra: Any) -> None:
        """Append one event of phase ``ph`` on track (process, thread), unless the cap is hit."""
        if self._full():
            return
        pid, tid = self._tid(process or self.default_process, thread)
        ev: dict[str, Any] = {"name": name, "cat": cat, "ph": ph, "ts": t_s * _US, **extra,
                              "pid": pid, "tid": tid}
        if args:
            ev["args"] = dict(args)
        self.events.append(ev)

    # -- output --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The trace as a JSON-ready object: metadata first, then events sorted by time."""
        meta: list[dict[str, Any]] = []
        for name, pid in self._pids.items():
            meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                         "args": {"name": name}})
        for (process, thread), tid in self._tids.items():
            meta.append({"name": "thread_name", "ph": "M", "pid": self._pids[process],
                         "tid": tid, "args": {"name": thread}})
        body = sorted(self.events, key=lambda e: e["ts"])  # stable: ties keep record order
        return {"traceEvents": meta + body, "displayTimeUnit": "ms"}

    def write(self, path: str | Path) -> Path:
        """Write the trace-event JSON to ``path`` (parents created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.dropped:
            log.warning("trace kept the first %d events and dropped %d (max_events)",
                        len(self.events), self.dropped)
        with path.open("w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, separators=(",", ":"))
        return path


class Lanes:
    """Numbered trace tracks for work that overlaps in time (concurrent flows, servers).

    The trace format nests spans on one thread, so concurrent spans go on separate threads;
    each starting span takes the lowest free lane and gives it back when it ends.
    """

    __slots__ = ("_free", "_next")

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0

    def acquire(self) -> int:
        if self._free:
            from heapq import heappop

            return heappop(self._free)
        self._next += 1
        return self._next - 1

    def release(self, lane: int) -> None:
        from heapq import heappush

        heappush(self._free, lane)
