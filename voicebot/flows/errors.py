"""Errors a content designer sees: each one names a file, a line and a column in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Position:
    """Where a value was written: 1-based line and column, as editors count them."""

    file: Path
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class FlowIssue:
    """One problem found while loading flows. ``warning`` issues do not fail validation."""

    position: Position | None
    message: str
    flow: str | None = None
    step: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = str(self.position) if self.position else "flows"
        prefix = "warning: " if self.warning else ""
        return f"{where}: {prefix}{self.message}"


class FlowError(Exception):
    """Loading failed; ``issues`` holds every problem found in the load, not only the first."""

    def __init__(self, issues: list[FlowIssue]) -> None:
        self.issues = sorted(issues, key=_issue_order)
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def errors(self) -> list[FlowIssue]:
        return [i for i in self.issues if not i.warning]


def _issue_order(issue: FlowIssue) -> tuple[str, int, int, str]:
    if issue.position is None:
        return ("", 0, 0, issue.message)
    return (str(issue.position.file), issue.position.line, issue.position.col, issue.message)
