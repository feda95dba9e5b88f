"""Trace files: a measured link (time, bandwidth, one-way latency, loss) replacing the radio
model, and a vehicle's position over time replacing the constant speed.

Both are CSV with a header line naming exactly their columns (``#`` lines are comments). Every
row is checked: the right number of values, each a finite number in its range, time strictly
increasing (and, for positions, the vehicle never moving backwards). A bad row is one
:class:`~hwsim.errors.InputError` naming the file and line, the row number, the column and the
value.

Link trace (``link.trace_file``)::

    # time_s: the start of a step that lasts until the next row (the last row holds to the end)
    time_s,bandwidth_Mbps,latency_ms,loss
    0.0,80.0,11.0,0.01
    0.5,12.5,25.0,0.05

Position trace (``scenario.position_trace_file``)::

    time_s,position_m
    0.0,0.0
    1.0,19.5
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwsim import specs
from hwsim.errors import InputError

#: the largest trace file read (bytes)
MAX_TRACE_BYTES = 64 * 1024 * 1024

LINK_COLUMNS = ("time_s", "bandwidth_Mbps", "latency_ms", "loss")
POSITION_COLUMNS = ("time_s", "position_m")

#: column -> (lowest, highest, what is expected)
_RANGES = {
    "time_s": (0.0, 1e7, "a finite number of seconds >= 0"),
    "bandwidth_Mbps": (0.0, 1e6, "a bandwidth in Mbit/s >= 0 (at most 1e6)"),
    "latency_ms": (0.0, 1e6, "a one-way latency in ms >= 0 (at most 1e6)"),
    "loss": (0.0, 1.0, "a packet loss probability in [0, 1]"),
    "position_m": (0.0, 1e7, "a position in metres >= 0"),
}


@dataclass(frozen=True)
class LinkTrace:
    """A measured link: step functions of time (arrays of equal length, time increasing)."""

    time_s: np.ndarray
    bandwidth_Bps: np.ndarray
    latency_s: np.ndarray
    loss: np.ndarray

    def at(self, t: float) -> int:
        """Index of the step in force at ``t``."""
        return max(0, int(np.searchsorted(self.time_s, t, side="right")) - 1)


@dataclass(frozen=True)
class PositionTrace:
    time_s: np.ndarray
    position_m: np.ndarray


def _read(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    file = str(path)
    text = specs.decode_utf8(specs.read_input_bytes(path, MAX_TRACE_BYTES, "trace file"), file)
    out: dict[str, list[float]] = {c: [] for c in columns}
    table = specs.CheckedCsv(text, file, columns)
    row = 0
    prev_t = -math.inf
    for row, where, cells, _ in table:
        for c in columns:
            cell = cells[c]
            lo, hi, what = _RANGES[c]
            try:
                x = float(cell)
            except ValueError:
                x = math.nan
            if not (math.isfinite(x) and lo <= x <= hi):
                raise InputError(f"row {row}: expected {what}", file=where, key=c, value=cell,
                                 has_value=True)
            out[c].append(x)
        t = out["time_s"][-1]
        if t <= prev_t:
            raise InputError(f"row {row}: time goes backwards or repeats (the row before is at "
                             f"{prev_t:g} s); rows must be in increasing time", file=where,
                             key="time_s", value=cells["time_s"], has_value=True)
        prev_t = t
        if "position_m" in out and len(out["position_m"]) > 1 \
                and out["position_m"][-1] < out["position_m"][-2]:
            raise InputError(f"row {row}: the vehicle moves backwards (the row before is at "
                             f"{out['position_m'][-2]:g} m)", file=where, key="position_m",
                             value=cells["position_m"], has_value=True)
    if table.header is None or row == 0:
        raise InputError(f"empty trace; expected a header line {','.join(columns)} and at least "
                         "one row", file=file)
    return {c: np.asarray(v, dtype=float) for c, v in out.items()}


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _link_cached(path: Path, key: tuple[str, int, int]) -> LinkTrace:
    del key
    d = _read(path, LINK_COLUMNS)
    return LinkTrace(d["time_s"], d["bandwidth_Mbps"] * 1e6 / 8.0, d["latency_ms"] / 1e3,
                     d["loss"])


@functools.lru_cache(maxsize=8)
def _position_cached(path: Path, key: tuple[str, int, int]) -> PositionTrace:
    del key
    d = _read(path, POSITION_COLUMNS)
    if d["time_s"].size < 2:
        raise InputError("a position trace needs at least two rows", file=str(path))
    return PositionTrace(d["time_s"], d["position_m"])


def _cached(fn, path: str | Path, key_name: str):
    p = Path(path)
    try:
        key = _key(p)
    except OSError:
        key = None
    try:
        if key is None:
            return fn.__wrapped__(p, ("", 0, 0))  # which reports the problem
        return fn(p, key)
    except InputError as exc:
        if exc.key is not None:  # a bad row: the trace's file, line, column and value
            raise
        raise InputError(exc.message, file=exc.file, key=key_name, value=str(path),
                         has_value=True) from None


def read_link_trace(path: str | Path) -> LinkTrace:
    """The link trace at ``path`` (cached by path, modification time and size)."""
    return _cached(_link_cached, path, "trace_file")


def read_position_trace(path: str | Path) -> PositionTrace:
    """The position trace at ``path``."""
    return _cached(_position_cached, path, "position_trace_file")
