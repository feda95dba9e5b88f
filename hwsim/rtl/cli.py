"""``hwsim rtl GENERATOR [--spec FILE] [--set k=v ...] --out DIR [--vcd] [--no-synth]`` and
``hwsim rtl-check STUDY_DIR --top N``."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from hwsim import specs
from hwsim.errors import InputError

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "rtl", help="generate Verilog for an accelerator dataflow",
        description="Write GENERATOR's Verilog, a JSON description (ports, parameters, latency, "
                    "initiation interval) and, where yosys is installed, synthesis statistics "
                    "(generic cells; Xilinx 7-series LUT, FF, DSP48E1, BRAM). a3fusion: a "
                    "design point of the a3fusion system (--spec ROLE=NAME, --set ROLE.KEY=V, "
                    "or --study DIR --trial N), simulated against numpy and the timing model, "
                    "synthesised for its board's family beside the model's estimate.",
    )
    s.add_argument("generator", help="systolic, sparse-decoder, fusion-unit, a3fusion (or "
                   "'list')")
    s.add_argument("--spec", action="append", default=[], metavar="FILE|NAME",
                   help="spec file, or a name under models/<kind>/ (default: 'default'); "
                        "a3fusion: [ROLE=]NAME, repeatable, as hwsim simulate")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. --set rows=16 (a3fusion: accel.rows=16)")
    s.add_argument("--study", metavar="DIR",
                   help="a3fusion: a study's results folder (holds study.journal)")
    s.add_argument("--trial", type=int, metavar="N", help="a3fusion: the trial of --study")
    s.add_argument("--out", metavar="DIR", help="output folder (required unless 'list')")
    s.add_argument("--vcd", action="store_true",
                   help="also simulate a random vector set and write DIR/<top>.vcd")
    s.add_argument("--no-verify", dest="verify", action="store_false",
                   help="a3fusion: skip the Amaranth simulation of small layers")
    synth = s.add_mutually_exclusive_group()
    synth.add_argument("--no-synth", dest="synth", action="store_false", default=None,
                       help="skip synthesis statistics")
    synth.add_argument("--synth", dest="synth", action="store_true",
                       help="require synthesis statistics (error if no yosys)")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.set_defaults(func=run)

    c = sub.add_parser(
        "rtl-check", help="synthesise the top Pareto designs of a study, against the model",
        description="For the first N designs of a study's Pareto set (best first by the first "
                    "objective): generate the RTL, simulate small layers against numpy and the "
                    "timing model, synthesise with Yosys for the board's family, and write a "
                    "table of estimated against measured resources, and whether each design "
                    "still fits, into DIR (rtl_check.csv, rtl_check.md, a section of "
                    "report.md/report.html). Slow: minutes per large design.")
    c.add_argument("dir", help="the study's results folder (holds study.journal)")
    c.add_argument("--top", type=int, default=3, metavar="N", help="designs to check (3)")
    c.add_argument("--out", metavar="DIR", help="where to write (default: the study folder)")
    c.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the Amaranth simulations")
    c.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="designs synthesised at once (default 1)")
    c.set_defaults(func=run_check)


def run(args: argparse.Namespace) -> int:
    from hwsim.rtl import generate as g

    if args.generator == "list":
        for gen in g.GENERATORS.values():
            print(f"{gen.name:16s} kind={gen.kind:16s} {gen.summary}")
        return 0
    gen = g.get_generator(args.generator)
    if not args.out:
        raise InputError("hwsim rtl: --out DIR is required")
    from hwsim.cli import output_dir

    if (args.study is None) != (args.trial is None):
        raise InputError("hwsim rtl: --study DIR and --trial N go together",
                         key="--study" if args.study is None else "--trial",
                         value=args.trial if args.study is None else args.study,
                         has_value=True)
    if args.study is not None:
        if gen.from_study is None:
            raise InputError(f"generator '{gen.name}' has no study designs (a3fusion has)",
                             key="--study", value=args.study, has_value=True)
        if args.spec or args.set:
            raise InputError("--study/--trial take the design from the study; drop --spec "
                             "and --set", key="--study", value=args.study, has_value=True)
        spec = gen.from_study(args.study, args.trial)
    else:
        overrides = dict(specs.parse_override(s) for s in args.set)
        spec = g.load_spec(gen.name, args.spec, overrides)
    output_dir(args.out, "--out")
    if gen.check is not None:
        if args.synth is None and g.find_yosys() is None:
            log.warning("no yosys on PATH: skipping synthesis (the comparison needs it)")
        lines = gen.check(spec, args.out, verify=args.verify, synth=args.synth, vcd=args.vcd)
        if args.json:
            path = f"{args.out}/{gen.top}.check.json"
            with open(path) as fh:
                print(fh.read().rstrip())
            return 0
        print(f"# {gen.name} ({getattr(spec, 'name', '?')}) -> {args.out}")
        for line in lines:
            print(line)
        return 0
    result = g.generate(gen.name, spec, args.out, synth=args.synth, vcd=args.vcd)
    desc = json.loads(result.description.read_text())
    stats = json.loads(result.synthesis.read_text()) if result.synthesis else None
    if args.json:
        print(json.dumps({
            "generator": gen.name,
            "files": {k: str(v) for k, v in (("verilog", result.verilog),
                                              ("description", result.description),
                                              ("synthesis", result.synthesis),
                                              ("vcd", result.vcd)) if v},
            "timing": desc["timing"],
            "xilinx7": {k: v for k, v in stats["xilinx7"].items() if k != "cell_types"}
            if stats else None,
            "seconds": result.seconds,
        }, indent=2))
        return 0
    print(f"# {gen.name} ({spec.name}) -> {args.out}")
    for label, path in (("verilog", result.verilog), ("description", result.description),
                        ("synthesis", result.synthesis), ("waveform", result.vcd)):
        if path:
            print(f"{label:12s} {path}")
    t = desc["timing"]
    print(f"{'latency':12s} {t['latency_cycles']} cycles, II {t['initiation_interval_cycles']}")
    if stats:
        x = stats["xilinx7"]
        print(f"{'xc7':12s} LUT {x['lut']}  FF {x['ff']}  DSP48E1 {x['dsp48e1']}  "
              f"BRAM36 {x['bram36']:g}  ({stats['tool']})")
        print(f"{'generic':12s} {stats['generic']['cells']} cells, no latches")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from hwsim.rtl import generate as g

    if args.jobs < 1:
        raise InputError("expected a whole number >= 1", key="--jobs", value=args.jobs,
                         has_value=True)
    checkers = [gen for gen in g.GENERATORS.values() if gen.study_check is not None]
    if not checkers:  # pragma: no cover - a3fusion registers one
        raise InputError("no generator checks studies")
    from hwsim.cli import output_dir

    output_dir(args.out or args.dir, "--out" if args.out else "DIR")
    rows = checkers[0].study_check(args.dir, args.top, args.out, verify=args.verify,
                                   jobs=args.jobs)
    out = args.out or args.dir
    print(f"wrote {out}/rtl_check.csv, rtl_check.md (and the section in report.md/html): "
          f"{len(rows)} designs")
    for line in check_lines(rows):
        print(line)
    return 0


def check_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per checked design: estimated / measured resources, fit, simulation."""
    return [f"trial {r['trial']:5d} {r['array']:14s} {r['dataflow']} {r['board']:12s} "
            f"DSP {r['dsp_estimated']:.0f}/{r['dsp_measured']:.0f}  "
            f"LUT {r['lut_estimated']:.0f}/{r['lut_measured']:.0f}  "
            f"FF {r['ff_estimated']:.0f}/{r['ff_measured']:.0f}  "
            f"BRAM {r['bram_estimated']:g}/{r['bram_measured']:g}  "
            f"URAM {r['uram_estimated']:g}/{r['uram_measured']:g}  "
            f"fits after synthesis: {'yes' if r['fits_after_synthesis'] else 'NO'}; "
            f"{r['simulated']}" for r in rows]
