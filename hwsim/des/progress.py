"""A progress bar for discrete-event runs, whichever system runs them.

Every system builds its own ``simpy.Environment`` and calls ``env.run()``; :func:`des_progress`
counts the events any environment processes while it is active (by wrapping
``simpy.Environment.step`` for its duration) and draws, on stderr, a tqdm bar with the events
processed, their rate and the simulated time reached. The total is not known in advance, so
the bar shows activity and speed, not a fraction. The wrapper costs one Python call per event
and refreshes the bar every few thousand events.

    with des_progress("chiplet-cloud des", enabled=sys.stderr.isatty()):
        metrics = system.evaluate(inputs, "des")
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import simpy

#: events between two looks at the clock (a power of two minus one: a mask)
_EVERY = 4095

_lock = threading.Lock()


class _Counter:
    """The events processed, and the bar they are drawn on."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.events = 0
        self.shown = 0

    def update(self, now: float) -> None:
        self.bar.update(self.events - self.shown)
        self.shown = self.events
        self.bar.set_postfix_str(f"t={now:.4g} s simulated", refresh=False)


@contextlib.contextmanager
def des_progress(desc: str, enabled: bool | None = None) -> Iterator[None]:
    """Draw a bar of DES events on stderr while the block runs.

    ``enabled``: True draws, False does nothing (no wrapper either), None draws when stderr is
    a terminal. The bar is removed when the block ends, however it ends (Ctrl-C included).
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=" events", unit_scale=True, leave=False, file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5)
    counter = _Counter(bar)
    original = simpy.Environment.step

    def step(self: simpy.Environment) -> None:
        original(self)
        counter.events += 1
        if not counter.events & _EVERY:
            counter.update(float(self.now))

    with _lock:
        simpy.Environment.step = step  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _lock:
            simpy.Environment.step = original  # type: ignore[method-assign]
        bar.close()
