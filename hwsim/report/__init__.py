"""Study reports: figures (PNG and SVG), a Markdown summary and a self-contained HTML page.

:func:`build_report` takes the :class:`hwsim.explore.results.Outputs` of a study and writes
``figures/*.png|svg``, ``report.md`` and ``report.html`` (figures inline as SVG, every string
from the user HTML-escaped) into the study's folder.
"""

from __future__ import annotations

from hwsim.report.document import build_report

__all__ = ["build_report"]
