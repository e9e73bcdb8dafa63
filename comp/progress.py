"""What long work prints: a console that fits logs as well as terminals, and step progress
that is a live bar on a terminal and plain lines anywhere else.

Written to a file or a pipe (`make all > log`, CI), rich assumes 80 columns, which cut table
headers and progress lines short ("300/3…"). There the console is `COLUMNS` wide, else 120, and
progress is a plain line every tenth of the way, without control characters.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

LOG_WIDTH = 120  # columns when the output is not a terminal and COLUMNS is not set


def make_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)  # a message: one line
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = LOG_WIDTH
    return console


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(max(seconds, 0.0))))


class StepProgress:
    """Progress of a loop of `total` steps, resumed at `completed`. `update(step, text)` as
    often as the loop reads its figures (`text`: loss, lr, rate); off a terminal, a line is
    printed when a tenth of the way has been passed since the last one, and at the end."""

    def __init__(
        self,
        console: Console,
        description: str,
        total: int,
        completed: int = 0,
        lines: int = 10,
        unit: str = "step",
    ) -> None:
        self.console, self.description, self.total, self.unit = console, description, total, unit
        self.every = max(1, total // lines)
        self.next_line = (completed // self.every + 1) * self.every
        self.first, self.started = completed, time.perf_counter()
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[text]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.bar.add_task(description, total=total, completed=completed, text="")

    def __enter__(self) -> StepProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, step: int, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, text=text)
            return
        if step < self.next_line and step != self.total:
            return
        self.next_line = (step // self.every + 1) * self.every
        elapsed = time.perf_counter() - self.started
        per_step = elapsed / max(step - self.first, 1)
        self.console.print(
            f"{self.description}: {self.unit} {step}/{self.total} ({step / self.total:.0%}), "
            f"{text}, {_clock(elapsed)} elapsed, ETA {_clock(per_step * (self.total - step))}",
            soft_wrap=True,
        )


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def fitted_table(
    title: str, headers: list[str], rows: list[list[str]], left: set[str], width: int
) -> Table:
    """A table one line a row that fits `width` columns: every column as wide as its widest
    cell, and the last one (free text: a note, the keys that differ) cut to what is left. Cells
    are plain text; `left` names the left-justified columns."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers[:-1])]
    rest = width - sum(widths) - 3 * len(headers) - 2  # borders and padding
    table = Table(title=escape(title))
    for header, column_width in zip(headers, [*widths, None], strict=True):
        table.add_column(header, justify="left" if header in left else "right", no_wrap=True,
                         min_width=column_width)  # fmt: skip
    for row in rows:
        table.add_row(*(escape(c) for c in row[:-1]), escape(cut(row[-1], max(rest, 4))))
    return table
