"""The analytical twin of the IAAD DES: expected miss ratios and latency, vectorised.

Every design point is averaged over *cells*: positions between two units (``P`` points
uniform over half a spacing; explicit unit positions use their mean spacing), Gauss-Hermite
nodes of the log-normal shadowing, the LOS and non-LOS states (TR 37.885 LOS probability), and
the cell-load levels (their stationary shares). A cell's rate is quasi-static: it changes over
metres and seconds, far slower than a message. Per cell and per message role (intra, inter,
planning):

- serialisation ``S = air bytes x E[transmissions] / rate``, ``E[transmissions] =
  sum_{i<M} p^i`` with ``p`` the Gilbert-Elliott chain's mean loss and ``M`` the ARQ bound;
  ARQ rounds ``E[R] = 1 + sum_{i=1}^{M-1} (1 - (1 - p^i)^n)`` for ``n`` packets (independent
  losses: the chain's bursts are not modelled here), each adding ``arq_delay_ms``; the message
  is lost with ``1 - (1 - p^M)^n``;
- queueing: a message every frame, ``rho = f S``; the Kingman (G/G/1) mean wait with periodic
  arrivals (``c_a^2 = 0``) and the retransmissions' ``c_s^2 = p / n``: ``W = c_s^2/2 rho / (1 -
  rho) S`` (Kingman, Proc. Cambridge Phil. Soc. 57, 1961); ``rho >= 1`` is a miss (the queue
  overflows and the unit discards);
- latency ``L = perception + W + S + arq + base + J``, ``J`` exponential of mean ``jitter_ms``:
  ``P(L > b) = exp(-(b - det) / jitter)`` (or a step without jitter);
- a frame misses when every message in its window fails: intra-frame the frame's own
  (deadline ``D``), inter-frame the last ``k + 1`` frames' (deadlines ``D + i / f``), planning
  the hints of ``planning_max_age_ms``; within a cell the messages fail independently;
- a handover every ``spacing / speed`` seconds with an interruption ``g`` (nine quantile nodes
  of the measured distribution) costs ``max(0, g + det - b_oldest)`` seconds of misses;
- a load level of 0 (no capacity left) of mean dwell ``T`` is missed for the share
  ``exp(-slack / T)`` of its time, ``slack`` what the window tolerates.

The adaptive policy is approximated by the best of the three in each cell (it sends the intra
message where it arrives in time, else the inter message paced to fit ``adaptive_load_limit``,
always the planning hint). What this leaves out and the DES has: bursts of loss, a handover's
backlog, the shadowing's and the load's correlation across a window, ping-pong handovers,
estimation error of the adaptive policy, the ordering of messages of different roles.
``hwsim.iaad``'s tests hold the twin to the DES where nothing contends (equal) and record the
difference in the degraded scenario (docs/iaad.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import log_ndtr, ndtr

from hwsim.batch import REASON
from hwsim.hw import link as L
from hwsim.iaad.channel import kinematics
from hwsim.iaad.trace import read_link_trace
from hwsim.system import Inputs

P_POSITIONS = 32
GH_NODES = 7
HO_NODES = 9

LINK_VECTOR = ("carrier_GHz", "bandwidth_MHz", "tx_power_dBm", "antenna_gain_dB",
               "noise_figure_dB", "shadowing_sigma_dB", "blockage_mean_dB", "blockage_sigma_dB",
               "spectral_efficiency_factor", "snr_min_dB", "rate_cap_Mbps", "base_latency_ms",
               "jitter_ms", "arq_delay_ms", "handover_p50_ms", "handover_p90_ms",
               "handover_p99_ms", "loss_good", "loss_bad", "bad_fraction", "payload_bytes",
               "header_bytes", "max_transmissions")
SCENARIO_VECTOR = ("road_length_m", "unit_spacing_m", "unit_height_m",
                   "vehicle_antenna_height_m", "lateral_offset_m", "speed_mps",
                   "rsu_frame_rate_hz", "vehicle_frame_rate_hz", "raw_bytes",
                   "compression_ratio", "features_bytes", "objects_bytes", "raw_latency_ms",
                   "compress_latency_ms", "features_latency_ms", "objects_latency_ms",
                   "fusion_deadline_ms", "inter_max_age_frames", "planning_max_age_ms",
                   "adaptive_load_limit")
VECTOR_KEYS = frozenset([f"link.{k}" for k in LINK_VECTOR]
                        + [f"scenario.{k}" for k in SCENARIO_VECTOR])

ROLES = ("intra", "inter", "planning")


def _bytes(kind: str, v: dict[str, np.ndarray]) -> np.ndarray:
    return {"raw": v["raw_bytes"], "compressed": v["raw_bytes"] / v["compression_ratio"],
            "features": v["features_bytes"], "objects": v["objects_bytes"]}[kind]


def _prep_s(kind: str, v: dict[str, np.ndarray]) -> np.ndarray:
    return {"raw": v["raw_latency_ms"], "compressed": v["compress_latency_ms"],
            "features": v["features_latency_ms"], "objects": v["objects_latency_ms"]}[kind] / 1e3


def _p_late(det, budget, jitter_s, sd=None):
    """P(det + N(0, sd^2) + J > budget), J exponential of mean jitter_s: the exponentially
    modified Gaussian's tail (a shifted exponential when sd = 0, a normal when jitter = 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        expo = np.exp(-np.maximum(budget - det, 0.0) / jitter_s)
        plain = np.where(det >= budget, 1.0, np.where(jitter_s > 0, expo, 0.0))
        if sd is None:
            return plain
        sd = np.broadcast_to(sd, np.broadcast_shapes(np.shape(det), np.shape(sd)))
        z = budget - det
        sdp = np.where(sd > 0, sd, 1.0)
        jp = np.where(jitter_s > 0, jitter_s, 1.0)
        u = z / sdp
        normal = ndtr(-u)  # the Gaussian's tail, also the first term of the EMG's
        emg = normal + np.exp(-z / jp + sdp ** 2 / (2 * jp ** 2) + log_ndtr(u - sdp / jp))
        gauss = np.where(jitter_s > 0, emg, normal)
        out = np.where(sd > 0, gauss, plain)
    return np.clip(np.nan_to_num(out, nan=1.0), 0.0, 1.0)


def _loss_count_var(p, ge) -> np.ndarray:
    """Variance per packet of the number of packets lost in a long run: ``p (1 - p)`` for
    independent losses, plus ``2 pi_G pi_B (l_B - l_G)^2 lambda / (1 - lambda)`` for the chain,
    ``lambda = 1 - p_GB - p_BG`` its state's lag-one correlation."""
    base = p * (1.0 - p)
    if ge is None:
        return base
    lg, lb, bf, burst = (np.asarray(x, dtype=float)[:, None] for x in ge)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_bg = np.where(bf > 0, 1.0 / burst, 1.0)
        p_gb = np.where(bf > 0, p_bg * bf / (1.0 - bf), 0.0)
        lam = 1.0 - p_gb - p_bg
        extra = 2 * bf * (1 - bf) * (lb - lg) ** 2 * np.where(lam > 0, lam / (1 - lam), 0.0)
    return base + np.where(bf > 0, extra, 0.0)


def cells(inputs: Inputs, lk: dict[str, np.ndarray], s: dict[str, np.ndarray], n: int):
    """(rate in B/s, weight, SNR-outage flag, load dwell of a zero level) per cell: arrays of
    shape (n, C). Weights sum to 1 over a point's cells."""
    link = inputs["link"]
    sc = inputs["scenario"]
    if link.trace_file:
        tr = read_link_trace(link.trace_file)
        dur = np.diff(np.r_[tr.time_s, tr.time_s[-1] + max(np.diff(tr.time_s).mean()
                                                             if tr.time_s.size > 1 else 1.0,
                                                             1e-9)])
        w = dur / dur.sum()
        rate = np.broadcast_to(tr.bandwidth_Bps, (n, w.size))
        return (rate, np.broadcast_to(w, (n, w.size)), np.zeros((n, w.size), bool),
                np.zeros((n, w.size)))
    spacing = s["unit_spacing_m"]
    if sc.unit_positions_m:
        k = len(sc.unit_positions_m)
        spacing = np.full(n, sc.road_length_m / k)
    frac = (np.arange(P_POSITIONS) + 0.5) / P_POSITIONS
    along = frac[None, :] * spacing[:, None] / 2.0                         # (n, P)
    dh = (s["unit_height_m"] - s["vehicle_antenna_height_m"])[:, None]
    d = np.sqrt(along ** 2 + (s["lateral_offset_m"] ** 2)[:, None] + dh ** 2)
    z, wz = np.polynomial.hermite_e.hermegauss(GH_NODES)
    wz = wz / wz.sum()
    noise = L.noise_dBm(lk["bandwidth_MHz"], lk["noise_figure_dB"])[:, None, None]
    if link.technology == "fixed":
        rate = np.broadcast_to(lk["rate_cap_Mbps"][:, None] * 1e6 / 8, (n, 1))
        w = np.ones((n, 1))
        outage = np.zeros((n, 1), bool)
    else:
        states = []
        p_los = L.los_probability(d, link.environment) if link.blockage else np.ones(d.shape)
        for los, p_state in ((True, p_los), (False, 1.0 - p_los)):
            pl = L.pathloss_dB(d, lk["carrier_GHz"][:, None], link.environment, los)
            sigma = lk["shadowing_sigma_dB"][:, None]
            if not los and link.environment == "highway":
                pl = pl + L.blockage_mean_dB(d, lk["blockage_mean_dB"][:, None])
                sigma = np.sqrt(sigma ** 2 + lk["blockage_sigma_dB"][:, None] ** 2)
            rx = (lk["tx_power_dBm"] + lk["antenna_gain_dB"])[:, None, None] - pl[:, :, None] \
                - sigma[:, :, None] * z[None, None, :]
            snr = rx - noise
            states.append((snr, p_state[:, :, None] * wz[None, None, :] / P_POSITIONS))
        snr = np.concatenate([x[0] for x in states], axis=1).reshape(n, -1)
        w = np.concatenate([x[1] for x in states], axis=1).reshape(n, -1)
        outage = snr < lk["snr_min_dB"][:, None]
        if link.outage == "loss":
            rate = np.broadcast_to(lk["rate_cap_Mbps"][:, None] * 1e6 / 8, snr.shape)
        else:
            rate = L.rate_Bps(snr, lk["bandwidth_MHz"][:, None],
                              lk["spectral_efficiency_factor"][:, None],
                              lk["snr_min_dB"][:, None], lk["rate_cap_Mbps"][:, None])
            outage = np.zeros(snr.shape, bool)
    dwell0 = np.zeros(rate.shape)
    if link.load_factors:
        f = np.asarray(link.load_factors)
        share = link.load_share
        dw = np.asarray(link.load_dwell_s)
        rate = (rate[:, :, None] * f[None, None, :]).reshape(n, -1)
        w = (w[:, :, None] * share[None, None, :]).reshape(n, -1)
        outage = np.repeat(outage, f.size, axis=1)
        dwell0 = np.broadcast_to(np.where(f == 0, dw, 0.0)[None, None, :],
                                 (n, w.shape[1] // f.size, f.size)).reshape(n, -1)
    return np.asarray(rate, float), np.asarray(w, float), outage, dwell0


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every analytical metric of ``n`` points (the system's BatchModel block)."""
    link = inputs["link"]
    sc = inputs["scenario"]

    def get(role: str, spec: Any, key: str) -> np.ndarray:
        v = points.get(f"{role}.{key}")
        return np.broadcast_to(np.asarray(getattr(spec, key) if v is None else v, dtype=float),
                               (n,)).astype(float)

    lk = {k: get("link", link, k) for k in LINK_VECTOR}
    s = {k: get("scenario", sc, k) for k in SCENARIO_VECTOR}
    rate, w, outage, dwell0 = cells(inputs, lk, s, n)
    f = s["rsu_frame_rate_hz"][:, None]
    period = 1.0 / f
    deadline = s["fusion_deadline_ms"][:, None] / 1e3
    k_inter = s["inter_max_age_frames"][:, None]
    trace = bool(link.trace_file)
    if trace:
        tr = read_link_trace(link.trace_file)
        p = np.broadcast_to(tr.loss, rate.shape)
        base = np.broadcast_to(tr.latency_s, rate.shape)
        jitter = np.zeros((n, 1))
    else:
        bf = lk["bad_fraction"]
        p = (bf * lk["loss_bad"] + (1 - bf) * lk["loss_good"])[:, None]
        base = lk["base_latency_ms"][:, None] / 1e3
        jitter = lk["jitter_ms"][:, None] / 1e3
    M = lk["max_transmissions"][:, None]
    m_max = int(np.max(lk["max_transmissions"]))
    arq = lk["arq_delay_ms"][:, None] / 1e3
    payload = lk["payload_bytes"][:, None]
    header = lk["header_bytes"][:, None]
    speed = s["speed_mps"]
    if sc.position_trace_file:
        dur = kinematics(sc)[0]
        speed = np.full(n, sc.road_length_m / max(dur, 1e-9))
    spacing = s["unit_spacing_m"] if not sc.unit_positions_m else np.full(
        n, sc.road_length_m / len(sc.unit_positions_m))
    ho_rate = np.where(np.asarray(lk["handover_p99_ms"]) > 0, speed / spacing, 0.0)[:, None]
    u = (np.arange(HO_NODES) + 0.5) / HO_NODES
    gaps = np.stack([L.handover_quantile(u, a, b, c) for a, b, c in zip(
        lk["handover_p50_ms"], lk["handover_p90_ms"], lk["handover_p99_ms"],
        strict=True)]) / 1e3                                                   # (n, H)
    kinds = {"intra": sc.intra_message, "inter": sc.inter_message,
             "planning": sc.planning_message}
    f_v = s["vehicle_frame_rate_hz"][:, None]
    # unit messages inside each window (the unit sends at f; windows are in vehicle frames)
    windows = {"intra": np.zeros((n, 1)), "inter": np.floor(k_inter * f / f_v + 1e-9),
               "planning": np.floor(s["planning_max_age_ms"][:, None] / 1e3 * f + 1e-9)}
    #: share of vehicle frames with a unit frame captured at the same time (aligned clocks)
    same_frame = np.minimum(1.0, f / f_v)
    det: dict[str, np.ndarray] = {}      # mean latency per cell
    rounds: dict[str, np.ndarray] = {}   # P(R = r), r = 1..m_max, shape (n, C, m_max)
    lat_r: dict[str, np.ndarray] = {}    # latency with r rounds, (n, C, m_max)
    serv: dict[str, np.ndarray] = {}
    rho: dict[str, np.ndarray] = {}
    fixed: dict[str, np.ndarray] = {}    # mean latency without queueing
    cs2s: dict[str, np.ndarray] = {}
    sd_r: dict[str, np.ndarray] = {}     # latency spread with r rounds, (n, C, m_max)
    air_tx: dict[str, np.ndarray] = {}   # bytes on air per message, retransmissions included
    pred: dict[str, np.ndarray] = {}     # the adaptive policy's predicted latency
    pload: dict[str, np.ndarray] = {}    # and load
    r_idx = np.arange(1, m_max + 1)[None, None, :]
    if trace:
        ge = None
    else:
        ge = (lk["loss_good"], lk["loss_bad"], lk["bad_fraction"],
              get("link", link, "bad_burst_packets"))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for role in ROLES:
            nbytes = _bytes(kinds[role], s)[:, None]
            pk = np.ceil(nbytes / payload)
            air = nbytes + pk * header
            e_tx = np.zeros(p.shape)
            for i in range(m_max):
                e_tx = e_tx + np.where(i < M, p ** i, 0.0)
            # rounds: round i carries the n p^(i-1) packets still lost; it has a loss with
            # 1 - G(n p^(i-1)), G = P(a run of packets all get through) on the chain
            surv = np.ones(p.shape)          # P(R > i - 1)
            pr = []
            for i in range(1, m_max + 1):
                # a round that happens carries at least one packet
                q_i = 1.0 - _all_good(np.maximum(pk * p ** (i - 1), 1.0), p, ge)
                pr.append(np.where(i <= M, surv * (1.0 - q_i), 0.0))
                surv = np.where(i <= M, surv * q_i, surv)
            pr_a = np.stack(pr, axis=-1)                          # P(R = r); lost: the rest
            S = np.where(rate > 0, air * e_tx / rate, np.inf)
            r_ = f * S
            cs2 = p / pk
            W = np.where(r_ < 1, cs2 / 2 * r_ / (1 - r_) * S, np.inf)
            lat0 = _prep_s(kinds[role], s)[:, None] + S + base
            lat_r[role] = (lat0 + W)[:, :, None] + (r_idx - 1) * arq[:, :, None]
            # spread of the retransmitted bytes (rounds >= 2): the variance of the lost count
            sd_r[role] = np.where(r_idx >= 2, (np.sqrt(pk * _loss_count_var(p, ge))
                                               * (payload + header) / rate)[:, :, None], 0.0)
            rounds[role] = pr_a
            tot = pr_a.sum(axis=-1)
            e_extra = np.sum(pr_a * (r_idx - 1), axis=-1) / np.where(tot > 0, tot, 1.0)
            fixed[role] = lat0 + e_extra * arq
            det[role] = fixed[role] + W
            serv[role], rho[role], cs2s[role] = S, r_, cs2
            air_tx[role] = np.broadcast_to(air * e_tx, rate.shape)
            # what the unit's policy predicts (hwsim/iaad/des.py): one transmission, mean
            # latency, no retransmission
            with np.errstate(divide="ignore"):
                pred[role] = _prep_s(kinds[role], s)[:, None] + air / rate + base + jitter
                pload[role] = air * f / rate
            # a broadcast link out of coverage loses everything
            rounds[role] = np.where(outage[:, :, None], 0.0, rounds[role])

        def in_time(role: str, lat: np.ndarray, budget: np.ndarray) -> np.ndarray:
            """P(delivered within budget) per cell: sum_r P(R = r) P(lat_r + J <= budget)."""
            ok = 1.0 - _p_late(lat, budget[:, :, None], jitter[:, :, None], sd_r[role])
            return np.sum(rounds[role] * ok, axis=-1)

        def miss(role: str, lat: np.ndarray, mean_det: np.ndarray,
                 every: np.ndarray | None = None) -> np.ndarray:
            """P(no usable message in the frame's window), per cell."""
            win = windows[role]
            kmax = int(np.max(win))
            out = np.ones(rate.shape)
            step = np.ones(rate.shape) if every is None else every
            for i in range(kmax + 1):
                use = (i <= win) & (np.mod(i, step) == 0)
                bad = 1.0 - in_time(role, lat, deadline + i * period)
                out = out * np.where(use, bad, 1.0)
            budget = deadline + win * period
            # handovers: seconds of misses per handover, per second
            ho = ho_rate * np.mean(np.maximum(0.0, gaps[:, None, :] + mean_det[:, :, None]
                                              - budget[:, :, None]), axis=2)
            out = 1.0 - (1.0 - out) * (1.0 - np.minimum(np.nan_to_num(ho, nan=1.0), 1.0))
            # a zero-capacity load level: the share of it the window cannot bridge
            slack = np.maximum(budget - np.nan_to_num(det_good[role], posinf=1e9), 0.0)
            zero = dwell0 > 0
            out = np.where(zero, np.exp(-slack / np.where(zero, dwell0, 1.0)), out)
            return np.clip(np.nan_to_num(out, nan=1.0), 0.0, 1.0)

        # the latency a message would see where the load is not zero (for the zero-load term)
        det_good = {}
        for role in ROLES:
            ok = (dwell0 == 0) & np.isfinite(det[role])
            num = np.sum(np.where(ok, w * det[role], 0.0), axis=1, keepdims=True)
            den = np.sum(np.where(ok, w, 0.0), axis=1, keepdims=True)
            det_good[role] = np.where(den > 0, num / den, np.inf)
        m_intra = 1.0 - same_frame * (1.0 - miss("intra", lat_r["intra"], det["intra"]))
        m_inter = miss("inter", lat_r["inter"], det["inter"])
        m_plan = miss("planning", lat_r["planning"], det["planning"])
        # adaptive: intra where it fits the load limit, inter paced to every m-th frame, the
        # hint always; hints wait for the residual of a perception message in service
        limit = s["adaptive_load_limit"][:, None]
        win_inter = windows["inter"]
        every = np.maximum(1.0, np.ceil(pload["inter"] / limit))
        inter_ok = pred["inter"] <= deadline + k_inter / f_v - sc.adaptive_margin_ms / 1e3
        paced = np.where((every <= win_inter + 1) & inter_ok, every, np.inf)
        r_p = rho["inter"] / paced
        w_p = np.where(np.isfinite(paced) & (r_p < 1),
                       cs2s["inter"] / 2 * r_p / (1 - r_p) * serv["inter"], np.inf)
        lat_paced = lat_r["inter"] - (det["inter"] - fixed["inter"])[:, :, None] \
            + w_p[:, :, None]
        a_inter = np.where(np.isfinite(paced), miss("inter", lat_paced, fixed["inter"] + w_p,
                                                    paced), 1.0)
        margin = sc.adaptive_margin_ms / 1e3
        send_intra = (pload["intra"] <= limit) & (pred["intra"] <= deadline - margin)
        a_intra = np.where(send_intra, m_intra, 1.0)
        resid = np.where(send_intra, rho["intra"] * serv["intra"] / 2,
                         np.where(np.isfinite(paced), r_p * serv["inter"] / 2, 0.0))
        resid = np.nan_to_num(resid, posinf=0.0)
        a_plan = miss("planning", lat_r["planning"] + resid[:, :, None],
                      det["planning"] + resid)
        m_adapt = np.minimum(np.minimum(a_intra, a_inter), a_plan)

        # --- the adaptive policy's freshness: per cell, the chance a frame gets same-frame data
        # (the intra message where the policy sends it, or the hint) by its deadline; the
        # planner's data is then k frames old with the geometric probability h (1 - h)^k
        # (frames independent within a cell). A zero-load level holds data for an
        # exponential time of its mean dwell (memoryless), whatever the window.
        h_intra = np.where(send_intra, in_time("intra", lat_r["intra"], deadline), 0.0)
        h_plan = in_time("planning", lat_r["planning"] + resid[:, :, None], deadline)
        h0 = np.clip(1.0 - (1.0 - h_intra) * (1.0 - h_plan), 0.0, 1.0)
        zero = dwell0 > 0
        T = period
        timeout = sc.track_timeout_s
        kmax = int(np.ceil(timeout * float(np.max(f)))) + 1
        de_mean = np.zeros(rate.shape)
        tail = np.ones(rate.shape)
        for k in range(kmax + 1):
            pk_ = h0 * (1.0 - h0) ** k
            de_mean = de_mean + pk_ * _de(np.minimum(k * T, timeout), sc)
            tail = tail - pk_
        de_mean = de_mean + np.maximum(tail, 0.0) * _de(timeout, sc)
        xs = np.linspace(0.0, timeout, 41)
        ez = np.exp(-xs[None, None, :] / np.where(zero, dwell0, 1.0)[:, :, None])
        pdf = np.diff(1.0 - ez, axis=2)
        de_zero = np.sum(pdf * _de((xs[1:] + xs[:-1]) / 2, sc)[None, None, :], axis=2) \
            + ez[:, :, -1] * _de(timeout, sc)
        de_cell = np.where(zero, de_zero, de_mean)
        aoi50 = _aoi_quantile(h0, zero, dwell0, T, w, 0.5) + deadline[:, 0]
        aoi99 = _aoi_quantile(h0, zero, dwell0, T, w, 0.99) + deadline[:, 0]
        # --- bytes the adaptive policy puts on air: the hint every frame, the intra message
        # where it is sent, else the paced inter message; each transmission lost with p
        inter_on = ~send_intra & np.isfinite(paced)
        per_frame = air_tx["planning"] + np.where(send_intra, air_tx["intra"], 0.0) \
            + np.where(inter_on, air_tx["inter"] / np.where(inter_on, paced, 1.0), 0.0)
        per_frame = np.where(rate > 0, per_frame, 0.0)
        lost_share = np.where(outage, 1.0, np.broadcast_to(p, rate.shape))

        def avg(x: np.ndarray) -> np.ndarray:
            return np.sum(w * x, axis=1)

        # latency of the intra messages that are delivered: the mixture over cells and rounds
        ok = np.isfinite(lat_r["intra"])
        wl = np.where(ok, w[:, :, None] * rounds["intra"], 0.0)
        wsum = wl.sum(axis=(1, 2))
        lat_mean = np.where(wsum > 0, np.sum(wl * np.where(ok, lat_r["intra"], 0.0),
                                             axis=(1, 2)) / np.where(wsum > 0, wsum, 1)
                            + jitter[:, 0], np.nan)
        lat_p99 = _mixture_quantile(np.where(ok, lat_r["intra"], 0.0).reshape(n, -1),
                                    wl.reshape(n, -1), jitter[:, 0], 0.99)
        gap_mean = np.asarray([L.handover_mean_ms(a, b, c) for a, b, c in zip(
            lk["handover_p50_ms"], lk["handover_p90_ms"], lk["handover_p99_ms"],
            strict=True)]) / 1e3
        mean_rate = avg(np.where(np.isfinite(rate), rate, 0.0)) * (
            1.0 - np.minimum(ho_rate[:, 0] * gap_mean, 1.0))
    units = _units(sc, s, n)
    duration = sc.road_length_m / speed if not sc.position_trace_file else np.full(
        n, kinematics(sc)[0])
    frames = sc.drives * np.ceil(duration * s["rsu_frame_rate_hz"] - 1e-9)
    sent = frames * np.sum(w * per_frame, axis=1)
    lost = frames * np.sum(w * per_frame * lost_share, axis=1)
    out = {
        "miss_ratio_intra": avg(m_intra), "miss_ratio_inter": avg(m_inter),
        "miss_ratio_planning": avg(m_plan), "miss_ratio_adaptive": avg(m_adapt),
        "latency_mean_ms": lat_mean * 1e3, "latency_p99_ms": lat_p99 * 1e3,
        "mean_rate_Mbps": mean_rate * 8 / 1e6, "units": units,
        "units_per_km": units / (s["road_length_m"] / 1e3),
        "aoi_p50_ms": aoi50 * 1e3, "aoi_p99_ms": aoi99 * 1e3,
        "displacement_error_m": np.sum(w * de_cell, axis=1),
        "bytes_sent": sent, "bytes_delivered": sent - lost, "bytes_lost": lost,
    }
    reason = np.full(n, "", dtype=object)
    out[REASON] = reason
    return out


def _de(age_s, sc) -> np.ndarray:
    """The displacement proxy of hwsim.iaad.fusion (kept in step by tests/test_iaad.py)."""
    a = np.minimum(np.maximum(np.asarray(age_s, dtype=float), 0.0), sc.track_timeout_s)
    return 0.5 * sc.braking_mps2 * (a + sc.planning_horizon_s) ** 2


def _aoi_quantile(h0, zero, dwell0, T, w, q, iters=50) -> np.ndarray:
    """``q``-quantile of the planner's data age over the cells: geometric in frames of ``T``
    with success ``h0``, or exponential of mean ``dwell0`` in zero-load cells."""
    n = w.shape[0]
    lo = np.zeros(n)
    hi = np.full(n, 60.0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        x = mid[:, None]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            geo = 1.0 - (1.0 - h0) ** (np.floor(x / T + 1e-9) + 1)
            expo = 1.0 - np.exp(-x / np.where(zero, dwell0, 1.0))
        cdf = np.sum(w * np.where(zero, expo, geo), axis=1)
        below = cdf < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return hi


def _units(sc, s: dict[str, np.ndarray], n: int) -> np.ndarray:
    if sc.unit_positions_m:
        return np.full(n, float(len(sc.unit_positions_m)))
    sp = s["unit_spacing_m"]
    first = sp / 2 if sc.first_unit_m < 0 else np.full(n, sc.first_unit_m)
    return np.maximum(np.floor((s["road_length_m"] - first) / sp) + 1, 1.0)


def _all_good(m, p, ge) -> np.ndarray:
    """P(``m`` consecutive packets all get through), ``m`` real >= 0: independent losses of
    ``p`` (a trace), or the Gilbert-Elliott chain started stationary: ``pi D (T D)^(m-1) 1``
    with ``T`` the packet transition matrix and ``D`` the per-state delivery, evaluated through
    the eigenvalues of ``T D`` (both real and >= 0 for a bursty chain)."""
    m = np.maximum(np.asarray(m, dtype=float), 0.0)
    if ge is None:
        return (1.0 - p) ** m
    lg, lb, bf, burst = (np.asarray(x, dtype=float)[:, None] for x in ge)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p_bg = np.where(bf > 0, 1.0 / burst, 1.0)
        p_gb = np.where(bf > 0, p_bg * bf / (1.0 - bf), 0.0)
        dg, db = 1.0 - lg, 1.0 - lb
        a, b = (1 - p_gb) * dg, p_gb * db          # A = T D, rows: from good, from bad
        c, d = p_bg * dg, (1 - p_bg) * db
        tr, det = a + d, a * d - b * c
        disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0.0))
        l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0.0)
        v1 = (1 - bf) * dg + bf * db                              # pi D 1
        v2 = (1 - bf) * dg * (a + b) + bf * db * (c + d)          # pi D A 1
        same = np.abs(l1 - l2) < 1e-12
        beta = np.where(same, 0.0, (v2 - l1 * v1) / np.where(same, 1.0, l2 - l1))
        alpha = v1 - beta
        g = alpha * l1 ** (m - 1) + beta * np.where(l2 > 0, l2 ** (m - 1), 0.0)
        g = np.where(bf > 0, g, dg ** m)
    return np.clip(np.where(m <= 0, 1.0, g), 0.0, 1.0)


def _mixture_quantile(det: np.ndarray, w: np.ndarray, jitter: np.ndarray, q: float,
                      iters: int = 60) -> np.ndarray:
    """``q``-quantile of sum_c w_c (det_c + Exp(jitter)) per point, by bisection (w need not be
    normalised; NaN where it sums to 0)."""
    tot = w.sum(axis=1)
    lo = np.min(np.where(w > 0, det, np.inf), axis=1)
    hi = np.max(np.where(w > 0, det, -np.inf), axis=1) + jitter * np.log(1 / (1 - q)) + 1e-9
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 1.0)
    j = jitter[:, None]
    for _ in range(iters):
        mid = (lo + hi) / 2
        t = mid[:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cdf_c = np.where(t >= det, np.where(j > 0, 1 - np.exp(-(t - det) / np.where(
                j > 0, j, 1.0)), 1.0), 0.0)
        cdf = np.sum(w * cdf_c, axis=1) / np.where(tot > 0, tot, 1.0)
        below = cdf < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.where(tot > 0, hi, np.nan)
