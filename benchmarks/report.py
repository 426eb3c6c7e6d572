"""Figures, the one-line report of each, and the Markdown table at the end of a run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    scenario: str
    metric: str
    value: float
    unit: str
    target: str = ""          # the target, as text ("≥ 2,000/s"); empty for an informative figure
    ok: bool | None = None    # None: no target, or not judged
    detail: str = ""          # how it was measured, CPU split, sub-figures

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "info"
        return "PASS" if self.ok else "FAIL"


def fmt_value(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit in ("ms", "s"):
        text = f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    elif unit == "x":
        return f"{value:.2f}x"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.1f}"
    return f"{text} {unit}".strip()


def line(fig: Figure) -> str:
    target = f"target {fig.target}" if fig.target else "no target"
    text = f"[{fig.verdict:>4}] {fig.scenario:<15} {fig.metric:<40} {fmt_value(fig.value, fig.unit):>16}   {target}"
    if fig.detail:
        text += f"\n       {fig.detail}"
    return text


def markdown_table(figures: list[Figure]) -> str:
    rows = ["| scenario | figure | value | target | result |", "| --- | --- | ---: | --- | --- |"]
    for fig in figures:
        rows.append(
            f"| {fig.scenario} | {fig.metric} | {fmt_value(fig.value, fig.unit)} | {fig.target or '-'} "
            f"| {fig.verdict} |"
        )
    return "\n".join(rows)


def save_json(figures: list[Figure], path: Path, meta: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures]}, indent=2, default=str))
