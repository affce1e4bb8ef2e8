"""The results as Markdown: seconds per tool with each tool's time relative to objmount's,
the same with latency added, rates, the server's counts, the daemons' usage, then notes
and failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from objbench.requests import format_bytes, format_counts, format_traffic
from objbench.results import Cell, Failure, Results
from objbench.runner import Suite

BASELINE = "objmount"
RAW = "raw"


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f}"
    return f"{seconds:.3f}" if seconds >= 0.01 else f"{seconds:.4f}"


def ratio(cell: Cell, base: Cell) -> float | None:
    if not isinstance(cell, float) or not isinstance(base, float) or base <= 0:
        return None
    return cell / base


def format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


class FailureNotes:
    """Numbers each distinct (tool, reason); cells show ``FAIL [n]``."""

    def __init__(self) -> None:
        self.notes: dict[tuple[str, str], int] = {}
        self.rows: dict[tuple[str, str], list[str]] = {}

    def mark(self, tool: str, failure: Failure, row_label: str) -> str:
        key = (tool, failure.reason)
        number = self.notes.setdefault(key, len(self.notes) + 1)
        self.rows.setdefault(key, []).append(row_label)
        return f"FAIL [{number}]"

    def where(self, key: tuple[str, str]) -> str:
        rows = self.rows[key]
        if len(rows) <= 4:
            return "; ".join(rows)
        return f"{len(rows)} rows, from {rows[0]} to {rows[-1]}"

    def lines(self) -> list[str]:
        return [f"- [{n}] {key[0]}, {self.where(key)}: {key[1]}"
                for key, n in self.notes.items()]


def format_cell(cell: Cell, tool: str, label: str, notes: FailureNotes) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, Failure):
        return notes.mark(tool, cell, label)
    return format_seconds(cell)


@dataclass(frozen=True)
class TimeRow:
    label: str
    cells: dict[str, Cell]  # tool -> cell

    def ratios(self, tools: list[str]) -> dict[str, float | None]:
        base = self.cells.get(BASELINE)
        return {t: ratio(self.cells[t], base) for t in tools if t != BASELINE}


def time_rows(results: Results, suites: list[Suite]) -> list[TimeRow]:
    rows = []
    for suite in suites:
        fields = asdict(suite.plan)
        for workload in suite.workloads:
            for row, template in workload.rows():
                rows.append(TimeRow(template.format(**fields),
                                    {t: results.cell(suite.series, row, t)
                                     for t in results.tools}))
    return rows


def time_table(results: Results, suites: list[Suite], notes: FailureNotes,
               title: str = "workload", where: str = "") -> list[list[str]]:
    """Seconds and ratios; ``where`` tells the failure notes which table a row is in."""
    others = [t for t in results.tools if t != BASELINE] if BASELINE in results.tools else []
    rows = [[title, *(f"{t} (s)" for t in results.tools), *(f"{t}/{BASELINE}" for t in others)]]
    for row in time_rows(results, suites):
        ratios = row.ratios(others)
        rows.append([row.label, *(format_cell(row.cells[t], t, row.label + where, notes)
                                  for t in results.tools),
                     *(format_ratio(ratios[t]) for t in others)])
    return rows


def rate_table(results: Results, suites: list[Suite]) -> list[list[str]]:
    rows = [["derived from the times above", *results.tools]]
    for suite in suites:
        fields = asdict(suite.plan)
        for workload in suite.workloads:
            rate = workload.rate
            if rate is None:
                continue
            cells = []
            for tool in results.tools:
                cell = results.cell(suite.series, workload.key, tool)
                if not isinstance(cell, float) or cell <= 0:
                    cells.append("-")
                    continue
                value = rate.of(suite.plan, cell)
                cells.append(f"{value:.3f}" if rate.per_item else f"{value:,.0f}")
            rows.append([f"{workload.label.format(**fields)}: {rate.unit}", *cells])
    return rows


def per_workload_table(results: Results, suites: list[Suite], title: str, tools: list[str],
                       cell: Callable[[str, str, str], str | None]) -> list[list[str]]:
    """One row per workload with at least one figure; ``cell(series, workload, tool)``."""
    rows = [[title, *tools]]
    for suite in suites:
        fields = asdict(suite.plan)
        for workload in suite.workloads:
            cells = [cell(suite.series, workload.key, t) or "-" for t in tools]
            if any(c != "-" for c in cells):
                rows.append([workload.label.format(**fields), *cells])
    return rows


def request_table(results: Results, suites: list[Suite]) -> list[list[str]]:
    def cell(series: str, workload: str, tool: str) -> str | None:
        counts = results.median_requests(series, workload, tool)
        return None if counts is None else format_counts(counts)
    return per_workload_table(results, suites, "requests at the server", results.tools, cell)


def traffic_table(results: Results, suites: list[Suite]) -> list[list[str]]:
    def cell(series: str, workload: str, tool: str) -> str | None:
        traffic = results.median_traffic(series, workload, tool)
        return None if traffic is None else format_traffic(traffic)
    return per_workload_table(results, suites, "bytes to / from the server", results.tools,
                              cell)


def usage_table(results: Results, suites: list[Suite]) -> list[list[str]]:
    def cell(series: str, workload: str, tool: str) -> str | None:
        usage = results.median_usage(series, workload, tool)
        if usage is None:
            return None
        return f"{format_bytes(usage.peak_rss_kib * 1024)}, {usage.cpu_seconds:.2f} s"
    tools = [t for t in results.tools if t != RAW]
    return per_workload_table(results, suites, "daemon: peak RSS, CPU", tools, cell)


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-")
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])


@dataclass(frozen=True)
class Report:
    main: list[Suite]  # the direct series and the big directories
    latency: list[Suite]  # empty: not run
    latency_title: str = ""
    latency_where: str = ""  # how failure notes name the latency table
    overhead: str = ""  # the shim's local-path overhead, already Markdown
    chart: str = ""  # file name of the ratio chart, next to the Markdown


def render_report(results: Results, report: Report, notes_text: list[str]) -> str:
    """The whole Markdown document."""
    failures = FailureNotes()
    parts = ["# objmount benchmark", ""]
    if report.chart:
        parts += [f"Ratios to objmount, log scale: [{report.chart}]({report.chart})", ""]
    parts += [render_table(time_table(results, report.main, failures)), ""]
    if report.latency:
        parts += [f"**{report.latency_title}**", "",
                  render_table(time_table(results, report.latency, failures,
                                          where=report.latency_where)), ""]
    for table in (rate_table(results, report.main),
                  request_table(results, report.main), traffic_table(results, report.main),
                  usage_table(results, report.main)):
        if len(table) > 1:
            parts += [render_table(table), ""]
    if report.overhead:
        parts += [report.overhead, ""]
    parts += ["Notes:", "", *(f"- {n}" for n in notes_text)]
    if failures.notes:
        parts += ["", "Failures:", "", *failures.lines()]
    return "\n".join(parts) + "\n"
