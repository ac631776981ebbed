"""RESULTS.md: the generated part is rewritten, the hand-written GPU-suite part after the marker is kept."""

from __future__ import annotations

from bench import report


def test_rewriting_results_keeps_the_hand_written_part(tmp_path):
    path = tmp_path / "RESULTS.md"
    report.write_markdown(path, "# generated 1\n")
    assert path.read_text() == "# generated 1\n"  # no marker: nothing kept
    path.write_text(path.read_text() + "\n" + report.KEPT_MARKER + "\n\n## GPU run\n\n| a | b |\n")
    report.write_markdown(path, "# generated 2\n")
    text = path.read_text()
    assert text.startswith("# generated 2\n") and "generated 1" not in text
    assert text.endswith(report.KEPT_MARKER + "\n\n## GPU run\n\n| a | b |\n")
    report.write_markdown(path, "# generated 3\n")  # kept again, not duplicated
    assert path.read_text().count(report.KEPT_MARKER) == 1 and "## GPU run" in path.read_text()
