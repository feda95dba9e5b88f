"""Validation of sparse weights in the serving path: OPT-66B end to end on 2 and 4 A100s against
Flash-LLM's published figure (``data/flash_llm_e2e_opt66b.csv``, digitised from arXiv
2309.10285's ``Inference_OPT_66B.png``).

Every row becomes a case on the analytical evaluator: Flash-LLM (``models/gpu-mapping/
flash-llm-tp2-s80``: 80% Tiled-CSL, Flash-LLM's SpMM kernel), FasterTransformer
(``fastertransformer-tp4-b8``) and DeepSpeed (``deepspeed-tp4-b8``) with the GPU count as the
tensor-parallel degree, the workload ``models/serving/flash-llm-e2e`` (64 + 512 tokens, a static
batch). Cells with a number check ``tokens_per_gpu_s`` at 15%; out-of-memory cells check
``fits_in_memory`` exactly (0, run with ``kv_overflow = "queue"`` so that the point reports it),
as do the largest cells that fit on 2 GPUs (1).

No constant of the step model was fitted on these rows: the kernels come from the A100's
operator fits (``models/calibration/roofline-a100-sxm-80gb``) and Flash-LLM's kernel constants
(``models/calibration/spmm-flash-llm-a100-sxm-80gb``, fitted on kernel times of OPT-30B
shapes). The one value chosen with these rows in view is the usable share of HBM
(``hbm_usable_fraction = 1``, assumed: FasterTransformer caps none; any value in [0.959, 1]
gives the same cells, vLLM's 0.9 would not), so the cells that bound it, FasterTransformer's
and DeepSpeed's batch 16 (fits) and 32 (out of memory) on 2 GPUs, are marked calibration;
everything else is held-out.
"""

from __future__ import annotations

from pathlib import Path

from hwsim.validation import Case, data_rows

DATA = Path(__file__).parent / "data" / "flash_llm_e2e_opt66b.csv"
SOURCE = ("Flash-LLM (Xia et al., arXiv 2309.10285), end-to-end figure Inference_OPT_66B.png of "
          "github.com/AlibabaResearch/flash-llm (digitised: hwsim/gpu_serving/data/"
          "flash_llm_e2e_opt66b.csv)")
MAPPINGS = {"flash-llm": "flash-llm-tp2-s80", "fastertransformer": "fastertransformer-tp4-b8",
            "deepspeed": "deepspeed-tp4-b8"}
LABELS = {"flash-llm": "Flash-LLM (80% Tiled-CSL)", "fastertransformer": "FasterTransformer",
          "deepspeed": "DeepSpeed"}
GROUP_TPUT = "OPT-66B tokens per GPU-second on 2 and 4 A100 (Flash-LLM e2e figure)"
GROUP_FIT = "OPT-66B fits in 2 A100 80 GB (Flash-LLM e2e figure)"
#: the cells the usable share of HBM was chosen with in view (see the module docstring)
CALIBRATION_FIT = {("fastertransformer", 2, 16), ("fastertransformer", 2, 32),
                   ("deepspeed", 2, 16), ("deepspeed", 2, 32)}
#: the largest batch that fits on 2 GPUs, per system, checked as fits_in_memory = 1
FITS = {("fastertransformer", 2, 16), ("deepspeed", 2, 16), ("flash-llm", 2, 64)}


def rows() -> list[dict[str, str]]:
    return data_rows(DATA)


def _predict(system: str, gpus: int, batch: int, metric: str, extra: dict | None = None):
    def predict() -> float:
        from hwsim.system import get_system

        sysm = get_system("gpu-serving")
        inputs = sysm.resolve(
            ["llm=opt-66b", f"mapping={MAPPINGS[system]}", "traffic=flash-llm-e2e"],
            {"mapping.tensor_parallel": gpus, "mapping.batch": batch,
             "traffic.requests": batch, **(extra or {})})
        return sysm.evaluate(inputs, "analytical")[metric]

    return predict


def cases() -> list[Case]:
    out = []
    for r in rows():
        system, gpus, batch = r["system"], int(r["gpus"]), int(r["batch"])
        cond = (f"OPT-66B, {gpus} x A100 80 GB (tp {gpus}), {LABELS[system]}, batch {batch}, "
                f"64 + 512 tokens; mapping {MAPPINGS[system]}, traffic flash-llm-e2e")
        name = f"opt-66b {system} {gpus}gpu b{batch}"
        if r["tokens_per_gpu_s"] == "OOM":
            out.append(Case(
                system="gpu-serving", case=f"{name} out of memory", metric="fits_in_memory",
                reference=0.0, tolerance=0.0, bounds=(0.0, 0.0), source=SOURCE,
                conditions=cond + "; kv_overflow queue (so the point reports fits_in_memory)",
                predict=_predict(system, gpus, batch, "fits_in_memory",
                                 {"mapping.kv_overflow": "queue"}),
                role="calibration" if (system, gpus, batch) in CALIBRATION_FIT else "held-out",
                group=GROUP_FIT))
            continue
        ref = float(r["tokens_per_gpu_s"])
        err = (5.0 if system != "flash-llm" else 3.0) / ref  # the digitisation's error bar
        out.append(Case(
            system="gpu-serving", case=name, metric="tokens_per_gpu_s", reference=ref,
            tolerance=0.15, source=SOURCE, conditions=cond,
            predict=_predict(system, gpus, batch, "tokens_per_gpu_s"), role="held-out",
            group=GROUP_TPUT, group_mape=0.10, reference_error=err))
        if (system, gpus, batch) in FITS:
            out.append(Case(
                system="gpu-serving", case=f"{name} fits", metric="fits_in_memory",
                reference=1.0, tolerance=0.0, bounds=(1.0, 1.0), source=SOURCE,
                conditions=cond, predict=_predict(system, gpus, batch, "fits_in_memory"),
                role="calibration" if (system, gpus, batch) in CALIBRATION_FIT else "held-out",
                group=GROUP_FIT))
    return out
