"""Writing the kernels-model calibration files (``models/calibration/*.toml``) from the fits.

``python -m hwsim.gpu_serving.calfiles`` refits every table (the operators on Vidur's kernel times,
then each framework on its serving rows with the new operator constants) and rewrites the files
named in :data:`hwsim.gpu_serving.calibration.FILES`, plus the H200's (the H100's constants, not
fitted). ``tests/test_gpu_serving_fit.py`` checks that the committed files still carry the fits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hwsim.gpu_serving import calibration as cal
from hwsim.gpu_serving import measured

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "calibration"
#: NVLink bandwidth per direction of one device (GB/s) in its gpu spec: the send/recv fit over
#: it is the stage links' efficiency (derived here)
NVLINK_GBps = {"a100-sxm-80gb": 300.0, "h100-sxm-80gb": 450.0}
GPU_NAMES = {"a100-sxm-80gb": "A100 SXM4 80 GB", "h100-sxm-80gb": "H100 SXM5 80 GB"}
FRAMEWORK_FIELDS = ("step_overhead_us", "allreduce_latency_us", "allreduce_bandwidth_share",
                    "elementwise_share", "fp8_speedup")
FRAMEWORK_DEFAULTS = {"step_overhead_us": 0.0, "allreduce_latency_us": -1.0,
                      "allreduce_bandwidth_share": 1.0, "elementwise_share": 1.0,
                      "fp8_speedup": 1.0}

OPS_FITTED_ON = (
    "hwsim/gpu_serving/data/operators_vidur.csv: the rows of Llama-2-7B, Llama-2-70B and "
    "InternLM-20B on the {G} (GEMM, norm, add, activation, rope, embedding; every TP, 1-4,096 "
    "tokens; the other models held out), phi-2's LayerNorm and GELU on its rows at every other "
    "token count (1, 4, 16, ..., 4,096; the rest held out), the A100 attention rows (decode "
    "and prefill){H}; "
    "collectives_vidur.csv: the {G}'s all-reduce of 2, 4 and 8 devices and send/recv in one "
    "DGX node (by python -m hwsim.gpu_serving.calibration)")


def framework_fitted_on(name: str) -> str:
    """What the framework table of calibration file ``name`` is fitted on."""
    if name.startswith("lmdeploy"):
        return ("hwsim/gpu_serving/data/serving_measured.csv: the LMDeploy v0.1.0a1 rows at "
                "batch 1 (Llama-2-7B, Llama-2-13B, InternLM-20B; five lengths each; "
                "throughput, mean time to first token, median per-token latency; "
                "hwsim.gpu_serving.measured); every row at batch 16-64 held out")
    _, framework = cal.FILES[name]
    gpu = "A100" if "a100" in name else "H100"
    prec = ", FP16 and FP8" if gpu == "H100" else ""
    return (f"hwsim/gpu_serving/data/serving_measured.csv: the {framework} rows of Llama-2-7B "
            f"and Llama-2-70B on the {gpu}{prec} (output throughput at maximum load; "
            "hwsim.gpu_serving.measured); the version's rows of GPT-J-6B, Llama-3-8B, "
            "Llama-3-70B and Mistral-7B held out")


def _num(v: float) -> str:
    v = 0.0 if abs(v) < 1e-6 else float(f"{v:.4g}")  # below: the optimiser's rounding
    return repr(v)


def render(name: str, device: str, framework: str, tables: dict[str, dict[str, float]],
           fw: dict[str, float], header: list[str], fitted_on: str, fw_fitted_on: str,
           last_token: bool = False) -> str:
    """The TOML text of one calibration file."""
    col = tables["collectives"]
    eff = min(1.0, round(col["send_recv_bandwidth_GBps"] / NVLINK_GBps.get(device, 450.0), 3))
    lines = [*header,
             'kind = "gpu-calibration"', "version = 1", f'name = "{name}"',
             f'device = "{device}"', 'model = "kernels"', f'fitted_on = "{fitted_on}"',
             "# The roofline fields: only the stage-to-stage links use them in the kernels "
             "model: the",
             "# send/recv fit's bandwidth over the datasheet's NVLink (derived here) and its "
             "latency.",
             f"interconnect_efficiency = {eff!r}",
             f"interconnect_latency_us = {_num(col['send_recv_latency_us'])}", "",
             cal.toml_tables({t: tables[t] for t in cal.OPERATOR_TABLES}).rstrip(), "",
             "# What the serving framework adds to the kernels, fitted on its serving rows.",
             "[framework]", f'name = "{framework}"', f'fitted_on = "{fw_fitted_on}"']
    values = dict(FRAMEWORK_DEFAULTS, **fw)
    lines += [f"{k} = {_num(values[k])}" for k in FRAMEWORK_FIELDS]
    lines.append(f"last_prompt_token_decoded = {'true' if last_token else 'false'}")
    return "\n".join(lines) + "\n"


def _header(name: str, device: str, framework: str) -> list[str]:
    g = GPU_NAMES[device]
    short = g.split()[0]
    if name.startswith("lmdeploy"):
        return [
            "# Constants of gpu-serving's kernels step model on the A100 SXM4 80 GB serving "
            "with LMDeploy",
            "# v0.1.0a1 (TurboMind). The operator tables are the A100 fit (as in "
            "roofline-a100-sxm-80gb); the",
            "# framework table is fitted on LMDeploy's batch-1 rows. TurboMind prefills all "
            "but the last prompt",
            "# token and computes that one in a decode step (its batch-1 first-token "
            "latencies: 11 ms at a",
            "# 1-token prompt, one decode step; 22 ms at 128 tokens; 139 ms at 2,048, "
            "Llama-2-7B)."]
    newest = name.startswith("roofline")
    out = [f"# Constants of gpu-serving's kernels step model on the {g} (models/gpu/{device}),",
           f"# serving with {framework}" + (" (the newest version: the default of the "
                                             "calibration role)." if newest else "."),
           "# The operator tables are fitted on Vidur's kernel times "
           "(hwsim/gpu_serving/operators.py, the same",
           f"# in every {short} file), the framework table on the version's serving rows "
           "(hwsim/gpu_serving/measured.py);",
           "# docs/serving.md lists the fits and their errors."]
    if short == "H100":
        out += ["# Vidur has no H100 attention profile: the attention tables are the A100's "
                "(shares of the",
                "# H100's own peaks: an assumption). No FP8 kernel times: FP8 GEMMs are the "
                "FP16 fit at the",
                "# FP8 peak times the framework's fp8_speedup, fitted on the FP8 serving rows."]
    return out


def file_text(name: str, tables: dict[str, dict[str, float]], fw: dict[str, float]) -> str:
    """The text of fitted calibration file ``name`` (one of ``calibration.FILES``)."""
    device, framework = cal.FILES[name]
    short = GPU_NAMES[device].split()[0]
    hint = " (the A100's: no H100 attention profile)" if short == "H100" else ""
    return render(name, device, framework, tables, fw, _header(name, device, framework),
                  OPS_FITTED_ON.format(G=short, H=hint), framework_fitted_on(name),
                  last_token=name.startswith("lmdeploy"))


def h200_text(h100_tables: dict[str, dict[str, float]], fw: dict[str, float]) -> str:
    """The H200's file: the H100's constants (TensorRT-LLM 0.12.0), not fitted."""
    header = [
        "# Constants of gpu-serving's kernels step model on the H200 SXM 141 GB "
        "(models/gpu/h200-sxm-141gb).",
        "# Not fitted: no H200 measurement is in our data. The H200 is the H100's GH100 "
        "silicon with more",
        "# and faster HBM (its datasheet), so every table is the H100's "
        "(roofline-h100-sxm-80gb, TensorRT-LLM",
        "# 0.12.0), which the kernels model applies as shares of the H200's own peaks and "
        "bandwidth."]
    return render("roofline-h200-sxm-141gb", "h200-sxm-141gb", "TensorRT-LLM 0.12.0",
                  h100_tables, fw, header,
                  "not fitted: the H100's constants (roofline-h100-sxm-80gb, same GH100 "
                  "silicon; no H200 measurement in our data)",
                  "not fitted: roofline-h100-sxm-80gb")


def write_all() -> dict[str, Any]:
    """Refit and rewrite every file; returns the fits."""
    ops = {gpu: {t: cal.operator_fit(gpu)[t] for t in cal.OPERATOR_TABLES}
           for gpu in ("a100-sxm-80gb", "h100-sxm-80gb")}
    # first the operators (the frameworks are fitted on the committed operator constants)
    for name, (device, _) in cal.FILES.items():
        fw = {f: float(getattr(cal.load_calibration_file(name).framework, f))
              for f in FRAMEWORK_FIELDS}
        (OUT / f"{name}.toml").write_text(file_text(name, ops[device], fw))
    fits: dict[str, Any] = {}
    for name, (device, _) in cal.FILES.items():
        fw = measured.fit_framework(name)
        fits[name] = fw
        (OUT / f"{name}.toml").write_text(file_text(name, ops[device], fw))
        log.info("%s: %s", name, {k: round(v, 4) for k, v in fw.items()})
    h100 = cal.load_calibration_file("roofline-h100-sxm-80gb").framework
    (OUT / "roofline-h200-sxm-141gb.toml").write_text(h200_text(
        ops["h100-sxm-80gb"], {f: float(getattr(h100, f)) for f in FRAMEWORK_FIELDS}))
    return fits


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_all()
