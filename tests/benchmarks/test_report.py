"""benchmarks/report.py: docs/benchmarks.md's generated sections match benchmarks/results (make bench-check)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# benchmarks/ is a folder of the repository, not of the installed package
sys.path.insert(0, str(REPO))

from benchmarks import report  # noqa: E402

pytest.importorskip("matplotlib")


def test_benchmarks_doc_is_in_sync_with_the_stored_results():
    """What `make bench-check` checks: no figure in a generated section differs from its results file."""
    problems = report.check_doc(REPO / "docs" / "benchmarks.md", REPO / "benchmarks" / "results")
    assert problems == [], "\n".join(problems)


def test_check_finds_an_edited_figure_and_a_missing_results_file(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(REPO / "benchmarks" / "results" / "matching.json", results)
    matching = json.loads((results / "matching.json").read_text())
    doc = tmp_path / "benchmarks.md"
    text, written = report.render_doc(
        "# Benchmarks\n\n<!-- detection:begin -->\nold\n<!-- detection:end -->\n",
        results,
        tmp_path / "images",
    )
    assert written == ["matching"]
    doc.write_text(text)
    problems = report.check_doc(doc, results)
    assert len(problems) == 1 and "detection.json is missing" in problems[0]

    matching["target"]["median_s"] *= 2  # a new run, the doc not regenerated
    (results / "matching.json").write_text(json.dumps(matching))
    problems = report.check_doc(doc, results)
    assert len(problems) == 2 and "regenerated" in problems[1]
    assert doc.read_text() == text  # the check leaves the doc alone


def test_every_registered_render_function_resolves():
    for name, (filename, spec) in report.SECTIONS.items():
        assert filename.endswith(".json"), name
        assert callable(report._render_function(spec)), name
