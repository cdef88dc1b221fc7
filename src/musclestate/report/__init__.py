"""Report stage: one self-contained HTML report of a cross-validation run, built only from the
result files on disk (``metrics.json``, ``predictions/<PID>.csv``, ``config.json``) and the
dataset the run names (example frames with their ROI).

``write_report(run_dir)`` is the entry point; ``musclestate report RUN`` calls it.
"""

from __future__ import annotations

from musclestate.report.console import metrics_table
from musclestate.report.html import render_report, write_report
from musclestate.report.results import RunResults, load_run, summary_rows

__all__ = [
    "RunResults",
    "load_run",
    "metrics_table",
    "render_report",
    "summary_rows",
    "write_report",
]
