"""Reports people read: the recommended designs first, readable labels with units, prune
reasons counted, and report.html rendered in headless Chromium (figures load, nothing
overflows the page)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.report.labels import label
from hwsim.report.summary import _shape, knee_index

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "quickstart"
    assert main(["-q", "sweep", str(ROOT / "explore" / "quickstart.toml"), "--trials", "60",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_labels_say_names_and_units():
    assert label("tco_usd_per_1k_tokens") == "TCO [USD per 1000 tokens]"
    assert label("latency_ms_per_token") == "time per output token (TPOT) [ms]"
    assert label("server_power_W") == "server power [W]"
    assert label("throughput_tokens_per_s") == "throughput [tokens/s]"
    assert label("mean_wait_s") == "mean wait [s]"
    assert label("chip.die_area_mm2", "mm2") == "chip: die area [mm²]"
    assert label("server.chips_per_lane") == "server: chips per lane"


def test_knee_and_reason_shapes():
    front = np.array([[1.0, 10.0], [2.0, 2.0], [10.0, 1.0]])
    assert knee_index(front, ["minimize", "minimize"]) == 1
    assert _shape("chip power 26.8 W exceeds 13.9 W with 24 chips") == \
        "chip power # W exceeds # W with # chips"
    assert _shape("lane silicon 160 mm2 outside [200, 6000] mm2") == \
        "lane silicon # mm2 outside [#, #] mm2"


def test_report_leads_with_recommendations(quickstart):
    md = (quickstart / "report.md").read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:2] == ["## Recommended designs", "## Summary"]
    rec = md.split("## Recommended designs")[1].split("## Summary")[0]
    assert "**lowest TCO**" in rec and "knee of the front" in rec
    assert "tensor parallel" in rec and "pipeline stages" in rec and "USD per 1000 tokens" in rec
    assert "## Why designs were infeasible" in md
    why = md.split("## Why designs were infeasible")[1].split("\n## ")[0]
    assert "air-cooling limit" in why and "%" in why
    assert "TCO [USD per 1000 tokens] (tco_usd_per_1k_tokens)" in md  # the Pareto header
    page = (quickstart / "report.html").read_text()
    assert page.index('id="recommended"') < page.index('id="summary"') < page.index('id="space"')
    assert page.count('<div class="scroll"><table>') == page.count("<table>")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHECK = """<script>
window.addEventListener('load', () => {
 const w = window.innerWidth, r = {win: w, doc: document.documentElement.scrollWidth};
 r.figures = [...document.querySelectorAll('figure')].map(f => { const s = f.querySelector('svg');
   if (!s) return [0, 0]; const b = s.getBoundingClientRect(); return [b.width, b.height]; });
 r.over = [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll') &&
   e.getBoundingClientRect().right > w + 1).map(e => e.tagName).slice(0, 10);
 document.body.setAttribute('data-check', JSON.stringify(r));
});
</script>"""


@pytest.mark.parametrize("width", [1280, 900])
def test_report_renders_in_headless_chromium(quickstart, tmp_path, width):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    page = (quickstart / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"))
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--window-size={width},900", "--virtual-time-budget=5000", "--dump-dom",
         probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-check="([^"]*)"', proc.stdout)
    assert found, proc.stderr[-2000:]
    r = json.loads(html.unescape(found.group(1)))
    n_figures = len(list((quickstart / "figures").glob("*.svg")))
    assert len(r["figures"]) == n_figures >= 4
    assert all(w > 100 and h > 100 for w, h in r["figures"]), r["figures"]
    assert r["doc"] <= r["win"], r  # nothing wider than the page
    assert not r["over"], r["over"]
