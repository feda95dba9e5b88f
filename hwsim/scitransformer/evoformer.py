"""Memory of the EvoFormer attention variants (DeepSpeed4Science, arXiv 2310.04610; OpenFold).

Each variant is an attention over ``L`` positions, repeated over ``A`` independent rows, with
``H`` heads of ``D`` channels, on an input of ``c`` channels (shapes of the DS4Sci
EvoformerAttention tutorial: Q/K/V are ``[B, A, L, H, D]``):

| variant | A | L | heads x dim | bias |
|---|---|---|---|---|
| MSA row, pair bias | N_seq | N_res | msa | pair ``[B, 1, H, N_res, N_res]`` + mask |
| MSA column | N_res | N_seq | msa | mask only |
| triangular start / end | N_res | N_res | pair | ``[B, 1, H, N_res, N_res]`` + mask |
| extra-MSA row, pair bias | N_extra | N_res | extra | pair + mask |
| extra-MSA column (global) | N_res | N_extra | extra | mask; one averaged query per head |

Sizes (elements; bytes = elements x ``bytes_per_value``, derived here):

- logits: ``B A H L L`` (global column attention: ``B A H L``), the tensor
  ``Q K^T + bias`` that an unfused kernel writes to HBM;
- bias: the bias tensor ``B H L L`` (pair or triangle) plus the mask ``B A L``, inputs of both
  implementations;
- activations: Q, K, V, the gate and the gated output (``5 B A L H D``) plus the layer's input
  and output (``2 B A L c``).

Peak of one attention call: unfused, the logits and the softmax probabilities are live at
once in the forward (2 copies); training's backward holds the saved probabilities, their
gradient and the logits' gradient (3 copies). The fused kernel keeps no ``L x L`` tensor: it
stores the log-sum-exp of each query row in fp32 (``B A H L x 4`` bytes; training also keeps
the row sums of ``dO * O``, another ``B A H L x 4``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.scitransformer import params
from hwsim.system import Inputs

#: the variants, in the order of the tables
VARIANTS = ("msa_row", "msa_col", "tri_start", "tri_end", "extra_msa_row", "extra_msa_col")

LABELS = {
    "msa_row": "MSA row attention with pair bias",
    "msa_col": "MSA column attention",
    "tri_start": "triangular attention, starting node",
    "tri_end": "triangular attention, ending node",
    "extra_msa_row": "extra-MSA row attention with pair bias",
    "extra_msa_col": "extra-MSA column attention (global)",
}

#: crop sizes (residues) searched for the largest crop that fits: every 4 up to 16,384
N_RES_GRID = np.arange(4, 16_385, 4, dtype=float)

#: keys the block evaluates as arrays
VECTOR_KEYS = frozenset({"crop.n_res", "crop.n_seq", "crop.n_extra_seq", "crop.batch"})

GB = 1e9
#: bytes of one log-sum-exp (and backward row sum) value: fp32 in the fused kernel
LSE_BYTES = 4.0


def shapes(evo, n_res, n_seq, n_extra) -> dict[str, dict[str, Any]]:
    """Per variant: rows ``A``, length ``L``, heads ``H``, head dim ``D``, input channels
    ``c``, whether it has an ``L x L`` bias, whether it is global (arrays broadcast)."""
    msa = (evo.msa_heads, evo.msa_head_dim)
    pair = (evo.pair_heads, evo.pair_head_dim)
    ext = (evo.extra_msa_heads, evo.extra_msa_head_dim)
    return {
        "msa_row": dict(A=n_seq, L=n_res, hd=msa, c=evo.c_m, bias=True, glob=False),
        "msa_col": dict(A=n_res, L=n_seq, hd=msa, c=evo.c_m, bias=False, glob=False),
        "tri_start": dict(A=n_res, L=n_res, hd=pair, c=evo.c_z, bias=True, glob=False),
        "tri_end": dict(A=n_res, L=n_res, hd=pair, c=evo.c_z, bias=True, glob=False),
        "extra_msa_row": dict(A=n_extra, L=n_res, hd=ext, c=evo.c_e, bias=True, glob=False),
        "extra_msa_col": dict(A=n_res, L=n_extra, hd=ext, c=evo.c_e, bias=False,
                              glob=evo.extra_msa_global_column),
    }


def variant_memory(sh: Mapping[str, Any], batch: np.ndarray, bpv: float, fused: bool,
                   training: bool) -> dict[str, np.ndarray]:
    """Logit, bias, activation and peak bytes of one call of one variant."""
    a = np.asarray(sh["A"], dtype=float)
    L = np.asarray(sh["L"], dtype=float)
    h, d = sh["hd"]
    q_len = 1.0 if sh["glob"] else L
    logits = batch * a * h * q_len * L * bpv
    bias = (batch * h * L * L * bpv if sh["bias"] else 0.0) + batch * a * L * bpv
    acts = (5.0 * h * d + 2.0 * sh["c"]) * batch * a * L * bpv
    if fused:
        held = (2.0 if training else 1.0) * batch * a * h * q_len * LSE_BYTES
        stored = np.zeros_like(logits)
    else:
        held = (3.0 if training else 2.0) * logits
        stored = logits
    return {"logits": stored, "logits_unfused": logits, "bias": bias + 0 * logits,
            "activations": acts + 0 * logits, "peak": acts + bias + held}


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every metric of ``n`` crops (residues, sequences, extra sequences, batch as arrays)."""
    evo = inputs["model"]
    crop = inputs["crop"]
    gpu = inputs["device"]

    def get(key: str) -> np.ndarray:
        v = points.get(f"crop.{key}")
        return np.broadcast_to(np.asarray(getattr(crop, key) if v is None else v,
                                          dtype=float), (n,))

    n_res, n_seq, n_extra, batch = get("n_res"), get("n_seq"), get("n_extra_seq"), get("batch")
    training = crop.mode == "training"
    out: dict[str, Any] = {}
    peaks = []
    raw = []
    for v, sh in shapes(evo, n_res, n_seq, n_extra).items():
        mem = variant_memory(sh, batch, crop.bytes_per_value, crop.fused_kernel, training)
        out[f"{v}_logits_GB"] = mem["logits"] / GB
        out[f"{v}_bias_GB"] = mem["bias"] / GB
        out[f"{v}_activations_GB"] = mem["activations"] / GB
        out[f"{v}_peak_GB"] = mem["peak"] / GB
        peaks.append(mem["peak"])
        raw.append(mem["logits_unfused"])
    stack = np.vstack(peaks)
    worst = stack.max(axis=0)
    cap = gpu.hbm_capacity_GB * GB
    # the largest crop (residues) whose every variant fits, the others sizes held: each
    # variant's peak grows with N_res, so the first crop of the grid that fails bounds it
    grid = N_RES_GRID[None, :]
    over = []
    for sh in shapes(evo, grid + 0 * n_res[:, None], n_seq[:, None], n_extra[:, None]).values():
        mem = variant_memory(sh, batch[:, None], crop.bytes_per_value, crop.fused_kernel,
                             training)
        over.append(mem["peak"] > cap)
    over_g = np.stack(over)                       # (variants, points, grid)
    any_over = over_g.any(axis=0)
    first = np.where(any_over.any(axis=1), any_over.argmax(axis=1), N_RES_GRID.size)
    out["max_n_res_fits"] = np.where(first > 0, N_RES_GRID[np.maximum(first - 1, 0)], 0.0)
    at = np.minimum(first, N_RES_GRID.size - 1)
    first_var = over_g[:, np.arange(n), at].argmax(axis=0).astype(float)
    out["first_oom_variant"] = np.where(first < N_RES_GRID.size, first_var, np.nan)
    out["attention_peak_GB"] = worst / GB
    unfused = np.vstack([out[f"{v}_logits_GB"] for v in VARIANTS])
    out["largest_logits_GB"] = unfused.max(axis=0)
    out["largest_logits_variant"] = np.vstack(raw).argmax(axis=0).astype(float)
    out["variants_over_hbm"] = (stack > cap).sum(axis=0).astype(float)
    out["fits_hbm"] = (worst <= cap).astype(float)
    counts = params.count(evo)
    for mod, c in counts.items():
        out[f"params_{mod}_M"] = np.full(n, c / 1e6)
    out["params_M"] = np.full(n, sum(counts.values()) / 1e6)
    out[REASON] = np.full(n, "", dtype=object)
    return out


def table(inputs: Inputs, metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per variant: its shape and sizes (the metrics of one point)."""
    evo, crop = inputs["model"], inputs["crop"]
    rows = []
    for v, sh in shapes(evo, crop.n_res, crop.n_seq, crop.n_extra_seq).items():
        h, d = sh["hd"]
        rows.append({"variant": v, "rows_A": int(sh["A"]), "length_L": int(sh["L"]),
                     "heads": h, "head_dim": d,
                     "logits_GB": metrics[f"{v}_logits_GB"],
                     "bias_GB": metrics[f"{v}_bias_GB"],
                     "activations_GB": metrics[f"{v}_activations_GB"],
                     "peak_GB": metrics[f"{v}_peak_GB"]})
    return rows


def module_table(inputs: Inputs) -> list[dict[str, Any]]:
    """One row per module of the model: its parameters and share of the total."""
    counts = params.count(inputs["model"])
    total = sum(counts.values())
    return [{"module": m, "params": c, "params_M": c / 1e6, "share": c / total}
            for m, c in counts.items()]
