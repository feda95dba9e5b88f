"""A cycle-by-cycle stream harness on Amaranth's simulator, shared by the generators' checks.

Every generator talks ``amaranth.lib.stream`` (valid/ready) on its ports. :func:`run_streams`
drives the input streams with packed payloads (optionally with random gaps in ``valid``),
consumes the output streams (optionally with random gaps in ``ready``: back-pressure) and
records every transfer with the cycle it happened in, so a caller can check the data
bit-exactly and the cycle count against the timing model. With ``HWSIM_VCD_DIR`` set in the
environment every run also writes a waveform there (e.g. to look at a failing test).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.sim import Simulator

log = logging.getLogger(__name__)

CLOCK_PERIOD_S = 1e-8  # 100 MHz, only for waveform time stamps
_vcd_count = 0


def pack(values: Sequence[int], width: int) -> int:
    """Pack ``values`` (element 0 in the low bits) into one integer, two's complement."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def unpack(word: int, width: int, count: int, signed: bool) -> list[int]:
    """Split ``word`` into ``count`` elements of ``width`` bits (inverse of :func:`pack`)."""
    mask = (1 << width) - 1
    out = []
    for i in range(count):
        v = (word >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def wrap(value: int, width: int, signed: bool) -> int:
    """``value`` reduced modulo ``2**width`` (two's complement when ``signed``)."""
    v = int(value) & ((1 << width) - 1)
    if signed and v >> (width - 1):
        v -= 1 << width
    return v


@dataclass
class StreamTrace:
    """What a run saw: payloads received per output and the cycle of every transfer."""

    received: dict[str, list[int]] = field(default_factory=dict)
    in_cycles: dict[str, list[int]] = field(default_factory=dict)
    out_cycles: dict[str, list[int]] = field(default_factory=dict)
    cycles_run: int = 0

    @property
    def first_input_cycle(self) -> int:
        return min(c[0] for c in self.in_cycles.values() if c)

    @property
    def last_output_cycle(self) -> int:
        return max(c[-1] for c in self.out_cycles.values() if c)

    @property
    def span_cycles(self) -> int:
        """Cycles from the first input transfer to the last output transfer, both included."""
        return self.last_output_cycle - self.first_input_cycle + 1


def run_streams(
    dut: object,
    sources: Mapping[str, Sequence[int]],
    sinks: Mapping[str, int],
    *,
    p_valid: float | Mapping[str, float] = 1.0,
    p_ready: float = 1.0,
    seed: int = 0,
    max_cycles: int = 100_000,
    vcd: str | Path | None = None,
) -> StreamTrace:
    """Simulate ``dut``: feed ``sources`` (port name -> packed payloads), expect ``sinks``.

    ``sinks`` maps an output port name to the number of beats expected; the run stops once all
    have arrived (and fails with RuntimeError after ``max_cycles``). ``p_valid`` and ``p_ready``
    are the probabilities that a source starts offering its next beat and a sink accepts in a
    cycle (``p_valid`` may also map a source name to its own probability); an offered beat stays
    offered until it transfers, as the stream rules require.
    """
    rng = random.Random(seed)
    pv = {k: float(p_valid[k] if isinstance(p_valid, Mapping) else p_valid) for k in sources}
    trace = StreamTrace(
        received={k: [] for k in sinks},
        in_cycles={k: [] for k in sources},
        out_cycles={k: [] for k in sinks},
    )
    ports_in = {k: getattr(dut, k) for k in sources}
    ports_out = {k: getattr(dut, k) for k in sinks}

    async def testbench(ctx) -> None:
        idx = dict.fromkeys(sources, 0)
        offered = dict.fromkeys(sources, False)
        for cycle in range(max_cycles):
            for name, port in ports_in.items():
                beats = sources[name]
                # stream rule: once offered, a beat stays offered (unchanged) until it transfers
                offer = idx[name] < len(beats) and (
                    offered[name] or pv[name] >= 1.0 or rng.random() < pv[name])
                offered[name] = offer
                ctx.set(port.valid, int(offer))
                if offer:
                    ctx.set(port.payload.as_value(), beats[idx[name]])
            for port in ports_out.values():
                ctx.set(port.ready, int(p_ready >= 1.0 or rng.random() < p_ready))
            fired_in = [n for n, p in ports_in.items() if ctx.get(p.valid) and ctx.get(p.ready)]
            for name, port in ports_out.items():
                if ctx.get(port.valid) and ctx.get(port.ready):
                    trace.received[name].append(ctx.get(port.payload.as_value()))
                    trace.out_cycles[name].append(cycle)
            await ctx.tick()
            for name in fired_in:
                idx[name] += 1
                offered[name] = False
                trace.in_cycles[name].append(cycle)
            trace.cycles_run = cycle + 1
            if all(len(trace.received[n]) >= cnt for n, cnt in sinks.items()) and all(
                idx[n] >= len(b) for n, b in sources.items()
            ):
                return
        raise RuntimeError(
            f"simulation did not finish in {max_cycles} cycles: received "
            + ", ".join(f"{n}={len(v)}/{sinks[n]}" for n, v in trace.received.items())
        )

    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD_S)
    sim.add_testbench(testbench)
    if vcd is None and os.environ.get("HWSIM_VCD_DIR"):  # waveforms of every run, on demand
        global _vcd_count
        _vcd_count += 1
        folder = Path(os.environ["HWSIM_VCD_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        vcd = folder / f"{type(dut).__name__}_{os.getpid()}_{_vcd_count:04d}.vcd"
    if vcd is not None:
        with sim.write_vcd(str(vcd)):
            sim.run()
        log.info("wrote waveform %s", vcd)
    else:
        sim.run()
    return trace
