"""``report.md`` and the self-contained ``report.html`` of a study."""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwsim.explore.results import importance_method
from hwsim.report.figures import Figure, all_figures
from hwsim.report.summary import axis_label, describe, prune_reasons, recommended

if TYPE_CHECKING:
    from hwsim.explore.results import Outputs

log = logging.getLogger(__name__)

MAX_ROWS = 40


def param_units(o: Outputs) -> dict[str, str]:
    """Units of the study's parameters, from the spec schemas (``queue.mean_service_s`` -> s)."""
    from hwsim import specs

    out: dict[str, str] = {}
    try:
        system = o.study.get_system()
    except Exception:
        return out
    for p in o.study.space:
        role, _, key = p.name.partition(".")
        if not key:
            continue
        try:
            cls = specs.kind_schema(system.role(role).kind)
        except Exception:
            continue
        for row in specs.schema_rows(cls):
            if row.key == key and row.unit:
                out[p.name] = row.unit
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4g}"
    return str(v)


def _header(c: str, units: dict[str, str]) -> str:
    text = axis_label(c, units)
    return text if text == c else f"{text} ({c})"


# --------------------------------------------------------------------------------------------
# the content, as (title, rows) tables and paragraphs, rendered twice


def _tables(o: Outputs, units: dict[str, str]) -> list[tuple[str, str, list[str],
                                                              list[list[Any]]]]:
    """(anchor, title, header, rows) of every table in the report."""
    s = o.study
    out: list[tuple[str, str, list[str], list[list[Any]]]] = []
    rows = [[m.metric, m.direction] for m in s.objectives]
    out.append(("objectives", "Objectives", ["metric (unit in the name)", "direction"], rows))
    if s.constraints:
        out.append(("constraints", "Constraints", ["constraint (unit in the metric name)"],
                    [[c.label()] for c in s.constraints]))
    space_rows = []
    for p in s.space:
        if p.type in ("categorical", "spec"):
            rng = ", ".join(str(c) for c in p.choices)
        else:
            rng = f"{p.low:g} … {p.high:g}" + (f" step {p.step:g}" if p.step else "") + (
                " (log)" if p.log else "")
        space_rows.append([p.name, units.get(p.name, ""), p.type, rng])
    out.append(("space", "Search space", ["parameter", "unit", "type", "values"], space_rows))
    if o.baselines is not None:
        bcols = [c for c in o.baselines.columns if c not in ("label", "system", "feasible",
                                                               "reason")]
        out.append(("baselines", "Baselines (the same metrics, evaluated analytically)",
                    ["baseline", "system", *bcols, "meets the constraints", "note"],
                    [[r["label"], r["system"], *(r[c] for c in bcols), bool(r["feasible"]),
                      r["reason"]] for r in o.baselines.to_dict("records")]))
    out.append(("trials", "Trials by state", ["state", "trials"],
                [[k, v] for k, v in sorted(o.counts.items())]))
    why = prune_reasons(o)
    if why:
        out.append(("pruned", "Why designs were infeasible (numbers in a reason shown as #)",
                    ["reason", "trials", "share of the pruned (or completed) trials",
                     "example"], why))
    cols = [p.name for p in s.space] + s.objective_metrics + [
        c.metric for c in s.constraints if c.metric not in s.objective_metrics]
    cols = list(dict.fromkeys(cols))
    par = o.pareto
    gaps = [c for c in ("front_gap", "front_gap_rel") if c in par]
    prow = [[int(r["trial"]), *(r.get(c) for c in cols + gaps)]
            for r in par.head(MAX_ROWS).to_dict("records")]
    title = f"Pareto set ({len(par)} design{'' if len(par) == 1 else 's'}" + (
        f", first {MAX_ROWS} shown; all in pareto.csv)" if len(par) > MAX_ROWS else ")")
    gap_headers = {"front_gap": "gap to exact front (fraction of its range)",
                   "front_gap_rel": "gap to exact front (relative)"}
    out.append(("pareto", title, ["trial", *(_header(c, units) for c in cols),
                                  *(gap_headers[c] for c in gaps)], prow))
    c = o.comparison
    if c:
        crow = [["designs enumerated", c.get("points")],
                ["exact front size", c.get("front_size")],
                ["exhaustive evaluation time [s]", c.get("seconds")],
                ["evaluator", c.get("method")]]
        if "hypervolume_ratio" in c:
            crow.append(["sampler hypervolume / exact front's", c["hypervolume_ratio"]])
            n_done = o.counts.get("COMPLETE", 0)
            crow.append(["completed trials", n_done])
            crow.append(["hypervolume reference point", "beyond the exact front's worst value "
                         "in each objective by 10 % of its range or 25 % of the value, "
                         "whichever is more"])
        if "front_gap_max" in c:
            crow += [["sampler's Pareto designs", c["sampler_front_size"]],
                     ["their gap to the exact front, median (fraction of its range)",
                      c["front_gap_median"]],
                     ["their gap to the exact front, largest (fraction of its range)",
                      c["front_gap_max"]],
                     ["their gap to the exact front, median (relative)",
                      c["front_gap_rel_median"]],
                     ["their gap to the exact front, largest (relative)",
                      c["front_gap_rel_max"]]]
        if "exact_best" in c:
            crow += [["exact optimum", c["exact_best"]], ["sampler's best", c["sampler_best"]]]
        if "note" in c:
            crow.append(["note", c["note"]])
        out.append(("exhaustive", "Sampler against exhaustive search", ["quantity", "value"],
                    crow))
    if o.importances:
        params = [p.name for p in s.space]
        irows = [[p, *(o.importances[m].get(p, 0.0) for m in o.importances)] for p in params]
        irows.sort(key=lambda r: -max(r[1:]))
        out.append(("importances",
                    f"Parameter importances ({importance_method()}, normalised to sum 1)",
                    ["parameter", *o.importances], irows))
    if o.refine is not None and not o.refine.empty:
        from hwsim.explore import fidelity as fid

        summ = fid.summary(s, o.refine)
        lo, hi = o.refine.attrs.get("fidelities", ("analytical", "des"))
        if not summ.empty:
            out.append(("fidelity", f"Where {lo} and {hi} disagree (relative difference "
                        f"({hi} − {lo}) / |{lo}|, as a fraction)",
                        ["metric", "designs", "median |diff|", "max |diff|", "worst design"],
                        summ.values.tolist()))
        agree = fid.pareto_agreement(o.refine, (lo, hi))
        if agree:
            out.append(("fidelity_pareto", "Pareto membership among the refined designs",
                        ["quantity", "designs"],
                        [[f"Pareto-optimal by {lo}", agree["pareto_low"]],
                         [f"Pareto-optimal by {hi}", agree["pareto_high"]],
                         ["by both", agree["pareto_both"]]]))
    return out


def baseline_line(b: dict[str, Any]) -> str:
    """One sentence: the best design against one baseline, on the first objective."""
    if not math.isfinite(b.get("baseline", math.nan)):
        return f"baseline {b['label']} ({b['system']}): cannot run ({b['reason']})"
    text = (f"baseline {b['label']} ({b['system']}): {b['metric']} {_fmt(b['baseline'])}; "
            f"the best design {_fmt(b['best_trial'])}")
    adv = b.get("advantage", math.nan)
    if math.isfinite(adv):
        text += (f", {adv:.3g}x better" if adv >= 1 else f", {1 / adv:.3g}x worse")
    if b.get("reason"):
        text += f" (the baseline {b['reason']})"
    return text


def no_feasible_note(o: Outputs) -> str:
    """A sentence when the study found no feasible design (else ""), with the commonest reason."""
    finished = sum(v for k, v in o.counts.items() if k not in ("RUNNING", "WAITING"))
    if not finished or len(o.pareto):
        return ""
    t = o.trials
    reason = ""
    if t is not None and "reason" in t and len(t):
        reasons = t["reason"].dropna().astype(str)
        reasons = reasons[reasons != ""]
        if len(reasons):
            top = reasons.value_counts()
            reason = (f"; the commonest reason ({top.iloc[0]} of {finished}): "
                      f"{top.index[0]}")
    if not o.counts.get("COMPLETE"):
        return (f"no feasible design: every one of the {finished} finished trials was "
                f"infeasible (pruned) or failed{reason}")
    return (f"no feasible design: none of the {o.counts['COMPLETE']} completed trials meets "
            "the constraints" + reason)


def recommended_lines(o: Outputs, units: dict[str, str]) -> list[tuple[str, str]]:
    """(why, description) of each recommended design, best per objective and the knee."""
    return [("; ".join(r.roles), describe(o, r, units)) for r in recommended(o)]


def _summary_lines(o: Outputs) -> list[str]:
    s, m = o.study, o.meta
    lines = [
        f"system: {s.system} (fidelity {s.fidelity})",
        f"study: {o.study_name}, storage {m.get('storage', '')}",
        f"sampler: {s.sampler}, seed {s.seed}, budget {s.trials} trials",
        f"finished trials: {sum(v for k, v in o.counts.items() if k != 'RUNNING')}"
        + (f" ({o.counts.get('PRUNED', 0)} infeasible, recorded as pruned)"
           if o.counts.get("PRUNED") else ""),
        f"Pareto set: {len(o.pareto)} design{'' if len(o.pareto) == 1 else 's'}",
    ]
    note = no_feasible_note(o)
    if note:
        lines.insert(0, note)
    ev = m.get("evaluations") or {}
    if ev.get("reused"):
        lines.insert(4, f"evaluations: {ev['evaluations']} for {ev['finished']} completed or "
                     f"pruned trials ({ev['reused']} proposed a design evaluated before and "
                     "reused its stored result)")
    if o.comparison and "hypervolume_ratio" in o.comparison:
        lines.append(f"hypervolume against the exact front: "
                     f"{o.comparison['hypervolume_ratio']:.1%} of {o.comparison['points']} "
                     "enumerated designs' front")
    if o.comparison and "front_gap_max" in o.comparison:
        c = o.comparison
        lines.append(f"distance of the sampler's {c['sampler_front_size']} Pareto designs to the "
                     f"exact front: median {c['front_gap_rel_median']:.1%}, largest "
                     f"{c['front_gap_rel_max']:.1%} (relative gap); median "
                     f"{c['front_gap_median']:.3g}, largest {c['front_gap_max']:.3g} of the "
                     "exact front's range")
    for b in m.get("baselines", []):
        lines.append(baseline_line(b))
    if m.get("sweep_seconds"):
        lines.append(f"sweep time: {m['sweep_seconds']:.1f} s")
    git = m.get("git", {})
    if git.get("commit"):
        lines.append(f"hwsim commit: {git['commit'][:12]}" + (" (with local changes)"
                                                               if git.get("dirty") else ""))
    if o.refine_note:
        lines.append(f"refinement: {o.refine_note}")
    return lines


# --------------------------------------------------------------------------------------------
# Markdown


def _md_text(v: Any) -> str:
    """User text in Markdown: HTML special characters escaped (a Markdown viewer renders raw
    HTML), one line."""
    return html.escape(" ".join(str(v).splitlines()), quote=False)


def _md_cell(v: Any) -> str:
    return _md_text(_fmt(v)).replace("|", "\\|")


def markdown(o: Outputs, figures: Sequence[Figure], units: dict[str, str]) -> str:
    s = o.study
    out = [f"# Study {_md_text(o.study_name)}", ""]
    if s.description:
        out += [_md_text(s.description), ""]
    rec = recommended_lines(o, units)
    if rec:
        out += ["## Recommended designs", ""]
        out += [f"- **{_md_text(why)}**: {_md_text(text)}" for why, text in rec] + [""]
    out += ["## Summary", ""]
    out += [f"- {_md_text(line)}" for line in _summary_lines(o)] + [""]
    for _anchor, title, header, rows in _tables(o, units):
        out += [f"## {_md_text(title)}", "", "| " + " | ".join(_md_cell(h) for h in header) + " |",
                "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in rows]
        out.append("")
    if figures:
        out += ["## Figures", ""]
        for f in figures:
            out += [f"### {_md_text(f.title)}", "",
                    f"![{_md_text(f.title)}](figures/{f.png.name})", "", _md_text(f.caption), ""]
    out += ["## Files", "",
            "`trials.parquet` / `trials.csv` (every trial), `pareto.csv`, `meta.json`"
            + (", `exhaustive.parquet`, `exact_pareto.csv`, `hypervolume.csv`"
               if o.comparison else "")
            + (", `refine.csv`" if o.refine is not None else "")
            + ", `figures/` (PNG and SVG).", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{max-width:14em;overflow-wrap:anywhere} td{overflow-wrap:anywhere;max-width:40em}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0 2em} figure svg{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#555} code{background:#f3f3f3;padding:0 .2em}
"""


def _svg_inline(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    i = text.find("<svg")
    return text[i:] if i >= 0 else ""


def _h(v: Any) -> str:
    return html.escape(_fmt(v), quote=True)


def html_page(o: Outputs, figures: Sequence[Figure], units: dict[str, str]) -> str:
    s = o.study
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Study {html.escape(o.study_name)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Study {html.escape(o.study_name)}</h1>"]
    if s.description:
        parts.append(f"<p>{html.escape(s.description)}</p>")
    rec = recommended_lines(o, units)
    if rec:
        parts.append('<h2 id="recommended">Recommended designs</h2><ul>'
                     + "".join(f"<li><b>{html.escape(why)}</b>: {html.escape(text)}</li>"
                               for why, text in rec) + "</ul>")
    parts.append('<h2 id="summary">Summary</h2>')
    parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _summary_lines(o))
                 + "</ul>")
    for anchor, title, header, rows in _tables(o, units):
        parts.append(f'<h2 id="{html.escape(anchor)}">{html.escape(title)}</h2>'
                     '<div class="scroll"><table><thead><tr>'
                     + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                     + "</tr></thead><tbody>")
        for r in rows:
            cells = []
            for v in r:
                cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) \
                    else ""
                cells.append(f"<td{cls}>{_h(v)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table></div>")
    if figures:
        parts.append("<h2>Figures</h2>")
        for f in figures:
            parts.append(f"<figure><h3>{html.escape(f.title)}</h3>{_svg_inline(f.svg)}"
                         f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    parts.append("<p>Files beside this report: <code>trials.parquet</code>, "
                 "<code>trials.csv</code>, <code>pareto.csv</code>, <code>meta.json</code>, "
                 "<code>figures/</code>.</p></body></html>")
    return "\n".join(parts)


_SCRIPT = re.compile(r"<\s*script", re.I)


def build_report(o: Outputs, *, figures: bool = True) -> list[Path]:
    """Write the figures, ``report.md`` and ``report.html``; return the paths written."""
    units = param_units(o)
    figs = all_figures(o, units) if figures else []
    md = markdown(o, figs, units)
    page = html_page(o, figs, units)
    if _SCRIPT.search(page):  # pragma: no cover - every user string is escaped above
        raise RuntimeError("report.html would contain a script element")
    (o.out_dir / "report.md").write_text(md + "\n", encoding="utf-8")
    (o.out_dir / "report.html").write_text(page + "\n", encoding="utf-8")
    written = [o.out_dir / "report.md", o.out_dir / "report.html"]
    for f in figs:
        written += [f.png, f.svg]
    return written
