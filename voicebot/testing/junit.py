"""JUnit XML for conversation test results, so CI systems show them like unit tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from voicebot.testing.runner import TestOutcome


def write_junit(
    outcomes: list[TestOutcome], path: Path, *, suite: str = "conversation-tests"
) -> None:
    failures = sum(not o.passed for o in outcomes)
    total_s = sum(o.duration_ms for o in outcomes) / 1000
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(outcomes)),
        failures=str(failures),
        errors="0",
        skipped=str(sum(bool(o.skipped) for o in outcomes)),
        time=f"{total_s:.3f}",
    )
    for outcome in outcomes:
        case = ET.SubElement(
            root,
            "testcase",
            classname=str(outcome.position.file) if outcome.position else suite,
            name=outcome.name,
            time=f"{outcome.duration_ms / 1000:.3f}",
        )
        if outcome.skipped:
            ET.SubElement(case, "skipped", message=outcome.skipped)
        elif not outcome.passed:
            failure = ET.SubElement(case, "failure", message=outcome.failure or "failed")
            failure.text = "\n".join(outcome.transcript)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
