"""docs/api.md: every ``python`` block runs, in order, in one namespace, in an empty folder."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_api_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HWSIM_MODELS", raising=False)
    code = blocks()
    assert len(code) >= 6
    namespace: dict = {"__name__": "api_docs"}
    for i, block in enumerate(code):
        exec(compile(block, f"{DOC.name} block {i + 1}", "exec"), namespace)
    assert "cheapest die" in capsys.readouterr().out
