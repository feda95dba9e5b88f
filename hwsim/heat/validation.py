"""The heat system's validation cases, built in Python (several are ratios of two runs).

Sources are HEAT (Zhang et al., ICS'23, arXiv 2304.07334); the data are in
``hwsim/heat/data/``. Calibration cases show the fit of ``models/calibration/heat-*.toml``;
held-out cases were not used by any fit.
"""

from __future__ import annotations

import functools

import numpy as np

from hwsim.heat.calibration import rows
from hwsim.system import get_system
from hwsim.validation import Case

SRC = "Zhang et al., HEAT, ICS'23 (arXiv 2304.07334)"
TILES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
#: threads of the paper's tiling runs: every core of each CPU (Table 6: 128 threads on AMD)
FULL = {"epyc-7742-2s": 128, "a64fx": 48}


@functools.lru_cache(maxsize=32)
def _inputs(dataset: str = "amazon-books", cpu: str = "epyc-7742-2s",
            training: str = "simplex-k128-n64"):
    return get_system("heat").resolve([f"dataset={dataset}", f"cpu={cpu}",
                                       f"training={training}"])


def _run(metric: str, points: dict, **kw) -> np.ndarray:
    return np.asarray(get_system("heat").analytical_batch(_inputs(**kw), points)[metric])


def _tile(cpu: str, tile: float, refresh: float = 4096) -> float:
    return float(_run("tiling_speedup", {"training.tile_rows": [tile],
                                         "training.refresh_interval": [refresh],
                                         "training.threads": [FULL[cpu]]},
                      cpu=cpu, training="simplex-k128-n64-tile")[0])


def _best_tile(cpu: str) -> float:
    return float(np.max(_run("tiling_speedup", {"training.tile_rows": TILES,
                                                "training.threads": FULL[cpu]},
                             cpu=cpu, training="simplex-k128-n64-tile")))


def cases() -> list[Case]:
    out: list[Case] = []
    for r in rows("thread_scaling"):
        t = int(r["threads"])
        fit = r["role"] == "fit"
        dev = {}
        if t == 32:
            dev = dict(known_deviation=(
                "the model's thread-dependent terms (the power-limited clock, 3.4 -> 2.83 GHz "
                "at 32 active cores, per-CCX L3 replication, the DRAM queue at 13% "
                "utilisation) raise the per-thread sample time 10% from 16 to 32 threads; "
                "the measured rise is 28% (counting the released engine's gradient rows "
                "moved the error from 19.1% to 21.7%). The paper's own figures disagree "
                "with each other "
                "here: 83.7% efficiency from 1 to 64 threads means 64 x t(64) <= 2 x 71.8 s "
                "/ 0.837 = 172 s, below 32 x 6.81 s = 218 s, so the per-thread cost would "
                "fall from 32 to 64 threads, which no model whose threads never speed each "
                "other up can give (the held-out efficiency case passes). No Rome term at "
                "its published limits gives the step: the per-CCD fabric link is as busy at "
                "16 as at 32 threads (~30%), losing every L3 hit adds 4 points, the 2.25 GHz "
                "base clock 14, NUMA under compact placement ~2; scatter placement (32 "
                "CCXs, both sockets, full boost) makes it smaller (-27% after its refit); "
                "tables first-touched on one NPS4 quadrant give it after a refit (-2% to "
                "+4%, but 39% efficiency), a node setting our sources do not give"),
                ceiling=0.25)
        out.append(Case(
            system="heat", case=f"amazon-books uniform {t} threads", metric="epoch_time_s",
            reference=float(r["epoch_time_s"]), tolerance=0.15,
            source=f"{SRC}, Fig. 12", role="calibration" if fit else "held-out",
            group="HEAT thread scaling, EPYC 7742 node (Fig. 12)",
            conditions=f"AmazonBooks, K 128, 64 negatives, cosine, uniform sampler, {t} "
                       "threads, 2 x EPYC 7742 (the figure's CPU taken as the x86 node)",
            predict=functools.partial(lambda t: float(_run(
                "epoch_time_s", {"training.threads": [t]})[0]), t), **dev))
    out.append(Case(
        system="heat", case="parallel efficiency 1 to 64 threads",
        metric="parallel_efficiency",
        reference=0.837, tolerance=0.15, source=f"{SRC}, Fig. 12 text",
        group="HEAT parallel efficiency, EPYC 7742 node (Fig. 12 text)",
        conditions="AmazonBooks, K 128, 64 negatives, uniform sampler, EPYC 7742 node: "
                   "epoch(1 thread) / (64 x epoch(64 threads)), compact placement (64 "
                   "threads fill socket 0)",
        predict=_efficiency_64))
    for r in rows("pytorch_profile"):
        ds = r["dataset"]
        dev = {}
        if ds in ("amazon-books", "gowalla"):
            dev = dict(known_deviation=(
                "one bandwidth share over the byte passes: the measured AmazonBooks / Gowalla "
                "time ratio (2.71) is below the byte ratio (3.86) and even below the ratio of "
                "their step counts (2.94), which no per-byte or per-step cost explains; "
                "Gowalla's training count (810,128) is unverified, and the fit splits the "
                "error between its two points"), ceiling=0.25)
        out.append(Case(
            system="heat", case=f"pytorch dense {ds}", metric="pytorch_cpu_epoch_time_s",
            reference=float(r["epoch_time_s"]), tolerance=0.15, source=f"{SRC}, Table 1",
            role="calibration" if r["role"] == "fit" else "held-out",
            group="PyTorch SimpleX baseline, dense gradients (Table 1)",
            conditions=f"{ds}, K 128, 64 negatives, batch 1024, dense gradients, the EPYC "
                       "7742 node (device not stated in the table; assumed)",
            predict=functools.partial(lambda ds: float(_run(
                "pytorch_cpu_epoch_time_s", {}, dataset=ds)[0]), ds), **dev))
    for r in rows("gpu_memory"):
        ds = r["dataset"]
        out.append(Case(
            system="heat", case=f"v100 memory {ds}", metric="gpu_memory_GB",
            reference=float(r["share_of_32GB_percent"]) / 100 * 32, tolerance=0.15,
            source=f"{SRC}, Table 3", role="calibration",
            group="PyTorch SimpleX memory on a 32 GB V100 (Table 3)",
            conditions=f"{ds}, K 128; share of 32 GB",
            predict=functools.partial(lambda ds: float(_run(
                "gpu_memory_GB", {}, dataset=ds)[0]), ds)))
    shape = "HEAT tiling speed-up: shape (section 5.5)"
    out.append(Case(
        system="heat", case="tile 128 rows above 2x", metric="tiling_speedup",
        reference=2.0, bounds=(2.0, 1e9), tolerance=0.0, source=f"{SRC}, section 5.5 text",
        group=shape, conditions="AmazonBooks, K 128, 64 negatives, 128 threads (the "
        "paper's tiling runs: Table 6's thread count, every core), EPYC 7742 node, N1 = 128 "
        "(the largest tile of the '> 2x for at most 128 rows' statement), N2 = 4096",
        predict=lambda: _tile("epyc-7742-2s", 128),
        known_deviation=(
            "the model's gain is capped by its compute share: Table 4's forward split (reads "
            "62%, vector work 26%) fixes the vector kernel's speed, and the fused backward is "
            "as much vector work again, so reads are 54% of a uniform sample at 2 threads "
            "(the model gives 2.0x at 2-16 threads, but the paper's tiling runs use 128); at "
            "128 threads (any placement: every core is busy) the power-limited clock (2.25 "
            "against 3.4 GHz) lengthens the vector work by half, reads fall to 46% and even "
            "a tile that removed every read would gain at most 1.86x; the model gives 1.56x "
            "(1.61x before the released engine's gradient rows were counted). Neither the "
            "refresh interval counted in samples (1.59x), every core at the 3.4 GHz maximum "
            "boost (1.80x) nor Table 4's split taken at 128 threads (1.73x) reaches 2x; a "
            "DRAM latency of ~230 ns at 128 threads would, and so would the tables on one "
            "NPS4 quadrant (refitted, not the node's known setting: 4.8x, at 39% "
            "efficiency)"),
        ceiling=0.35))
    out.append(Case(
        system="heat", case="table 6 tiles near 1.9x", metric="tiling_speedup",
        reference=1.9, tolerance=0.15, source=f"{SRC}, section 5.5 and Table 6",
        group="HEAT tiling speed-up: Table 6 choices", conditions="AmazonBooks, 128 "
        "threads, EPYC 7742 node, N1 = 512, N2 = 4096 (inside the paper's 512-1024 x "
        "2048-4096 choices; the paper's 1.9x is the mean over its datasets)",
        predict=lambda: _tile("epyc-7742-2s", 512),
        known_deviation=(
            "a 512-row tile per thread (its weight and gradient rows, 512 KB) fills the "
            "private L2, but with 128 threads each tile row sits in ~0.7 other tiles whose "
            "updates invalidate it (survival exp(-0.71)), and the compute share caps the "
            "gain (see the 128-row case)"),
        ceiling=0.45))
    out.append(Case(
        system="heat", case="speed-up falls from 128 to 1024 rows", metric="tiling_speedup",
        reference=1.0, bounds=(1.0, 1e9), tolerance=0.0, source=f"{SRC}, section 5.5 text",
        group=shape, conditions="ratio speed-up(N1 = 128) / speed-up(N1 = 1024), EPYC 7742 "
        "node, 128 threads, N2 = 4096",
        predict=lambda: _tile("epyc-7742-2s", 128) / _tile("epyc-7742-2s", 1024)))
    out.append(Case(
        system="heat", case="speed-up rises with the refresh interval", metric="tiling_speedup",
        reference=1.0, bounds=(1.0, 1e9), tolerance=0.0, source=f"{SRC}, section 5.5 text",
        group=shape, conditions="ratio speed-up(N2 = 4096) / speed-up(N2 = 256), N1 = 512, "
        "EPYC 7742 node, 128 threads",
        predict=lambda: _tile("epyc-7742-2s", 512, 4096) / _tile("epyc-7742-2s", 512, 256)))
    out.append(Case(
        system="heat", case="a64fx gains less from tiling than the epyc",
        metric="tiling_speedup", reference=1.0, bounds=(0.0, 1.0), tolerance=0.0,
        source=f"{SRC}, section 5.5 (ARM against x86)", group=shape,
        conditions="ratio of the best tiling speed-up over N1 = 16-8192 (N2 = 4096, every "
        "core): A64FX (48 threads) / EPYC 7742 node (128 threads)",
        predict=lambda: _best_tile("a64fx") / _best_tile("epyc-7742-2s")))
    out.append(Case(
        system="heat", case="speed-up over pytorch cpu at most 65.3x",
        metric="speedup_vs_pytorch_cpu", reference=65.3, bounds=(0.0, 65.3), tolerance=0.0,
        source=f"{SRC}, abstract (ICS version: up to 65.3x over the existing CPU solution)",
        group="HEAT against the CPU baseline (headline)",
        conditions="AmazonBooks, K 128, 64 negatives, uniform sampler, 128 threads, EPYC 7742 "
        "node, against the dense PyTorch-style baseline on the same node",
        predict=lambda: float(_run("speedup_vs_pytorch_cpu", {})[0]),
        known_deviation=(
            "the model's 128-thread HEAT epoch (1.54 s) extends Fig. 12's near-linear scaling "
            "past 32 threads, where the model already runs 22% fast; the headline implies at "
            "least 257.4 / 65.3 = 3.9 s on AmazonBooks. With the tables on one NPS4 quadrant "
            "(refitted; not the node's known setting) its 51.2 GB/s saturates at 128 threads "
            "and the ratio falls to 51x"),
        ceiling=2.2))
    out.append(Case(
        system="heat", case="google-local needs two 16 GB V100s", metric="cloud_gpus",
        reference=2.0, tolerance=0.0, source=f"{SRC}, cloud comparison (two p3.2xlarge "
        "needed)", group="cloud cost from the stated prices",
        conditions="Google Local, K 128, V100 16 GB per p3.2xlarge",
        predict=lambda: float(_run("cloud_gpus", {}, dataset="google-local")[0])))
    out.append(Case(
        system="heat", case="gpu to cpu price per hour", metric="gpu_to_cpu_cost_ratio",
        reference=2 * 3.06 / 2.464, tolerance=1e-6, source=f"{SRC}, cloud comparison: "
        "p3.2xlarge $3.06/h, c5a.16xlarge $2.464/h",
        group="cloud cost from the stated prices",
        conditions="Google Local on 2 x p3.2xlarge against one c5a.16xlarge, at equal epoch "
        "time: the cost ratio per epoch divided by the time ratio",
        predict=_price_ratio))
    return out


def _efficiency_64() -> float:
    """Parallel efficiency from 1 to 64 threads: epoch(1) / (64 epoch(64))."""
    e = _run("epoch_time_s", {"training.threads": [1, 64]})
    return float(e[0] / (64 * e[1]))


def _price_ratio() -> float:
    r = get_system("heat").analytical_batch(
        _inputs(dataset="google-local", cpu="epyc-7r32-c5a-16xlarge"),
        {"training.threads": [64]})
    return float(r["gpu_to_cpu_cost_ratio"][0] * r["epoch_time_s"][0]
                 / r["gpu_epoch_time_s"][0])
