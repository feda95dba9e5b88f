"""``link``: a wireless link between a road-side unit and a vehicle, and the models that belong
to it.

A spec file under ``models/link/`` holds one radio technology's published figures (carrier,
channel bandwidth, transmit power, the rate a measured deployment achieved, round-trip times,
handover interruptions) and the few constants a model needs beyond them, each cited or marked
*chosen* in the file. The models here are vectorised numpy, import no system and no simulator:

- :func:`pathloss_dB`, :func:`los_probability`: 3GPP TR 37.885 (V2X) forms, distance in metres
  and carrier in GHz, as implemented in ns-3's ``three-gpp-v2v-propagation-loss-model.cc``;
- :func:`correlated_normal`: log-normal shadowing correlated over distance, the exponential
  autocorrelation of Gudmundson (Electronics Letters 27(23), 1991) as an AR(1) process along
  the vehicle's path;
- :func:`rate_Bps`: received SNR mapped to a rate by the attenuated Shannon bound
  ``alpha * B * log2(1 + SNR)`` (the form of 3GPP TR 36.942 annex A), zero below the
  technology's minimum SNR and capped at the rate the measured deployment achieved;
- :func:`handover_quantile`, :func:`handover_mean_ms`: the interruption of a handover drawn from
  its measured median, 90th and 99th percentiles (piecewise-linear quantile function);
- :class:`GilbertElliott`: bursty packet loss, a two-state Markov chain over packets (Gilbert,
  Bell Syst. Tech. J. 39, 1960; Elliott, ibid. 42, 1963), sampled by run lengths so that ``n``
  packets cost O(state changes), not O(n).

A link can instead follow a measured trace (``trace_file``: a CSV of time, bandwidth, one-way
latency and loss): the trace then replaces the radio model; the reader lives with the system
that drives the link (:mod:`hwsim.iaad.trace`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.specs import param, spec_kind

TECHNOLOGIES = ("lte", "nr-sub6", "nr-mmwave", "dsrc", "cv2x-pc5", "wifi", "fixed")
#: how the link behaves where the SNR is below ``snr_min_dB``: a scheduled cellular link holds
#: the data until the vehicle is reachable again (rate 0); a broadcast link keeps sending at its
#: rate and every packet is lost
OUTAGE = ("stall", "loss")
ENVIRONMENTS = ("highway", "urban")


@spec_kind("link")
@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """A road-side-unit-to-vehicle radio link: channel, rate, latency, loss, handover, ARQ."""

    name: str = param(help="identifier")
    technology: str = param("lte", choices=TECHNOLOGIES, help="radio technology (documentation, "
                            "and 'fixed': a constant rate with no channel model)")
    # -- the channel (3GPP TR 37.885) -----------------------------------------------------------
    environment: str = param("highway", choices=ENVIRONMENTS,
                             help="TR 37.885 path-loss and LOS-probability forms")
    carrier_GHz: float = param(2.1, unit="GHz", gt=0.1, le=100.0,
                               help="carrier frequency (TR 37.885 covers 0.5-100 GHz)")
    bandwidth_MHz: float = param(20.0, unit="MHz", gt=0, le=2000.0, help="channel bandwidth")
    tx_power_dBm: float = param(30.0, unit="dBm", ge=-30.0, le=60.0,
                                help="transmit power of the road-side unit's radio")
    antenna_gain_dB: float = param(0.0, unit="dB", ge=-20.0, le=60.0,
                                   help="transmit plus receive antenna (and beamforming) gain")
    noise_figure_dB: float = param(9.0, unit="dB", ge=0.0, le=30.0, help="receiver noise figure")
    shadowing_sigma_dB: float = param(3.0, unit="dB", ge=0.0, le=20.0,
                                      help="log-normal shadowing standard deviation (TR 37.885: "
                                           "3 dB LOS and NLOSv, 4 dB NLOS)")
    shadowing_decorrelation_m: float = param(10.0, unit="m", gt=0.0, le=1000.0,
                                             help="distance over which shadowing decorrelates "
                                                  "to 1/e (TR 37.885: 10 m LOS, 13 m NLOS)")
    blockage_mean_dB: float = param(5.0, unit="dB", ge=0.0, le=60.0,
                                    help="NLOSv (vehicle blockage) extra loss at short range: "
                                         "TR 37.885 gives 5 dB (one antenna above the blocker) "
                                         "or 9 dB (both below), plus max(0, 15 log10 d - 41)")
    blockage_sigma_dB: float = param(4.0, unit="dB", ge=0.0, le=20.0,
                                     help="NLOSv extra-loss standard deviation (TR 37.885: 4 or "
                                          "4.5 dB)")
    blockage: bool = param(True, help="draw LOS/non-LOS along the road by the TR 37.885 LOS "
                           "probability; false: always LOS")
    # -- rate -----------------------------------------------------------------------------------
    spectral_efficiency_factor: float = param(0.6, gt=0.0, le=1.0,
                                              help="alpha of alpha * B * log2(1 + SNR)")
    snr_min_dB: float = param(-10.0, unit="dB", ge=-30.0, le=40.0,
                              help="below this SNR the vehicle is out of coverage")
    rate_cap_Mbps: float = param(80.0, unit="Mbit/s", gt=0.0, le=100_000.0,
                                 help="the most the link carries for one vehicle (a measured "
                                      "deployment's median throughput, or the MCS rate)")
    outage: str = param("stall", choices=OUTAGE,
                        help="below snr_min_dB: 'stall' (rate 0, data waits) or 'loss' "
                             "(broadcast: sent at the rate and lost)")
    # -- latency --------------------------------------------------------------------------------
    base_latency_ms: float = param(10.0, unit="ms", ge=0.0, le=10_000.0,
                                   help="one-way latency after the last bit is sent (the "
                                        "shift of a shifted-exponential latency)")
    jitter_ms: float = param(1.0, unit="ms", ge=0.0, le=10_000.0,
                             help="mean of the exponential part of the one-way latency, "
                                  "drawn per message")
    # -- loss (Gilbert-Elliott over packets) and ARQ ---------------------------------------------
    loss_good: float = param(0.0, ge=0.0, le=1.0, help="packet loss probability, good state")
    loss_bad: float = param(1.0, ge=0.0, le=1.0, help="packet loss probability, bad state")
    bad_fraction: float = param(0.0, ge=0.0, lt=1.0,
                                help="stationary share of packets sent in the bad state")
    bad_burst_packets: float = param(1.0, ge=1.0, le=1e6,
                                     help="mean run of packets in the bad state")
    payload_bytes: int = param(1400, ge=1, le=65_536,
                               help="payload per packet (<= 65,536: an IP datagram)")
    header_bytes: int = param(40, ge=0, le=65_536,
                              help="per-packet overhead on air (<= 65,536 bytes)")
    max_transmissions: int = param(4, ge=1, le=64,
                                   help="transmissions per packet before it is given up "
                                        "(1: no ARQ; <= 64, beyond any standard's retry limit)")
    arq_delay_ms: float = param(8.0, unit="ms", ge=0.0, le=10_000.0,
                                help="time from a failed transmission to its retransmission "
                                     "(the HARQ/ARQ feedback round trip)")
    # -- handover between units -------------------------------------------------------------------
    handover_p50_ms: float = param(0.0, unit="ms", ge=0.0, le=60_000.0,
                                   help="median interruption of a handover (0: none)")
    handover_p90_ms: float = param(0.0, unit="ms", ge=0.0, le=60_000.0,
                                   help="90th-percentile interruption")
    handover_p99_ms: float = param(0.0, unit="ms", ge=0.0, le=60_000.0,
                                   help="99th-percentile interruption")
    handover_hysteresis_dB: float = param(3.0, unit="dB", ge=0.0, le=30.0,
                                          help="a neighbour must be this much stronger to take "
                                               "over (the A3 event offset)")
    handover_time_to_trigger_ms: float = param(0.0, unit="ms", ge=0.0, le=60_000.0,
                                               help="the neighbour must stay stronger this long "
                                                    "before the handover (A3 time-to-trigger)")
    # -- the share of the cell left to this vehicle (other traffic), over time ------------------
    load_factors: tuple[float, ...] = param(
        default_factory=tuple, help="levels of a continuous-time Markov chain multiplying the "
        "rate (1: the whole rate; 0: nothing left); empty: always 1")
    load_dwell_s: tuple[float, ...] = param(
        default_factory=tuple, unit="s", help="mean time in each level of load_factors (the "
        "chain then jumps uniformly to another level)")
    # -- trace-driven ----------------------------------------------------------------------------
    trace_file: str = param("", path=True,
                            help="CSV of time_s, bandwidth_Mbps, latency_ms, loss replacing the "
                                 "radio model (empty: the model)")

    def __post_init__(self) -> None:
        q = (self.handover_p50_ms, self.handover_p90_ms, self.handover_p99_ms)
        if not q[0] <= q[1] <= q[2]:
            raise ValueError(f"handover percentiles must not decrease: p50 {q[0]}, p90 {q[1]}, "
                             f"p99 {q[2]} ms")
        if len(self.load_factors) != len(self.load_dwell_s):
            raise ValueError(f"load_factors ({len(self.load_factors)} levels) and load_dwell_s "
                             f"({len(self.load_dwell_s)}) must have the same length")
        if len(self.load_factors) == 1 or len(self.load_factors) > 16:
            raise ValueError("load_factors needs 2 to 16 levels (or none)")
        if any(not 0.0 <= f <= 1.0 for f in self.load_factors):
            raise ValueError(f"load_factors must lie in [0, 1], got {self.load_factors}")
        if any(not 0.0 < d <= 1e6 for d in self.load_dwell_s):
            raise ValueError(f"load_dwell_s must lie in (0, 1e6] s, got {self.load_dwell_s}")
        if self.bad_fraction > 0 and self.loss_bad < self.loss_good:
            raise ValueError(f"loss_bad ({self.loss_bad}) below loss_good ({self.loss_good}): "
                             "the bad state must be the lossier one")

    # -- derived -------------------------------------------------------------------------------
    @property
    def mean_loss(self) -> float:
        """Stationary packet loss probability of the Gilbert-Elliott chain."""
        return self.bad_fraction * self.loss_bad + (1.0 - self.bad_fraction) * self.loss_good

    @property
    def load_share(self) -> np.ndarray:
        """Stationary time share of each load level (uniform jumps: proportional to dwell)."""
        d = np.asarray(self.load_dwell_s, dtype=float)
        return d / d.sum() if d.size else np.ones(1)

    @property
    def mean_load_factor(self) -> float:
        f = np.asarray(self.load_factors, dtype=float)
        return float(np.dot(self.load_share, f)) if f.size else 1.0

    @property
    def has_handover(self) -> bool:
        return self.handover_p99_ms > 0


# ------------------------------------------------------------------------------------------------
# channel (vectorised; d in metres, fc in GHz)


def pathloss_dB(d_m, fc_GHz, environment: str, los) -> np.ndarray:
    """TR 37.885 path loss: LOS (and NLOSv, which adds a blockage loss) or NLOS (urban only;
    on a highway a non-LOS link is blocked by vehicles, NLOSv)."""
    d = np.maximum(np.asarray(d_m, dtype=float), 1.0)
    fc = np.asarray(fc_GHz, dtype=float)
    los = np.asarray(los, dtype=bool)
    if environment == "highway":
        return 32.4 + 20.0 * np.log10(d) + 20.0 * np.log10(fc) + 0.0 * los
    lo = 38.77 + 16.7 * np.log10(d) + 18.2 * np.log10(fc)
    nlos = 36.85 + 30.0 * np.log10(d) + 18.9 * np.log10(fc)
    return np.where(los, lo, np.maximum(lo, nlos))


def los_probability(d_m, environment: str) -> np.ndarray:
    """TR 37.885 LOS probability at distance ``d``."""
    d = np.maximum(np.asarray(d_m, dtype=float), 0.0)
    if environment == "highway":
        near = np.minimum(1.0, 2.1013e-6 * d * d - 0.002 * d + 1.0193)
        far = np.maximum(0.0, 0.54 - 0.001 * (d - 475.0))
        return np.where(d <= 475.0, near, far)
    return np.minimum(1.0, 1.05 * np.exp(-0.0114 * d))


def blockage_mean_dB(d_m, base_dB) -> np.ndarray:
    """Mean NLOSv extra loss, TR 37.885: ``base + max(0, 15 log10 d - 41)``."""
    d = np.maximum(np.asarray(d_m, dtype=float), 1.0)
    return np.asarray(base_dB, dtype=float) + np.maximum(0.0, 15.0 * np.log10(d) - 41.0)


def noise_dBm(bandwidth_MHz, noise_figure_dB) -> np.ndarray:
    """Thermal noise in the channel: -174 dBm/Hz + 10 log10(B) + NF."""
    return (-174.0 + 10.0 * np.log10(np.asarray(bandwidth_MHz, dtype=float) * 1e6)
            + np.asarray(noise_figure_dB, dtype=float))


def rate_Bps(snr_dB, bandwidth_MHz, alpha, snr_min_dB, cap_Mbps) -> np.ndarray:
    """Bytes/s at ``snr_dB``: ``min(cap, alpha B log2(1 + SNR))``, 0 below ``snr_min_dB``."""
    snr = np.asarray(snr_dB, dtype=float)
    shannon = (np.asarray(alpha, dtype=float) * np.asarray(bandwidth_MHz, dtype=float) * 1e6
               * np.log2(1.0 + 10.0 ** (snr / 10.0)))
    bps = np.minimum(np.asarray(cap_Mbps, dtype=float) * 1e6, shannon)
    return np.where(snr >= snr_min_dB, bps / 8.0, 0.0)


def correlated_normal(rng: np.random.Generator, n: int, step_m: float,
                      decorrelation_m: float, size: tuple[int, ...] = ()) -> np.ndarray:
    """``size + (n,)`` standard normals along a path sampled every ``step_m``, correlated as
    ``exp(-distance / decorrelation_m)`` (Gudmundson): an AR(1) process started stationary."""
    a = math.exp(-step_m / decorrelation_m)
    z = rng.standard_normal((*size, n))
    out = np.empty_like(z)
    out[..., 0] = z[..., 0]
    s = math.sqrt(max(0.0, 1.0 - a * a))
    # x_k = a x_{k-1} + s z_k, evaluated as a linear filter (exact, vectorised)
    from scipy.signal import lfilter

    out[..., 1:] = lfilter([s], [1.0, -a], z[..., 1:], axis=-1,
                           zi=(a * z[..., :1]))[0] if n > 1 else out[..., 1:]
    return out


# ------------------------------------------------------------------------------------------------
# handover interruption: piecewise-linear quantile function through the measured percentiles

def _handover_knots(p50: float, p90: float, p99: float) -> tuple[np.ndarray, np.ndarray]:
    """The quantile function's knots: (0, max(0, 2 p50 - p90)), (0.5, p50), (0.9, p90),
    (0.99, p99), (1, p99 + (p99 - p90) / 9) (the last segment's slope continued)."""
    lo = max(0.0, 2.0 * p50 - p90)
    top = p99 + (p99 - p90) * (0.01 / 0.09)
    return (np.array([0.0, 0.5, 0.9, 0.99, 1.0]), np.array([lo, p50, p90, p99, top]))


def handover_quantile(u, p50_ms: float, p90_ms: float, p99_ms: float) -> np.ndarray:
    """Interruption (ms) at probability ``u`` in [0, 1]."""
    p, q = _handover_knots(p50_ms, p90_ms, p99_ms)
    return np.interp(np.asarray(u, dtype=float), p, q)


def handover_mean_ms(p50_ms: float, p90_ms: float, p99_ms: float) -> float:
    """Mean interruption of :func:`handover_quantile` (the exact integral of the knots)."""
    p, q = _handover_knots(p50_ms, p90_ms, p99_ms)
    return float(np.sum(np.diff(p) * (q[1:] + q[:-1]) / 2.0))


# ------------------------------------------------------------------------------------------------
# bursty loss


class GilbertElliott:
    """Packet loss by a two-state Markov chain over packets, state carried across calls.

    In the good state a packet is lost with probability ``loss_good``, in the bad state with
    ``loss_bad``; runs in the bad state last ``bad_burst_packets`` on average and the chain
    spends ``bad_fraction`` of packets there. :meth:`lost` draws the losses of the next ``n``
    packets from geometric run lengths and binomials: its cost grows with the number of state
    changes, not with ``n``. :meth:`skip` lets the chain run on while nothing is sent, so
    that it keeps time with the channel.
    """

    def __init__(self, rng: np.random.Generator, loss_good: float, loss_bad: float,
                 bad_fraction: float, bad_burst_packets: float) -> None:
        self.rng = rng
        self.loss = (float(loss_good), float(loss_bad))
        self.p_bg = 1.0 / float(bad_burst_packets) if bad_fraction > 0 else 1.0
        self.p_gb = (self.p_bg * bad_fraction / (1.0 - bad_fraction)) if bad_fraction > 0 else 0.0
        self.bad = bool(rng.random() < bad_fraction)
        self._left = self._run()

    def _run(self) -> float:
        p = self.p_bg if self.bad else self.p_gb
        return float(self.rng.geometric(p)) if p > 0 else math.inf

    def skip(self, n: int) -> None:
        """Advance the chain ``n`` packet times without sending (the channel moves on while
        the link is idle)."""
        if n > 1000.0 * (1.0 / max(self.p_gb, 1e-12) + 1.0 / self.p_bg):
            # far beyond the chain's memory: a fresh draw from its stationary distribution
            stay = self.p_bg / (self.p_gb + self.p_bg) if self.p_gb > 0 else 1.0
            self.bad = bool(self.rng.random() >= stay)
            self._left = self._run()
            return
        while n > 0:
            if n < self._left:
                self._left -= n
                return
            n -= int(self._left)
            self.bad = not self.bad
            self._left = self._run()

    def lost(self, n: int) -> tuple[int, bool]:
        """Losses among the next ``n`` packets: (how many of the first ``n - 1`` were lost,
        whether the last one was), so a caller can size a short last packet."""
        rng = self.rng
        lost_head = 0
        last = False
        i = 0
        while i < n:
            m = int(min(self._left, n - i))
            p = self.loss[self.bad]
            if i + m == n:  # this run holds the last packet
                head = m - 1
                if p >= 1.0:
                    lost_head += head
                    last = True
                elif p > 0.0:
                    lost_head += int(rng.binomial(head, p)) if head else 0
                    last = bool(rng.random() < p)
            elif p >= 1.0:
                lost_head += m
            elif p > 0.0:
                lost_head += int(rng.binomial(m, p))
            i += m
            self._left -= m
            if self._left <= 0:
                self.bad = not self.bad
                self._left = self._run()
        return lost_head, last


def coverage_probability(spec: LinkSpec, d_m, *, unit_height_m: float = 6.0,
                         vehicle_height_m: float = 1.6, lateral_m: float = 5.0) -> np.ndarray:
    """Probability that a packet sent ``d_m`` along the road from the unit is received: the SNR
    is at least ``snr_min_dB`` (LOS and non-LOS weighted by the TR 37.885 LOS probability,
    log-normal shadowing, the NLOSv blockage loss on a highway) and the Gilbert-Elliott chain
    does not lose it (its mean loss)."""
    from scipy.special import ndtr

    d = np.asarray(d_m, dtype=float)
    d3 = np.sqrt(d ** 2 + lateral_m ** 2 + (unit_height_m - vehicle_height_m) ** 2)
    noise = noise_dBm(spec.bandwidth_MHz, spec.noise_figure_dB)
    eirp = spec.tx_power_dBm + spec.antenna_gain_dB
    sig = max(spec.shadowing_sigma_dB, 1e-9)
    snr_los = eirp - pathloss_dB(d3, spec.carrier_GHz, spec.environment, True) - noise
    p = ndtr((snr_los - spec.snr_min_dB) / sig)
    if spec.blockage:
        pl_n = pathloss_dB(d3, spec.carrier_GHz, spec.environment, False)
        sig_n = sig
        if spec.environment == "highway":
            pl_n = pl_n + blockage_mean_dB(d3, spec.blockage_mean_dB)
            sig_n = math.hypot(sig, spec.blockage_sigma_dB)
        p_n = ndtr((eirp - pl_n - noise - spec.snr_min_dB) / sig_n)
        p_los = los_probability(d3, spec.environment)
        p = p_los * p + (1.0 - p_los) * p_n
    return p * (1.0 - spec.mean_loss)


def coverage_range_m(spec: LinkSpec, probability: float, **kw) -> float:
    """The distance at which :func:`coverage_probability` falls to ``probability`` (bisection
    over 1 m to 100 km; the probability falls with distance for every TR 37.885 form)."""
    lo, hi = 1.0, 1e5
    if coverage_probability(spec, lo, **kw) < probability:
        return 0.0
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        if coverage_probability(spec, mid, **kw) >= probability:
            lo = mid
        else:
            hi = mid
    return lo
