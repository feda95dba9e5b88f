"""The link a vehicle sees along the road, as functions of time for the DES.

:func:`build` draws one realisation for one drive: for every unit, path loss (TR 37.885),
LOS/non-LOS state and blockage loss, and log-normal shadowing, each correlated over distance,
on a grid of positions ``step_m`` apart; the serving unit (the strongest, with hysteresis); the
SNR and the rate of the serving unit; the handovers, each with an interruption drawn from the
link's measured distribution. The vehicle's position over time (constant speed or a trace)
turns the grid into a bandwidth trace for :class:`hwsim.des.Link`. With ``link.trace_file`` the
measured trace replaces all of this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from hwsim.hw import link as L
from hwsim.hw.link import LinkSpec
from hwsim.iaad.spec import ScenarioSpec
from hwsim.iaad.trace import LinkTrace, read_link_trace, read_position_trace


@dataclass
class Timeline:
    """One drive's link, as step functions of time."""

    duration_s: float
    #: bandwidth changes (time_s, bytes/s), time increasing, for hwsim.des.Link
    bandwidth: list[tuple[float, float]]
    #: times at which a broadcast link's packets start being lost (outage), and stop
    outage_t: np.ndarray            # step starts
    outage_on: np.ndarray           # bool per step
    handover_t: np.ndarray          # handover start times
    handover_gap_s: np.ndarray      # their interruptions
    #: the grid along the road, for reports
    grid_m: np.ndarray
    serving: np.ndarray             # serving unit per grid point
    snr_dB: np.ndarray
    rate_Bps: np.ndarray            # rate of the serving unit per grid point (no handover gaps)
    #: vehicle position -> time, time -> position
    time_of: object
    position_of: object
    trace: LinkTrace | None = None
    #: seed of the cell-load chain (the same for every method of a drive)
    load_seed: int = 0

    def in_outage(self, t: float) -> bool:
        if not self.outage_t.size:
            return False
        i = int(np.searchsorted(self.outage_t, t, side="right")) - 1
        return bool(self.outage_on[i]) if i >= 0 else False

    def rate_at(self, t: float) -> float:
        """Bandwidth in force at ``t`` (bytes/s)."""
        i = _step_index([b[0] for b in self.bandwidth], t)
        return self.bandwidth[i][1] if i >= 0 else self.bandwidth[0][1]


def _step_index(times, t: float) -> int:
    import bisect

    return bisect.bisect_right(times, t) - 1


def kinematics(scenario: ScenarioSpec):
    """(duration_s, time_of(x), position_of(t), max_speed) of the drive."""
    road = scenario.road_length_m
    if scenario.position_trace_file:
        tr = read_position_trace(scenario.position_trace_file)
        t, x = tr.time_s - tr.time_s[0], tr.position_m
        if x[-1] < road:
            end = float(t[-1])
        else:
            end = float(np.interp(road, x, t)) if np.all(np.diff(x) > 0) else float(
                t[np.argmax(x >= road)])
        speeds = np.diff(x) / np.diff(t)
        vmax = float(max(speeds.max(initial=0.0), 1e-3))

        def position_of(tt):
            return np.interp(tt, t, x)

        def time_of(xx):
            # first time the vehicle reaches xx (positions never decrease)
            idx = np.searchsorted(x, xx, side="left")
            idx = np.clip(idx, 1, len(x) - 1)
            x0, x1, t0, t1 = x[idx - 1], x[idx], t[idx - 1], t[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                f = np.where(x1 > x0, (xx - x0) / (x1 - x0), 0.0)
            return np.where(xx <= x[0], 0.0, t0 + np.clip(f, 0, 1) * (t1 - t0))

        return end, time_of, position_of, vmax
    v = scenario.speed_mps
    return road / v, (lambda xx: np.asarray(xx) / v), (lambda tt: np.asarray(tt) * v), v


def _compress(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.r_[True, values[1:] != values[:-1]]
    return times[keep], values[keep]


def build(link: LinkSpec, scenario: ScenarioSpec, rng: np.random.Generator) -> Timeline:
    """One realisation of the link along the drive (see the module docstring)."""
    tl = _build(link, scenario, rng)
    tl.load_seed = int(rng.integers(2**63))
    return tl


def load_factors(link: LinkSpec, timeline: Timeline):
    """The cell-load chain of the drive as ``(dwell_s, factor)`` steps, or None."""
    if not link.load_factors:
        return None
    from hwsim.des import markov_factors

    rng = np.random.default_rng(timeline.load_seed)
    start = int(rng.choice(len(link.load_factors), p=link.load_share))
    return markov_factors(rng, link.load_factors, link.load_dwell_s, start=start)


def _build(link: LinkSpec, scenario: ScenarioSpec, rng: np.random.Generator) -> Timeline:
    duration, time_of, position_of, _vmax = kinematics(scenario)
    step = scenario.step_m
    grid = np.arange(0.0, scenario.road_length_m + step / 2, step)
    units = scenario.units()
    if link.trace_file:
        tr = read_link_trace(link.trace_file)
        bw = [(float(t), float(b)) for t, b in zip(tr.time_s, tr.bandwidth_Bps, strict=True)]
        if bw[0][0] > 0:
            bw.insert(0, (0.0, bw[0][1]))
        empty = np.zeros(0)
        rate_grid = np.interp(time_of(grid), tr.time_s, tr.bandwidth_Bps)
        return Timeline(duration, bw, empty, empty.astype(bool), empty, empty, grid,
                        np.zeros(grid.size, dtype=int), np.full(grid.size, np.nan), rate_grid,
                        time_of, position_of, trace=tr)
    noise = float(L.noise_dBm(link.bandwidth_MHz, link.noise_figure_dB))
    cap_Bps = link.rate_cap_Mbps * 1e6 / 8
    if link.technology == "fixed":
        serving = np.zeros(grid.size, dtype=int)
        snr = np.full(grid.size, np.inf)
        rate = np.full(grid.size, cap_Bps)
    else:
        n = grid.size
        dh = scenario.unit_height_m - scenario.vehicle_antenna_height_m
        d = np.sqrt((grid[None, :] - units[:, None]) ** 2 + scenario.lateral_offset_m ** 2
                    + dh * dh)
        size = (units.size,)
        corr = link.shadowing_decorrelation_m
        shadow = link.shadowing_sigma_dB * L.correlated_normal(rng, n, step, corr, size)
        if link.blockage:
            z = L.correlated_normal(rng, n, step, corr, size)
            los = ndtr(z) < L.los_probability(d, link.environment)
            extra = (L.blockage_mean_dB(d, link.blockage_mean_dB) + link.blockage_sigma_dB
                     * L.correlated_normal(rng, n, step, corr, size))
        else:
            los = np.ones(d.shape, dtype=bool)
            extra = np.zeros(d.shape)
        pl = L.pathloss_dB(d, link.carrier_GHz, link.environment, los)
        if link.environment == "highway":
            pl = pl + np.where(los, 0.0, np.maximum(extra, 0.0))
        rx = link.tx_power_dBm + link.antenna_gain_dB - pl - shadow
        ttt = link.handover_time_to_trigger_ms / 1e3 * (scenario.road_length_m / duration)
        serving = _serving(rx, link.handover_hysteresis_dB, max(1, math.ceil(ttt / step)))
        snr = rx[serving, np.arange(n)] - noise
        if link.outage == "loss":  # broadcast: sent at the rate; lost where out of coverage
            rate = np.full(n, cap_Bps)
        else:
            rate = L.rate_Bps(snr, link.bandwidth_MHz, link.spectral_efficiency_factor,
                              link.snr_min_dB, link.rate_cap_Mbps)
    # handovers: where the serving unit changes
    ho_idx = np.flatnonzero(serving[1:] != serving[:-1]) + 1
    ho_t = np.asarray(time_of(grid[ho_idx]), dtype=float)
    if link.has_handover and ho_idx.size:
        gaps = L.handover_quantile(rng.random(ho_idx.size), link.handover_p50_ms,
                                   link.handover_p90_ms, link.handover_p99_ms) / 1e3
    else:
        gaps = np.zeros(ho_idx.size)
    # the grid in time: every point's start time (positions never decrease)
    t_grid = np.asarray(time_of(grid), dtype=float)
    times, values = _compress(t_grid, rate)
    # interruptions override the rate
    steps = dict(zip(times.tolist(), values.tolist(), strict=True))
    bw_t = np.asarray(list(steps))
    bw_v = np.asarray(list(steps.values()))
    for t0, g in zip(ho_t, gaps, strict=True):
        if g <= 0:
            continue
        t1 = t0 + g
        after = float(bw_v[max(0, np.searchsorted(bw_t, t1, side="right") - 1)])
        inside = (bw_t >= t0) & (bw_t < t1)
        bw_t, bw_v = bw_t[~inside], bw_v[~inside]
        k = np.searchsorted(bw_t, t0)
        bw_t = np.insert(bw_t, k, [t0, t1])
        bw_v = np.insert(bw_v, k, [0.0, after])
    order = np.argsort(bw_t, kind="stable")
    bw_t, bw_v = _compress(bw_t[order], bw_v[order])
    bandwidth = [(float(t), float(v)) for t, v in zip(bw_t, bw_v, strict=True)]
    if link.outage == "loss" and link.technology != "fixed":
        off = snr < link.snr_min_dB
        o_t, o_on = _compress(t_grid, off)
    else:
        o_t, o_on = np.zeros(0), np.zeros(0, dtype=bool)
    return Timeline(duration, bandwidth, o_t, o_on, ho_t, gaps, grid, serving, snr, rate,
                    time_of, position_of)


def _serving(rx: np.ndarray, hysteresis_dB: float, hold: int = 1) -> np.ndarray:
    """Serving unit per grid point: start on the strongest; another unit takes over once it
    has been ``hysteresis_dB`` stronger than the serving one for ``hold`` consecutive points
    (3GPP's A3 event and its time-to-trigger, as a distance at the drive's mean speed)."""
    best = np.argmax(rx, axis=0)
    top = rx[best, np.arange(rx.shape[1])]
    n = rx.shape[1]
    out = np.empty(n, dtype=int)
    cur, s, chunk = int(best[0]), 0, 4096
    while s < n:
        e = min(n, s + chunk + hold)
        cond = top[s:e] - rx[cur, s:e] >= max(hysteresis_dB, 1e-12)
        if hold > 1 and cond.size >= hold:
            # points where the condition has held for the last `hold` points
            run = np.convolve(cond.astype(int), np.ones(hold, dtype=int), "full")[:cond.size]
            fire = np.flatnonzero(run >= hold)
        else:
            fire = np.flatnonzero(cond) if hold <= 1 else np.zeros(0, dtype=int)
        if fire.size == 0 or s + int(fire[0]) >= min(n, s + chunk):
            stop = min(n, s + chunk)
            out[s:stop] = cur
            s = stop
            continue
        i = s + int(fire[0])
        out[s:i] = cur
        cur = int(best[i])
        s = i
    return out


def mean_rate_Bps(timeline: Timeline) -> float:
    """Time-average bandwidth of the drive, handover gaps included."""
    bw = timeline.bandwidth
    t = np.asarray([b[0] for b in bw] + [timeline.duration_s])
    v = np.asarray([b[1] for b in bw])
    dt = np.clip(np.diff(t), 0, None)
    return float(np.sum(v * dt) / max(math.fsum(dt), 1e-12))


def constant(rate_Bps: float, duration_s: float = math.inf) -> Timeline:
    """A link of constant rate, no outage and no handover (queueing checks, the fixed link)."""
    empty = np.zeros(0)
    return Timeline(duration_s, [(0.0, float(rate_Bps))], empty, empty.astype(bool), empty,
                    empty, empty, empty.astype(int), empty, empty, (lambda x: x),
                    (lambda t: t))
