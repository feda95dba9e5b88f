"""Validation of the multi-GPU sparse model, and the fit of its two DGX-1 constants.

MSREP's own figures (arXiv 2209.07552) could not be read, so the model is checked three ways,
each case saying which:

- **first principles**: bytes moved equal the formats' arithmetic; the nonzero-balanced
  imbalance is within ``1 + G / nnz``; at most ``G - 1`` split rows; the task pool within
  ``1 + 1 / tasks_per_gpu``; R-MAT's row-block skew equals its expectation ``G (a + b)^log2 G``;
- **DGX-1 timings**: the FP64 CSR SpMV times of the PNNL research code by MSREP's first author
  (``data/dgx1_spmv.csv``, its first line names the source), on generated matrices of the same
  size and degree skew (HV15R: regular, banded, so its x gathers stay in the L2; cit-Patents:
  power law, R-MAT; four social and web graphs: R-MAT with rows and columns shuffled, their x
  gathers scattered); the matrix sizes are recalled, not read from SuiteSparse;
- **published speedups**: multi-GPU SpMV speedups over one GPU of a two-level nonzero
  partitioning (a different paper's abstract: 1.85x on 2 and 2.65x on 4 V100-SXM2).

Calibration: ``hbm_efficiency`` on the HV15R one-GPU compute time and ``pcie_efficiency`` on
its one-GPU host-to-device time (``python -m hwsim.msrep.validation`` prints the fit); every
other case is held out.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import cache
from pathlib import Path
from typing import Any

from scipy.optimize import brentq

from hwsim.validation import Case, data_rows

log = logging.getLogger(__name__)

CSV_PATH = Path(__file__).resolve().parent / "data" / "dgx1_spmv.csv"
TOLERANCE = 0.15
NODE = "dgx1-v100"


@cache
def source_line() -> str:
    with CSV_PATH.open() as f:
        return f.readline().lstrip("# ").strip()


@cache
def dgx1() -> dict[tuple[str, int, str, str], tuple[float, float]]:
    """(matrix, gpus, phase, format) -> (row-block ms, nnz-balanced ms; NaN where absent)."""
    out = {}
    for r in data_rows(CSV_PATH):
        nb = float(r["nnz_balanced_ms"]) if r["nnz_balanced_ms"] else float("nan")
        out[(r["matrix"], int(r["gpus"]), r["phase"], r["format"])] = (
            float(r["row_block_ms"]), nb)
    return out


def evaluate(workload: str, mapping: str = "nnz-balanced", node: str = NODE,
             cal: Any = None, **overrides: Any) -> dict[str, float]:
    """The analytical metrics of one point (``overrides``: ``role.key`` paths)."""
    from hwsim.system import Inputs, get_system

    system = get_system("msrep")
    inputs = system.resolve([f"workload={workload}", f"mapping={mapping}", f"node={node}"],
                            overrides)
    if cal is not None:
        inputs = Inputs({**dict(inputs), "calibration": cal}, inputs.explicit)
    return system.evaluate(inputs)


def fit(node: str = NODE) -> dict[str, float]:
    """``hbm_efficiency`` and ``pcie_efficiency`` that reproduce the HV15R one-GPU compute and
    host-to-device times (each metric depends on one constant only)."""
    from hwsim import specs

    cal = specs.load_spec(specs.find_spec_file("msrep-calibration", f"msrep-{node}"),
                          kind="msrep-calibration")
    (compute_ms, _), (h2d_ms, _) = (dgx1()[("HV15R", 1, p, "csr")] for p in ("compute", "h2d"))

    def gap(field: str, metric: str, ref_s: float):
        def f(x: float) -> float:
            c2 = dataclasses.replace(cal, **{field: x})
            return evaluate("hv15r-like", "row-block", node, c2, **{"mapping.gpus": 1})[
                metric] - ref_s
        return f

    return {"hbm_efficiency": float(brentq(gap("hbm_efficiency", "kernel_s",
                                                compute_ms * 1e-3), 0.05, 1.0)),
            "pcie_efficiency": float(brentq(gap("pcie_efficiency", "h2d_s", h2d_ms * 1e-3),
                                            0.05, 1.0))}


RMAT_SKEW_REASON = (
    "the stand-in is R-MAT with Graph500's parameters: its heaviest row half holds 76% of the "
    "nonzeros, so row-block at 2 GPUs takes 0.72 of the one-GPU time where cit-Patents "
    "measured 0.92 (one half of its rows holds nearly all the work); the nonzero-balanced side "
    "matches (0.57 and 0.32 of the one-GPU time at 2 and 4 GPUs, measured 0.57 and 0.32), so "
    "balancing gains less at 2 GPUs (docs/msrep.md)")
SHORT_ROWS_REASON = (
    "the R-MAT stand-in's column popularity is concentrated (its hot x sectors stay in the "
    "L2: 0.09 sector misses per nonzero), so x costs it 50 MB; even if every gather of the "
    "16.5 M nonzeros missed (32 B each) the kernel would take 1.07 ms, 45% short of 1.96 ms; "
    "the rest (the model is 4.7x fast at every GPU count, nonzero-balanced) is not "
    "explained (docs/msrep.md)")

SOCIAL_REASON = (
    "on the two social graphs the research code's nonzero-balanced runs are 12-15% slower than "
    "its row blocks; the model's costs (bytes per nonzero, per row and per x sector missed, "
    "nothing per split row or partial-format kernel) give the shuffled stand-ins a 3-4% gain "
    "instead; what makes the measured balanced runs slower is not in the data (docs/msrep.md)")

PUBLISHED_REASON = (
    "the published 2.65x is another code on a matrix set not known; the PNNL research code on "
    "cit-Patents itself measured 3.16x at 4 GPUs nonzero-balanced (1.93 against 0.61 ms, "
    "hwsim/msrep/data/dgx1_spmv.csv), 19% above it, which the model gives (3.12x, checked by "
    "dgx1-cit-patents-nnz-balanced-4gpu-speedup) (docs/msrep.md)")

#: cases outside their tolerance: (reason, ceiling); documented in docs/msrep.md
KNOWN_DEVIATIONS: dict[str, tuple[str, float]] = {
    "dgx1-com-livejournal-balancing-gain-8gpu": (SOCIAL_REASON, 0.3),
    "dgx1-com-orkut-balancing-gain-8gpu": (SOCIAL_REASON, 0.3),
    "dgx1-cit-patents-balancing-gain-2gpu": (RMAT_SKEW_REASON, 0.35),
    "dgx1-cit-patents-csr-1gpu-compute": (SHORT_ROWS_REASON, 0.85),
    "published-spmv-speedup-4v100": (PUBLISHED_REASON, 0.2),
}


def validation_cases() -> list[Case]:
    """Every case of the msrep system (see the module docstring for the three kinds)."""
    src = f"hwsim/msrep/data/dgx1_spmv.csv; {source_line()}"
    data = dgx1()
    out: list[Case] = []

    def add(name: str, metric: str, ref: float, predict, source: str, conditions: str, *,
            role: str = "held-out", group: str, tolerance: float = TOLERANCE,
            bounds: tuple[float, float] | None = None) -> None:
        reason, ceiling = KNOWN_DEVIATIONS.get(name, ("", None))
        out.append(Case(system="msrep", case=name, metric=metric, reference=ref,
                        tolerance=tolerance, bounds=bounds, source=source,
                        conditions=conditions, predict=predict, role=role, group=group,
                        known_deviation=reason, ceiling=ceiling))

    # --- first principles -----------------------------------------------------------------
    fp = "first principles (derived here)"
    g8 = {"mapping.gpus": 8}

    def h2d_formula() -> float:
        from hwsim.msrep import partition as part
        from hwsim.msrep.matrix import profile_of
        from hwsim.system import get_system

        w = get_system("msrep").resolve(["workload=rmat-s18"])["workload"]
        prof = profile_of(w)
        parts = part.partition(prof.row_nnz, 8, "nnz-balanced")
        # 12 B per nonzero, a row pointer per row held (split rows twice) plus one per GPU,
        # and all of x to each GPU
        return float(12 * prof.nnz + 4 * (prof.rows + parts.split_lines + 8) + 8 * 8 * prof.cols)

    add("bytes-h2d-csr-nnz-balanced", "h2d_bytes", h2d_formula(),
        lambda: evaluate("rmat-s18", **g8)["h2d_bytes"], fp,
        "first principles: bytes moved; rmat-s18, CSR FP64, nnz-balanced on 8 GPUs: 12 B per "
        "nonzero + 4 B per row pointer + all of x per GPU", group="first principles",
        tolerance=1e-9)
    nnz_s18 = 262144 * 16
    add("imbalance-nnz-balanced-bound", "imbalance", 1.0,
        lambda: evaluate("rmat-s18", **g8)["imbalance"], fp,
        "first principles: imbalance bound; rmat-s18, nnz-balanced, 8 GPUs: within "
        "[1, 1 + G / nnz]", group="first principles", tolerance=0.0,
        bounds=(1.0, 1.0 + 8 / nnz_s18))
    add("split-rows-bound", "split_rows", 3.5,
        lambda: evaluate("rmat-s18", **g8)["split_rows"], fp,
        "first principles: at most G - 1 split rows; rmat-s18, nnz-balanced, 8 GPUs",
        group="first principles", tolerance=0.0, bounds=(0.0, 7.0))
    add("imbalance-task-pool-bound", "imbalance", 1.0,
        lambda: evaluate("rmat-s18", "task-pool", **g8)["imbalance"], fp,
        "first principles: list scheduling of equal tasks; rmat-s18, task pool of 8 tasks per "
        "GPU, 8 GPUs: within [1, 1 + 1 / tasks_per_gpu]", group="first principles",
        tolerance=0.0, bounds=(1.0, 1.0 + 1.0 / 8))
    add("imbalance-rmat-row-block", "imbalance", 8 * 0.76**3,
        lambda: evaluate("rmat-s18", "row-block", **g8)["imbalance"],
        f"{fp}; R-MAT, Chakrabarti et al. SDM 2004",
        "first principles: R-MAT skew; rmat-s18 (a + b = 0.76), row-block on 8 GPUs: the top "
        "eighth of the rows holds (a + b)^3 of the nonzeros, imbalance 8 (a + b)^3",
        group="first principles", tolerance=0.03)

    # --- DGX-1 timings ----------------------------------------------------------------------
    grp = "DGX-1 timings (PNNL research code), generated matrices"
    for g, (rb, nb) in ((g, data[("HV15R", g, "compute", "csr")]) for g in (1, 2, 4, 8)):
        for scheme, ref in (("row-block", rb), ("nnz-balanced", nb)):
            role = "calibration" if (g, scheme) == (1, "row-block") else "held-out"
            add(f"dgx1-hv15r-csr-{scheme}-{g}gpu-compute", "kernel_s", ref * 1e-3,
                lambda g=g, scheme=scheme: evaluate("hv15r-like", scheme,
                                                    **{"mapping.gpus": g})["kernel_s"],
                src, f"DGX-1 timing: HV15R-sized regular matrix (hv15r-like), CSR FP64, "
                f"{scheme}, {g} V100, compute only", role=role, group=grp)
    h2d1 = data[("HV15R", 1, "h2d", "csr")][0]
    add("dgx1-hv15r-csr-1gpu-h2d", "h2d_s", h2d1 * 1e-3,
        lambda: evaluate("hv15r-like", "row-block", **{"mapping.gpus": 1})["h2d_s"], src,
        "DGX-1 timing: hv15r-like, CSR FP64, host-to-device copy to 1 V100", role="calibration",
        group=grp)
    add("dgx1-hv15r-csr-8gpu-h2d", "h2d_s", data[("HV15R", 8, "h2d", "csr")][0] * 1e-3,
        lambda: evaluate("hv15r-like", "row-block", **g8)["h2d_s"], src,
        "DGX-1 timing: hv15r-like, CSR, host-to-device copy to 8 V100 (2 per PCIe switch: it "
        "scales 3.5x, not 8x)", group=grp)
    add("dgx1-hv15r-coo-1gpu-h2d", "h2d_s", data[("HV15R", 1, "h2d", "coo")][0] * 1e-3,
        lambda: evaluate("hv15r-like", "row-block", **{"mapping.gpus": 1,
                                                        "mapping.format": "coo"})["h2d_s"],
        src, "DGX-1 timing: hv15r-like, COO FP64 (16 B per nonzero against CSR's 12), "
        "host-to-device copy to 1 V100", group=grp)
    add("dgx1-hv15r-csc-1gpu-compute", "kernel_s", data[("HV15R", 1, "compute", "csc")][0] * 1e-3,
        lambda: evaluate("hv15r-like", "row-block", **{"mapping.gpus": 1,
                                                        "mapping.format": "csc"})["kernel_s"],
        src, "DGX-1 timing: hv15r-like, CSC FP64 (atomic updates of y), 1 V100, compute",
        group=grp)
    add("dgx1-hv15r-one-shot-transfer-share", "transfer_share", 0.95,
        lambda: evaluate("hv15r-like", "row-block", **{"mapping.gpus": 1})["transfer_share"],
        src, "DGX-1 timing, qualitative: one SpMV on hv15r-like, 1 V100: host-to-device copies "
        "dominate (310 ms against 4.74 ms of compute): share in [0.9, 1]", group=grp,
        tolerance=0.0, bounds=(0.9, 1.0))
    add("dgx1-cit-patents-csr-1gpu-compute", "kernel_s",
        data[("cit-Patents", 1, "compute", "csr")][0] * 1e-3,
        lambda: evaluate("cit-patents-like", "row-block", **{"mapping.gpus": 1})["kernel_s"],
        src, "DGX-1 timing: cit-patents-like (R-MAT), CSR FP64, 1 V100, compute", group=grp)
    nb1 = data[("cit-Patents", 1, "compute", "csr")][1]
    for g in (2, 4, 7):
        nb = data[("cit-Patents", g, "compute", "csr")][1]
        add(f"dgx1-cit-patents-nnz-balanced-{g}gpu-speedup", "compute_speedup", nb1 / nb,
            lambda g=g: (evaluate("cit-patents-like", "nnz-balanced", **{"mapping.gpus": 1})[
                "kernel_s"] / evaluate("cit-patents-like", "nnz-balanced",
                                       **{"mapping.gpus": g})["kernel_s"]),
            src, f"DGX-1 timing: cit-patents-like (R-MAT), CSR, nnz-balanced: 1-GPU / {g}-GPU "
            "compute time", group=grp)
    for matrix in ("com-LiveJournal", "com-Orkut", "hollywood-2009", "wb-edu"):
        spec = f"{matrix.lower()}-like"
        add(f"dgx1-{matrix.lower()}-csr-1gpu-compute", "kernel_s",
            data[(matrix, 1, "compute", "csr")][0] * 1e-3,
            lambda spec=spec: evaluate(spec, "row-block", **{"mapping.gpus": 1})["kernel_s"],
            src, f"DGX-1 timing: {matrix}-sized power-law matrix with its rows and columns "
            f"shuffled ({spec}, R-MAT: scattered x gathers), CSR FP64, 1 V100, compute",
            group=grp)
    for g in (2, 4, 7):
        rb, nb = data[("cit-Patents", g, "compute", "csr")]

        def gain(g: int = g) -> float:
            return (evaluate("cit-patents-like", "row-block", **{"mapping.gpus": g})["kernel_s"]
                    / evaluate("cit-patents-like", "nnz-balanced",
                               **{"mapping.gpus": g})["kernel_s"])

        add(f"dgx1-cit-patents-balancing-gain-{g}gpu", "speedup", rb / nb, gain, src,
            f"DGX-1 timing: cit-Patents-sized power-law matrix (cit-patents-like, R-MAT), CSR, "
            f"{g} V100: row-block / nnz-balanced compute time", group=grp)
    for matrix in ("com-LiveJournal", "com-Orkut", "hollywood-2009", "wb-edu"):
        rb, nb = data[(matrix, 8, "compute", "csr")]
        spec = f"{matrix.lower()}-like"

        def gain8(spec: str = spec) -> float:
            return (evaluate(spec, "row-block", **g8)["kernel_s"]
                    / evaluate(spec, "nnz-balanced", **g8)["kernel_s"])

        add(f"dgx1-{matrix.lower()}-balancing-gain-8gpu", "speedup", rb / nb, gain8, src,
            f"DGX-1 timing: {matrix}-sized power-law matrix with its rows shuffled ({spec}: "
            "skewed degrees, not clustered in row blocks), CSR, 8 V100: row-block / "
            "nnz-balanced compute time (balancing does not pay)", group=grp)
    rb, nb = data[("HV15R", 8, "compute", "csr")]
    add("dgx1-hv15r-balancing-gain-8gpu", "speedup", rb / nb,
        lambda: (evaluate("hv15r-like", "row-block", **g8)["kernel_s"]
                 / evaluate("hv15r-like", "nnz-balanced", **g8)["kernel_s"]), src,
        "DGX-1 timing: hv15r-like (regular), CSR, 8 V100: row-block / nnz-balanced compute "
        "time (balancing does not pay on a regular matrix)", group=grp)
    add("dgx1-hv15r-8gpu-compute-speedup", "compute_speedup",
        data[("HV15R", 1, "compute", "csr")][0] / rb,
        lambda: evaluate("hv15r-like", "row-block", **g8)["compute_speedup"], src,
        "DGX-1 timing: hv15r-like, CSR, row-block: 1-GPU / 8-GPU compute time", group=grp)

    # --- published speedups -----------------------------------------------------------------
    pub = ("multi-GPU SpMV with a two-level nonzero partitioning and long-row handling (a "
           "different paper's abstract, as listed in the project's MSREP notes): 1.85x on 2 "
           "and 2.65x on 4 V100-SXM2 over one")
    for g, ref in ((2, 1.85), (4, 2.65)):
        add(f"published-spmv-speedup-{g}v100", "compute_speedup", ref,
            lambda g=g: evaluate("cit-patents-like", "nnz-balanced",
                                 **{"mapping.gpus": g})["compute_speedup"],
            pub, f"published speedup: cit-patents-like (power law), CSR, nnz-balanced, {g} V100 "
            "against 1, kernels only (their matrix set and what their times include are not "
            "known)",
            group="published multi-GPU SpMV speedups")
    return out


def main() -> None:  # pragma: no cover - a report for people
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("fit on %s: %s", NODE, fit())
    from hwsim.validation import run

    for res in run(validation_cases()):
        log.info("%-42s predicted %11.5g reference %11.5g err %+7.1f%% %s", res.case.case,
                 res.predicted, res.case.reference,
                 100 * (res.predicted / res.case.reference - 1), res.verdict)


if __name__ == "__main__":
    main()
