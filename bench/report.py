"""The Markdown report: machine, versions, one section per mode with its tables, and the targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """A Markdown table."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        """Pipe-table text; cells may not contain newlines."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class TargetCheck:
    """One stated target: what was asked, what was measured, and whether it was met (None: not measured)."""

    name: str
    goal: str
    measured: str
    met: bool | None


@dataclass
class Section:
    """One mode's part of the report."""

    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[TargetCheck] = field(default_factory=list)

    def markdown(self) -> str:
        """The section as Markdown."""
        parts = [f"## {self.title}"]
        if self.intro:
            parts.append(self.intro)
        parts += [table.markdown() for table in self.tables]
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(parts)


def verdict(met: bool | None) -> str:
    """How a target check reads in the table."""
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def render_report(title: str, preamble: str, machine: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole document: the machine, a table of every target, then each mode's section."""
    parts = [f"# {title}", preamble, "## Machine and versions",
             Table(["", ""], [[k, v] for k, v in machine]).markdown()]
    checks = [c for s in sections for c in s.checks]
    if checks:
        parts += ["## Targets", Table(["target", "goal", "measured (median [min – max] over rounds)", "verdict"],
                                      [[c.name, c.goal, c.measured, verdict(c.met)] for c in checks]).markdown()]
    parts += [s.markdown() for s in sections]
    return "\n\n".join(parts) + "\n"
