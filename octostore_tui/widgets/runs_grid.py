"""RunsGrid: a virtual, paged grid of runs (name, status, start, duration, params, metrics).

Thousands of runs must scroll without stalls, so this is a Line API widget
(``ScrollView.render_line``) rather than a ``DataTable``: it knows the total row
count from the daemon, keeps only the pages it was handed, and draws only the
lines on screen.  A line whose page is missing is drawn as a placeholder and the
grid posts :class:`RunsGrid.PageWanted` (once per page); the screen fetches the
page in a worker and hands it back with :meth:`RunsGrid.set_page`.  The grid
never does I/O itself.

A ``generation`` number ties pages to a query: when the screen changes the
filter, sort or experiment it calls :meth:`reset`, and pages of the old query
that arrive late are dropped.

Keys: arrows move a cell cursor (the column cursor picks the sort column),
``space`` marks runs for comparing, ``enter`` opens, ``s`` sorts by the
cursor's column.  Clicking a header sorts, clicking a row moves the cursor,
double-clicking opens.  The run-name column stays put while the rest scrolls
sideways.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .. import format as fmt

PAGE_SIZE = 200
"""Rows per ``octostore/runs`` page."""


@dataclass
class Column:
    id: str
    """``run_name``, ``status``, ``start_time``, ``duration``, or ``params.X``/``metrics.X``..."""
    label: str
    width: int = 10
    numeric: bool = False

    @property
    def kind(self) -> str:
        return self.id.partition(".")[0] if "." in self.id else "attr"

    @property
    def key(self) -> str:
        return self.id.partition(".")[2] if "." in self.id else self.id


BASE_COLUMNS = ("status", "start_time", "duration")
_LABELS = {"run_name": "Run", "status": "Status", "start_time": "Started", "duration": "Duration"}
_WIDTHS = {"run_name": 22, "status": 10, "start_time": 14, "duration": 9}
_CAP = {"params": 18, "metrics": 12, "tags": 20}


def make_columns(
    params: list[str], metrics: list[str], tags: list[str] | None = None
) -> list[Column]:
    cols = [Column("run_name", "Run", 22)]
    cols += [Column(c, _LABELS[c], _WIDTHS[c]) for c in BASE_COLUMNS]
    cols += [Column(f"params.{p}", p, max(6, min(_CAP["params"], len(p)))) for p in params]
    cols += [
        Column(f"metrics.{m}", m, max(8, min(_CAP["metrics"], len(m))), numeric=True)
        for m in metrics
    ]
    cols += [Column(f"tags.{t}", t, max(6, min(_CAP["tags"], len(t)))) for t in tags or []]
    return cols


def cell_text(run: dict[str, Any], col: Column, now_ms: float | None = None) -> str:
    if col.id == "run_name":
        return fmt.run_label(run)
    if col.id == "status":
        st = run.get("status") or ""
        if run.get("lifecycle_stage") == "deleted":
            return "deleted"
        return f"{fmt.STATUS_ICON.get(st, ' ')} {st.lower()}"
    if col.id == "start_time":
        return fmt.when(run.get("start_time"))
    if col.id == "duration":
        return fmt.run_duration(run, now_ms)
    kind, key = col.kind, col.key
    values = run.get(kind) or {}
    if key not in values:
        return ""
    if kind == "metrics":
        return fmt.num(values[key])
    return fmt.shown(values[key])


class RunsGrid(ScrollView, can_focus=True):
    """The runs of a query, paged from the daemon."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "runs-grid--header",
        "runs-grid--header-cursor",
        "runs-grid--cursor",
        "runs-grid--cursor-cell",
        "runs-grid--selected",
        "runs-grid--placeholder",
        "runs-grid--deleted",
        "runs-grid--running",
        "runs-grid--failed",
        "runs-grid--finished",
        "runs-grid--killed",
        "runs-grid--dim",
    }

    DEFAULT_CSS = """
    RunsGrid {
        background: $surface;
        height: 1fr;
    }
    RunsGrid > .runs-grid--header { background: $panel; color: $text; text-style: bold; }
    RunsGrid > .runs-grid--header-cursor {
        background: $panel; color: $accent; text-style: bold underline;
    }
    RunsGrid > .runs-grid--cursor { background: $boost; }
    RunsGrid:focus > .runs-grid--cursor { background: $primary 25%; }
    RunsGrid > .runs-grid--cursor-cell { text-style: bold; }
    RunsGrid:focus > .runs-grid--cursor-cell { background: $primary 60%; text-style: bold; }
    RunsGrid > .runs-grid--selected { color: $accent; text-style: bold; }
    RunsGrid > .runs-grid--placeholder { color: $text-disabled; }
    RunsGrid > .runs-grid--deleted { color: $text-disabled; text-style: strike; }
    RunsGrid > .runs-grid--running { color: $accent; text-style: bold; }
    RunsGrid > .runs-grid--failed { color: $error; }
    RunsGrid > .runs-grid--finished { color: $success; }
    RunsGrid > .runs-grid--killed { color: $warning; }
    RunsGrid > .runs-grid--dim { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("left", "column(-1)", "Left", show=False),
        Binding("right", "column(1)", "Right", show=False),
        Binding("enter", "open", "Open run"),
        Binding("space", "toggle_select", "Mark"),
        Binding("s", "sort", "Sort"),
    ]

    page_size: ClassVar[int] = PAGE_SIZE
    """Rows per page (tests lower it to page through a small store)."""

    cursor_row: reactive[int] = reactive(0, always_update=True)
    cursor_col: reactive[int] = reactive(0)

    # -- messages -------------------------------------------------------------------------
    class PageWanted(Message):
        """Fetch the page at ``offset`` for query ``generation``."""

        def __init__(self, grid: RunsGrid, generation: int, offset: int) -> None:
            super().__init__()
            self.grid = grid
            self.generation = generation
            self.offset = offset

    class RunOpened(Message):
        def __init__(self, grid: RunsGrid, run_id: str) -> None:
            super().__init__()
            self.grid = grid
            self.run_id = run_id

    class SortRequested(Message):
        def __init__(self, grid: RunsGrid, column: str) -> None:
            super().__init__()
            self.grid = grid
            self.column = column

    class SelectionChanged(Message):
        def __init__(self, grid: RunsGrid, run_ids: list[str]) -> None:
            super().__init__()
            self.grid = grid
            self.run_ids = run_ids

    class CursorMoved(Message):
        def __init__(self, grid: RunsGrid, run: dict[str, Any] | None) -> None:
            super().__init__()
            self.grid = grid
            self.run = run

    # -- state ----------------------------------------------------------------------------
    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: list[Column] = make_columns([], [])
        self.rows: dict[int, dict[str, Any]] = {}
        self.total: int | None = None
        self.generation = 0
        self.selected: list[str] = []
        self.sort: tuple[str, bool] | None = None
        """(column id, ascending) shown as an arrow in the header."""
        self._requested: set[int] = set()
        self._sized = False
        self.message: str | None = None
        """Shown instead of "loading runs…" when the query failed (no page will come)."""

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(1.0, self._tick_running)

    def reset(self, columns: list[Column] | None = None, keep_cursor: bool = False) -> int:
        """Forget every page (a new query); returns the new generation."""
        self.generation += 1
        self.rows.clear()
        self._requested.clear()
        self.total = None
        self.message = None
        if columns is not None:
            self.columns = columns
            self._sized = False
            self.cursor_col = min(self.cursor_col, len(self.columns) - 1)
        if not keep_cursor:
            self.cursor_row = 0
            self.scroll_to(y=0, animate=False)
        self._update_virtual_size()
        self.refresh()
        return self.generation

    def show_message(self, generation: int, text: str) -> None:
        """The query of ``generation`` failed: say ``text`` (plain) where its rows would be."""
        if generation == self.generation:
            self.message = text
            self.refresh()

    def set_page(
        self, generation: int, offset: int, rows: list[dict[str, Any]], total: int
    ) -> bool:
        """Store a fetched page; False when it belongs to an older query."""
        if generation != self.generation:
            return False
        if self.total is not None and total != self.total:
            # The result set changed under us: pages we hold may be shifted.
            self.rows = {i: r for i, r in self.rows.items() if offset <= i < offset + len(rows)}
            self._requested = {offset // self.page_size}
        self.total = total
        for i, row in enumerate(rows):
            self.rows[offset + i] = row
        if rows:
            self._fit_widths(rows, grow_only=self._sized)
        self.cursor_row = min(self.cursor_row, max(0, total - 1))
        self._update_virtual_size()
        self.refresh()
        if offset <= self.cursor_row < offset + len(rows):
            self.post_message(self.CursorMoved(self, self.current_run))
        return True

    def patch_rows(self, runs: list[dict[str, Any]]) -> set[str]:
        """Replace loaded rows in place (same run ids); returns the ids patched."""
        by_id = {r["run_id"]: r for r in runs}
        done: set[str] = set()
        if runs:
            self._fit_widths(runs, grow_only=True)
        for i, row in list(self.rows.items()):
            new = by_id.get(row.get("run_id", ""))
            if new is not None:
                self.rows[i] = new
                done.add(new["run_id"])
        if done:
            self.refresh()
        return done

    def invalidate_pages(self) -> None:
        """Re-request every page on screen (same query, its content changed)."""
        self._requested.clear()
        first = int(self.scroll_y) // self.page_size
        last = (int(self.scroll_y) + self.size.height) // self.page_size
        for page in range(first, last + 1):
            self._want(page * self.page_size)

    @property
    def loaded_ids(self) -> set[str]:
        return {r.get("run_id", "") for r in self.rows.values()}

    @property
    def current_run(self) -> dict[str, Any] | None:
        return self.rows.get(self.cursor_row)

    @property
    def current_column(self) -> Column:
        return self.columns[min(self.cursor_col, len(self.columns) - 1)]

    def _fit_widths(self, rows: list[dict[str, Any]], grow_only: bool = False) -> None:
        """Size columns to their values (capped); later pages may only widen them."""
        self._sized = True
        for col in self.columns:
            longest = max((cell_len(cell_text(r, col)) for r in rows[:200]), default=0)
            cap = 30 if col.id == "run_name" else _CAP.get(col.kind, 16)
            # A long label gives way to short values (it is shortened with "…"), up to a point.
            width = max(min(cell_len(col.label) + 2, cap, 14), min(longest, cap), 4)
            col.width = max(col.width, width) if grow_only else width

    def _update_virtual_size(self) -> None:
        width = 2 + sum(c.width + 1 for c in self.columns)
        self.virtual_size = Size(width, (self.total or 0) + 1)

    def _want(self, offset: int) -> None:
        page = offset // self.page_size
        if page in self._requested:
            return
        self._requested.add(page)
        self.post_message(self.PageWanted(self, self.generation, page * self.page_size))

    def _tick_running(self) -> None:
        top = int(self.scroll_y)
        for i in range(top, top + self.size.height):
            row = self.rows.get(i)
            if row is not None and row.get("status") == "RUNNING":
                self.refresh()
                return

    # -- rendering ------------------------------------------------------------------------
    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"runs-grid--{name}", partial=True)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._header(width, base)
        index = int(self.scroll_y) + y - 1
        if self.total is None:
            if y == 1:
                text = f"  {self.message}" if self.message else "  loading runs…"
                return Strip(
                    [Segment(text, base + self._style("placeholder"))]
                ).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= self.total:
            return Strip.blank(width, base)
        row = self.rows.get(index)
        if row is None:
            self._want(index)
            return Strip([Segment("  …", base + self._style("placeholder"))]).adjust_cell_length(
                width, base
            )
        return self._row(index, row, width, base)

    def _header(self, width: int, base: Style) -> Strip:
        head = base + self._style("header")
        cur = base + self._style("header-cursor")
        fixed: list[Segment] = [Segment("  ", head)]
        rest: list[Segment] = []
        for i, col in enumerate(self.columns):
            label = fmt.shown(col.label)
            if self.sort and self.sort[0] == col.id:
                label += " ▲" if self.sort[1] else " ▼"
            text = _fit(label, col.width, col.numeric)
            target = fixed if i == 0 else rest
            target += [Segment(text, cur if i == self.cursor_col else head), Segment(" ", head)]
        return self._join(fixed, rest, width, head)

    def _row(self, index: int, row: dict[str, Any], width: int, base: Style) -> Strip:
        is_cursor = index == self.cursor_row
        row_style = base + self._style("cursor") if is_cursor else base
        deleted = row.get("lifecycle_stage") == "deleted"
        if deleted:
            row_style = row_style + self._style("deleted")
        marked = row.get("run_id", "") in self.selected
        fixed: list[Segment] = [
            Segment("● " if marked else "  ", row_style + self._style("selected"))
        ]
        rest: list[Segment] = []
        now_ms = time.time() * 1000
        for i, col in enumerate(self.columns):
            style = row_style
            if col.id == "status" and not deleted:
                st = (row.get("status") or "").lower()
                if st in ("running", "failed", "finished", "killed"):
                    style = style + self._style(st)
            elif col.id == "run_name" and marked:
                style = style + self._style("selected")
            elif col.kind == "tags" or col.id in ("start_time", "duration"):
                style = style + self._style("dim")
            if is_cursor and i == self.cursor_col:
                style = style + self._style("cursor-cell")
            text = _fit(cell_text(row, col, now_ms), col.width, col.numeric)
            target = fixed if i == 0 else rest
            target += [Segment(text, style), Segment(" ", row_style)]
        return self._join(fixed, rest, width, row_style)

    def _join(
        self, fixed: list[Segment], scrolling: list[Segment], width: int, fill: Style
    ) -> Strip:
        fixed_strip = Strip(fixed)
        fixed_width = fixed_strip.cell_length
        x = int(self.scroll_x)
        rest = Strip(scrolling).crop(x, x + max(0, width - fixed_width))
        return Strip.join([fixed_strip, rest]).adjust_cell_length(width, fill).simplify()

    # -- geometry ---------------------------------------------------------------------------
    def _col_x(self, index: int) -> tuple[int, int]:
        """(start, end) of column ``index`` in scrolling coordinates (after the fixed part)."""
        x = 0
        for col in self.columns[1:index]:
            x += col.width + 1
        return x, x + self.columns[index].width + 1

    def _fixed_width(self) -> int:
        return 2 + self.columns[0].width + 1

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh()
        top = int(self.scroll_y)
        visible = max(1, self.size.height - 1 - (1 if self.show_horizontal_scrollbar else 0))
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        if old != new:
            self.post_message(self.CursorMoved(self, self.current_run))

    def watch_cursor_col(self, new: int) -> None:
        self.refresh()
        if new <= 0:
            return
        start, end = self._col_x(new)
        view = self.size.width - self._fixed_width()
        x = int(self.scroll_x)
        if start < x:
            self.scroll_to(x=start, animate=False)
        elif end > x + view:
            self.scroll_to(x=end - view, animate=False)

    # -- actions --------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        if self.total:
            self.cursor_row = max(0, min(self.total - 1, self.cursor_row + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        if self.total:
            self.cursor_row = self.total - 1 if end else 0

    def action_column(self, delta: int) -> None:
        self.cursor_col = max(0, min(len(self.columns) - 1, self.cursor_col + delta))

    def action_open(self) -> None:
        run = self.current_run
        if run is not None:
            self.post_message(self.RunOpened(self, run["run_id"]))

    def action_toggle_select(self) -> None:
        run = self.current_run
        if run is None:
            return
        rid = run["run_id"]
        if rid in self.selected:
            self.selected.remove(rid)
        else:
            self.selected.append(rid)
        self.refresh()
        self.post_message(self.SelectionChanged(self, list(self.selected)))
        self.action_cursor(1)

    def clear_selection(self) -> None:
        self.selected.clear()
        self.refresh()
        self.post_message(self.SelectionChanged(self, []))

    def action_sort(self) -> None:
        self.post_message(self.SortRequested(self, self.current_column.id))

    # -- mouse --------------------------------------------------------------------------------
    def _column_at(self, x: int) -> int | None:
        fixed_w = self._fixed_width()
        if x < 2:
            return None
        if x < fixed_w:
            return 0
        sx = x - fixed_w + int(self.scroll_x)
        for i in range(1, len(self.columns)):
            start, end = self._col_x(i)
            if start <= sx < end:
                return i
        return None

    async def _on_click(self, event: events.Click) -> None:
        col = self._column_at(event.x)
        if event.y == 0:
            if col is not None:
                self.cursor_col = col
                self.post_message(self.SortRequested(self, self.columns[col].id))
            return
        index = int(self.scroll_y) + event.y - 1
        if self.total is None or index >= self.total:
            return
        self.focus()
        if col is not None:
            self.cursor_col = col
        if event.x < 2:
            self.cursor_row = index
            self.action_toggle_select()
            return
        if event.chain >= 2 and index == self.cursor_row:
            self.action_open()
        self.cursor_row = index

    def scroll_cursor_visible(self) -> None:
        self.scroll_to_region(Region(0, self.cursor_row + 1, 1, 1), animate=False)


def _fit(text: str, width: int, right: bool = False) -> str:
    if cell_len(text) > width:
        return (
            set_cell_size(text, max(0, width - 1)) + "…"
            if width > 1
            else set_cell_size(text, width)
        )
    pad = width - cell_len(text)
    return " " * pad + text if right else text + " " * pad
