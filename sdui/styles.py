"""Prompt styles in A1111's `styles.csv` (`name,prompt,negative_prompt`): read, apply to prompts, save.

One `StyleStore` per process (made in app.py), shared by the UI and the API. It re-reads the file when it changed
on disk; a row it cannot read becomes a message naming its line, and the other rows still load. Saving edits
the file's text (every other row, comment or broken line stays as it was) and replaces it atomically.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

STYLES_FILE = "styles.csv"
HEADER = ("name", "prompt", "negative_prompt")
PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Style:
    """One styles.csv row: a prompt and a negative prompt added to the user's own."""

    name: str
    prompt: str = ""
    negative_prompt: str = ""


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A1111's rule: the user's prompt replaces `{prompt}` in the style; without one, the style is appended
    with ", " (empty parts left out)."""
    if PLACEHOLDER in style_prompt:
        return style_prompt.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles(prompt: str, negative_prompt: str, styles: Iterable[Style]) -> tuple[str, str]:
    """The prompt and negative prompt with each style merged in, in order."""
    for style in styles:
        prompt = merge_prompts(style.prompt, prompt)
        negative_prompt = merge_prompts(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt


@dataclass(frozen=True)
class _Record:
    """A parsed CSV record and the lines [start, end) of the file it came from (0-based)."""

    start: int
    end: int
    cells: list[str]


@dataclass
class StyleFile:
    """What one reading of styles.csv found."""

    styles: dict[str, Style]
    problems: list[str]  # one message per row (or header) that could not be read
    header: list[str] | None = None
    header_lines: tuple[int, int] = (0, 0)  # where the header record is in `lines`
    records: tuple[_Record, ...] = ()
    lines: tuple[str, ...] = ()


def parse_styles(text: str, source: str = STYLES_FILE) -> StyleFile:
    """Read styles.csv text as A1111 does (a BOM, extra columns, a missing negative column or A1111's old `text`
    column are fine; rows whose name starts with # are comments); a broken row is reported by its line."""
    lines = tuple(text.removeprefix("\ufeff").splitlines(keepends=True))
    styles: dict[str, Style] = {}
    problems: list[str] = []
    header: list[str] | None = None
    header_lines = (0, 0)
    records = []
    for start, end, cells in _records(lines):
        where = f"{source} line {start + 1}"
        if isinstance(cells, csv.Error):
            problems.append(f"{where}: {cells}; the row was skipped")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header, header_lines = [cell.strip() for cell in cells], (start, end)
            if "name" not in header:
                problems.append(f"{where}: the header must name a 'name' column (A1111's is "
                                f"{','.join(HEADER)}); got {','.join(header)}")
                return StyleFile({}, problems, header, header_lines, (), lines)
            continue
        if len(cells) > len(header):
            problems.append(f"{where}: {len(cells)} fields but the header has {len(header)} (a comma inside a "
                            "prompt needs the prompt in double quotes); the row was skipped")
            continue
        row = dict(zip(header, cells))
        name = row["name"].strip()
        if name.startswith("#"):
            continue
        if not name:
            problems.append(f"{where}: the style has no name; the row was skipped")
            continue
        records.append(_Record(start, end, list(cells)))
        styles[name] = Style(name, row.get("prompt", row.get("text", "")), row.get("negative_prompt", ""))
    return StyleFile(styles, problems, header, header_lines, tuple(records), lines)


def _records(lines: tuple[str, ...]) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
    """(first line, end line, cells or the csv error) per record; after a broken record, reading starts again on
    the line after its first, so an unclosed quote loses one row, not the rest of the file."""
    start = 0
    while start < len(lines):
        consumed = start

        def feed() -> Iterator[str]:
            nonlocal consumed
            while consumed < len(lines):
                consumed += 1
                yield lines[consumed - 1]

        reader = csv.reader(feed(), strict=True, skipinitialspace=True)
        while True:
            first = consumed
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield first, first + 1, e
                start = first + 1
                break
            yield first, consumed, cells


class StyleStore:
    """styles.csv in the data dir: the styles as the file holds them now, and saving one (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._file = StyleFile({}, [])

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> StyleStore:
        return cls(Path(data_dir) / STYLES_FILE)

    def styles(self) -> dict[str, Style]:
        """The styles by name, in file order (re-read when the file changed)."""
        with self._lock:
            return dict(self._current().styles)

    def problems(self) -> list[str]:
        """The messages about rows the last reading could not use."""
        with self._lock:
            return list(self._current().problems)

    def find(self, names: Iterable[str]) -> list[Style]:
        """The styles named, in that order; ValueError naming the ones styles.csv does not have."""
        styles = self.styles()
        missing = [name for name in names if name not in styles]
        if missing:
            known = ", ".join(list(styles)[:20]) or "none"
            raise ValueError(f"no style {', '.join(map(repr, missing))} in {self.path.name} (known: {known})")
        return [styles[name] for name in names]

    def save(self, style: Style) -> None:
        """Add `style`, or replace the row of the same name, keeping every other line of the file as it was."""
        name = style.name.strip()
        if not name or name.startswith("#") or "\n" in name or "\r" in name:
            raise ValueError(f"a style name must be one line of text not starting with #; got {style.name!r}")
        style = Style(name, style.prompt, style.negative_prompt)
        with self._lock:
            current = self._current()
            if current.header is not None and "name" not in current.header:
                raise ValueError(f"{self.path} has no 'name' column in its header: fix line 1 before saving")
            self._write(_with_style(current, style))
            self._stamp = None

    def _current(self) -> StyleFile:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._file = None, StyleFile({}, [])
            return self._file
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            raw = self.path.read_bytes()
            try:
                text, problems = raw.decode("utf-8-sig"), []
            except UnicodeDecodeError as e:
                text = raw.decode("utf-8-sig", errors="replace")
                problems = [f"{self.path.name}: not UTF-8 text (byte {e.start}); unreadable characters were "
                            "replaced by \ufffd"]
            parsed = parse_styles(text, self.path.name)
            parsed.problems[:0] = problems
            self._stamp, self._file = stamp, parsed
        return self._file

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _with_style(current: StyleFile, style: Style) -> str:
    """The file's text with `style`'s row replaced (the last row of that name) or appended; a header without a
    negative_prompt column gets one when the style has a negative prompt."""
    lines = list(current.lines)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    header = list(current.header or HEADER)
    if style.negative_prompt and "negative_prompt" not in header:
        header.append("negative_prompt")
    start, end = current.header_lines if current.header is not None else (0, 0)
    lines[start:end] = [_csv_line(header, newline)]
    shift = 1 - (end - start)  # the header is now one line
    prompt_column = "prompt" if "prompt" in header or "text" not in header else "text"
    values = {"name": style.name, prompt_column: style.prompt, "negative_prompt": style.negative_prompt}
    for record in reversed(current.records):
        if record.cells[header.index("name")].strip() == style.name:
            cells = record.cells + [""] * (len(header) - len(record.cells))
            row = [values.get(column, cell) for column, cell in zip(header, cells)]
            lines[record.start + shift:record.end + shift] = [_csv_line(row, newline)]
            return "".join(lines)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    lines.append(_csv_line([values.get(column, "") for column in header], newline))
    return "".join(lines)


def _csv_line(cells: list[str], newline: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerow(cells)
    return out.getvalue()
