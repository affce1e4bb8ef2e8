"""The results as one Markdown table: seconds per tool, then each tool's time relative to
objmount's, then notes and failures."""

from __future__ import annotations

from dataclasses import asdict

from objbench.config import Plan
from objbench.requests import format_counts
from objbench.runner import Cell, Failure, Results
from objbench.workloads import WORKLOADS

BASELINE = "objmount"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds >= 1 else f"{seconds:.3f}"


def format_ratio(cell: Cell, base: Cell) -> str:
    if not isinstance(cell, float) or not isinstance(base, float) or base <= 0:
        return "-"
    ratio = cell / base
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"


class FailureNotes:
    """Numbers each distinct (tool, reason); cells show ``FAIL [n]``."""

    def __init__(self, total_rows: int) -> None:
        self.total_rows = total_rows
        self.notes: dict[tuple[str, str], int] = {}
        self.rows: dict[tuple[str, str], list[str]] = {}

    def mark(self, tool: str, failure: Failure, row_label: str) -> str:
        key = (tool, failure.reason)
        number = self.notes.setdefault(key, len(self.notes) + 1)
        self.rows.setdefault(key, []).append(row_label)
        return f"FAIL [{number}]"

    def where(self, key: tuple[str, str]) -> str:
        rows = self.rows[key]
        return "every workload" if len(rows) == self.total_rows else "; ".join(rows)

    def lines(self) -> list[str]:
        return [f"- [{n}] {key[0]}, {self.where(key)}: {key[1]}"
                for key, n in self.notes.items()]


def format_cell(cell: Cell, tool: str, label: str, notes: FailureNotes) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, Failure):
        return notes.mark(tool, cell, label)
    return format_seconds(cell)


def table_rows(results: Results, plan: Plan, notes: FailureNotes) -> list[list[str]]:
    others = [t for t in results.tools if t != BASELINE] if BASELINE in results.tools else []
    header = ["workload", *(f"{t} (s)" for t in results.tools),
              *(f"{t}/{BASELINE}" for t in others)]
    rows = [header]
    fields = asdict(plan)
    for workload in WORKLOADS:
        for row, template in workload.rows():
            label = template.format(**fields)
            cells = [format_cell(results.get(row, t), t, label, notes) for t in results.tools]
            base = results.get(row, BASELINE)
            ratios = [format_ratio(results.get(row, t), base) for t in others]
            rows.append([label, *cells, *ratios])
    return rows


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-")
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])


def request_rows(results: Results, plan: Plan) -> list[list[str]]:
    """Requests per workload and tool, as the server counted them."""
    rows = [["requests at the server", *results.tools]]
    fields = asdict(plan)
    for workload in WORKLOADS:
        cells = [format_counts(results.requests[(workload.key, t)])
                 if (workload.key, t) in results.requests else "-" for t in results.tools]
        if any(c != "-" for c in cells):
            rows.append([workload.label.format(**fields), *cells])
    return rows


def render_report(results: Results, plan: Plan, notes_text: list[str],
                  overhead: str = "") -> str:
    """The whole Markdown document: title, table, the shim's local-path overhead, notes,
    failures."""
    failures = FailureNotes(sum(len(w.rows()) for w in WORKLOADS))
    table = render_table(table_rows(results, plan, failures))
    parts = ["# objmount benchmark", "", table, ""]
    requests = request_rows(results, plan)
    if len(requests) > 1:
        parts += [render_table(requests), ""]
    if overhead:
        parts += [overhead, ""]
    parts += ["Notes:", "", *(f"- {n}" for n in notes_text)]
    if failures.notes:
        parts += ["", "Failures:", "", *failures.lines()]
    return "\n".join(parts) + "\n"
