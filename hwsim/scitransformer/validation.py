"""The long-sequence cases of the scitransformer system: TFLOPS per GPU of the Megatron-DeepSpeed
table (hwsim/scitransformer/data/longseq_tflops.csv, calibration and held-out rows) and where
the old and new configurations run out of memory."""

from __future__ import annotations

import numpy as np

from hwsim.scitransformer.calibration import DEVICE, predict_tflops, rows
from hwsim.scitransformer.longseq import llm_of, memory
from hwsim.system import get_system
from hwsim.validation import Case

SOURCE = ("Megatron-DeepSpeed long-sequence README (examples_deepspeed/deepspeed4science/"
          "megatron_long_seq_support), as quoted by ramanathanlab/genslm examples/long-sequences")
GROUP_NEW = "GenSLM long-sequence TFLOPS, new Megatron-DS (4 x DGX A100-40GB, TP = SP = 32)"
GROUP_OLD = "GenSLM long-sequence TFLOPS, old Megatron-DS"
GROUP_MEM = "GenSLM long-sequence memory (old OOM from 8k, new to 32k)"

OLD_DEVIATION = (
    "the old stack is priced with the new stack's fitted compute efficiency: its unfused "
    "attention path is modelled only for its memory, so what the old release lacked in speed "
    "(unfused softmax, bias-GeLU and dropout kernels, the s x s softmax through HBM, the layer "
    "norms and dropouts done in full on every TP rank without SP) is not in the time; which "
    "of these makes the table's 2.7x gap at 2k the model cannot say")

#: cells of the new column the model misses, with the ceiling each reason explains (derived in
#: docs/scitransformer.md from the committed calibration, not chosen to pass)
NEW_DEVIATIONS = {
    2048: (0.32, "collective-bound: NCCL's ring latency, from its tuning model at the protocol it "
                 "picks for the 25 MB all-gathers and reduce-scatters (LL128: 79 us each, "
                 "hwsim.llm.training.nccl_ring_collective_s), priced in full on every one of "
                 "the 896 collectives of a recomputed step, is 31.8% of the predicted 2k step, "
                 "which the one compute efficiency cannot offset: even at 100% of the tensor "
                 "peak the model's 2k step gives 59.0 TFLOPS, under the table's 68, so no "
                 "compute-side mechanism can close this cell; whether NCCL hides part of the "
                 "latency (its tuning table chooses algorithms, it is not a measured time) or "
                 "the step runs fewer or overlapped collectives the model cannot tell apart. "
                 "The ceiling is that latency's share of the step"),
    4096: (0.24, "as the 2k cell: the ring latency (LL128, 50 MB messages) is 23.1% of the "
                 "predicted 4k step (the ceiling, rounded up to the percent); at 100% of the "
                 "tensor peak the model gives 74.6 TFLOPS against the table's 80"),
}


def memory_over_hbm(workload: str, seq_len: int) -> float:
    """Per-GPU bytes of ``workload``'s step at ``seq_len`` over the device's HBM."""
    from hwsim.llm.training import Parallel, Recompute

    s = get_system("scitransformer")
    inp = s.resolve([f"workload={workload}", f"device={DEVICE}"], [])
    w, gpu = inp["workload"], inp["device"]
    spec = llm_of(w)
    tp = w.tensor_parallel
    par = Parallel(dp=w.gpus // (tp * w.pipeline_parallel), tp=tp, pp=w.pipeline_parallel,
                   micro_batch=w.micro_batch, micro_batches=w.micro_batches,
                   zero_stage=w.zero_stage, sp=w.sequence_parallel, offload=w.offload)
    rc = Recompute(checkpointing=w.checkpointing, dropout=w.dropout,
                   fused_attention=w.flash_attention)
    total = float(np.asarray(memory(spec, seq_len, par, rc, w.mask_on_gpu).total_B))
    return total / ((gpu.hbm_capacity_GB - w.memory_reserve_GB) * 1e9)


def _tflops_case(row: dict[str, str]) -> Case:
    old = row["workload"].endswith("-old")
    seq = int(row["seq_len"])
    dev = NEW_DEVIATIONS.get(seq, (None, ""))
    return Case(
        system="scitransformer", case=f"{row['workload']} {seq // 1024}k tflops per gpu",
        metric="longseq_tflops_per_gpu", reference=float(row["tflops_per_gpu"]),
        tolerance=0.15, role=row["role"], group=GROUP_OLD if old else GROUP_NEW,
        group_mape=None if old else 0.15, source=SOURCE,
        conditions=f"GenSLM 25B (the table's model size is not stated), {seq} tokens, 32 x "
        "A100-40GB, TP = 32" + (" without SP or FlashAttention, 64 x 5,760" if old else
                                " = SP, FlashAttention, full recompute, 64 x 6,144")
        + "; Megatron-DS TFLOPS convention (4 forwards with recompute, 3 without)",
        known_deviation=OLD_DEVIATION if old else dev[1], ceiling=1.8 if old else dev[0],
        predict=lambda w=row["workload"], s=seq: float(predict_tflops(w, [s])[0]))


def cases() -> list[Case]:
    """Every long-sequence case."""
    out = [_tflops_case(r) for r in rows()]
    mem = [("genslm-25b-longseq-old", 4096, (0.0, 1.0), "fits"),
           ("genslm-25b-longseq-old", 8192, (1.0, np.inf), "out of memory"),
           ("genslm-25b-longseq", 32768, (0.0, 1.0), "fits")]
    for w, seq, bounds, says in mem:
        out.append(Case(
            system="scitransformer", case=f"{w} {seq // 1024}k {says}",
            metric="longseq_memory_over_hbm", reference=bounds[0] if bounds[0] else 1.0,
            tolerance=0.0, bounds=bounds, role="held-out", group=GROUP_MEM, source=SOURCE,
            conditions=f"GenSLM 25B ({'5,760' if w.endswith('-old') else '6,144'} wide), "
            f"{seq} tokens, TP = 32 on 32 x A100-40GB: the step's "
            "memory per GPU over the 40 GB of HBM (the table: " + says + ")",
            predict=lambda w=w, s=seq: memory_over_hbm(w, s)))
    return out
