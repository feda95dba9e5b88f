"""The ``a3fusion`` RTL generator: one design point's datapath, registered with hwsim.rtl.

``hwsim rtl a3fusion`` builds a design point of the a3fusion system (``--spec [ROLE=]NAME``
and ``--set ROLE.KEY=VALUE`` as ``hwsim simulate a3fusion``, or ``--study DIR --trial N``: a
trial of a study, :mod:`hwsim.a3fusion.rtlcheck`) as :class:`hwsim.a3fusion.rtl.A3FusionCore`,
synthesises it with Yosys for the board's FPGA family (``xcup`` for the UltraScale+ boards,
``-uram`` where the board has UltraRAM) and compares the measured resources with the model's
estimate (:mod:`hwsim.a3fusion.resources`). Registration imports no Amaranth code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwsim.rtl.registry import Generator, check_demo, register_generator

TOP = "a3fusion"


def resolve(spec_args: Sequence[str], overrides: Mapping[str, Any]) -> Any:
    """The design of the a3fusion system's inputs (``--spec``/``--set`` as ``hwsim simulate``)."""
    from hwsim.a3fusion.evaluate import SYSTEM
    from hwsim.a3fusion.hardware import design

    inputs = SYSTEM.resolve(list(spec_args), dict(overrides))
    what = " ".join([*(f"--spec {a}" for a in spec_args),
                     *(f"--set {k}={v}" for k, v in overrides.items())])
    return design(inputs, source=f"hwsim rtl a3fusion {what}".strip())


def component(design: Any) -> Any:
    from hwsim.a3fusion.rtl import A3FusionCore

    return A3FusionCore(design)


def describe_timing(design: Any) -> dict[str, Any]:
    """The timing the core is verified against (its JSON description)."""
    from hwsim.a3fusion.model import SEQUENCER_LATENCY
    from hwsim.rtl.fusion import LATENCY

    return {
        "model": "hwsim.systolic.timing via hwsim.a3fusion.model (SCALE-Sim's compute model)",
        "fold_cycles": "2*rows + cols_p + T - 2 (cols_p: the partition's columns; chained: "
                       "all of them)",
        "layer_cycles": "folds * fold_cycles from the first operand into the array to the "
                        "last result written",
        "sequencer_latency_cycles": SEQUENCER_LATENCY,
        "command_to_idle": "layer_cycles + sequencer_latency_cycles",
        "partitions": design.part_cols,
        "chain_delay_cycles": design.camera_cols if design.partitioned else 0,
        "buffers_words": {f"p{p}": {b: design.depth(p, b) for b in "abo"}
                          for p in range(len(design.part_cols))},
        "fusion_unit_latency_cycles": LATENCY,
        "latency_cycles": design.rows + design.cols - 2 + SEQUENCER_LATENCY,
        "latency_note": "command to the first result row (ws/is): the buffer read plus the "
                        "array's rows + cols - 2",
        "initiation_interval_cycles": 1,
        "ii_note": "one operand word per cycle per stream; folds and commands back to back",
    }


def demo(design: Any, vcd: Path) -> None:
    """A small GEMM through the core, checked against numpy, written as a waveform."""
    import numpy as np

    from hwsim.a3fusion.rtl import gemm_reference, plan_gemm, simulate

    rng = np.random.default_rng(0)
    a = rng.integers(-128, 127, (design.rows, design.rows + 1), endpoint=True)
    b = rng.integers(-128, 127, (design.rows + 1, design.cols + 1), endpoint=True)
    res = simulate(design, [plan_gemm(design, a, b)], vcd=str(vcd))
    check_demo(bool((res.products[0] == gemm_reference(a, b, design.acc_width)).all()),
               "a3fusion demo")


def synthesize(text: str, design: Any) -> dict[str, Any]:
    """Yosys ``synth_xilinx`` for the board's family, with the model's estimate beside it."""
    from hwsim.a3fusion.rtlcheck import compare
    from hwsim.rtl.generate import synthesize_family

    stats = synthesize_family(text, TOP, design.family, uram=design.uram)
    return {**stats, "comparison": compare(design, stats)}


def from_study(study_dir: str, trial: int) -> Any:
    from hwsim.a3fusion.rtlcheck import trial_design

    return trial_design(study_dir, trial)


def check(design: Any, out: str, *, verify: bool = True, synth: bool | None = None,
          vcd: bool = False) -> list[str]:
    """Generate, simulate, synthesise and compare (``a3fusion.check.json``); summary lines."""
    from hwsim.a3fusion.rtlcheck import check_design, summary_lines
    from hwsim.errors import ToolError

    chk = check_design(design, out, verify=verify, synth=synth, vcd=vcd)
    lines = summary_lines(chk)
    v = chk.get("verification")
    if v is not None and not v["passed"]:
        raise ToolError("a3fusion: the simulated datapath disagrees with numpy or the timing "
                        f"model; see {out}/a3fusion.check.json")
    return lines


def study_check(study_dir: str, top: int, out: str | None, *, verify: bool = True,
                jobs: int = 1) -> list[dict[str, Any]]:
    from hwsim.a3fusion.rtlcheck import rtl_check

    return rtl_check(study_dir, top, out, verify=verify, jobs=jobs)


GENERATOR = register_generator(Generator(
    TOP, "a3fusion", "an A3Fusion design point: PE array(s), buffers, tile sequencer, fusion "
    "unit(s)", component, describe_timing, demo, resolve=resolve, synthesize=synthesize,
    golden=False, from_study=from_study, check=check, study_check=study_check))
