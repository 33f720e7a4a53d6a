"""Strict CSV reading shared by the ERCOT and BTC readers.

Every cell is read as text first so that each bad value can be reported with its file line
and column (:class:`~datasets.errors.DataFileError`) instead of a generic parser failure.
Header names and cells are stripped of surrounding whitespace; blank lines are skipped but
do not shift the reported line numbers (a quoted cell spanning lines counts its last line).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.errors import DataFileError

HEADER_LINE = 1
"""The header is line 1; the first data row is line 2."""


@dataclass(frozen=True)
class RawTable:
    """A CSV file as stripped text cells.

    Attributes:
        path: the file read.
        cells: one text column per header name (stripped), blank lines removed.
        lines: file line of each row of ``cells`` (header = line 1).
    """

    path: Path
    cells: pd.DataFrame
    lines: np.ndarray

    @property
    def columns(self) -> list[str]:
        """Header names in file order."""
        return [str(c) for c in self.cells.columns]

    def error(
        self, reason: str, row: int | None = None, column: str | None = None
    ) -> DataFileError:
        """A DataFileError for ``row`` (position in ``cells``) and ``column`` of this file."""
        line = None if row is None else int(self.lines[row])
        return DataFileError(self.path, reason, line=line, column=column)


def read_header(path: Path) -> list[str]:
    """The stripped header names of a CSV file (its first line)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(path, f"cannot read file ({error})") from None
    if not header or not any(name.strip() for name in header):
        raise DataFileError(path, "file is empty or has no header line", line=HEADER_LINE)
    return [name.strip() for name in header]


def read_raw_csv(path: str | Path) -> RawTable:
    """Read ``path`` as text cells; raise DataFileError on a malformed file.

    Raises:
        DataFileError: missing/unreadable file, empty header, duplicate or empty column
            names, no data rows, or a row with a different number of fields than the header.
    """
    path = Path(path)
    header = read_header(path)
    seen: set[str] = set()
    for name in header:
        if not name:
            raise DataFileError(path, "header has an empty column name", line=HEADER_LINE)
        if name in seen:
            raise DataFileError(path, "column name appears twice", HEADER_LINE, name)
        seen.add(name)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataFileError(
                        path,
                        f"malformed CSV: {len(row)} fields, the header has {len(header)}",
                        line=reader.line_num,
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(path, f"cannot read file ({error})") from None
    if not rows:
        raise DataFileError(path, "no data rows after the header")
    cells = pd.DataFrame(rows, columns=header, dtype=str)
    for name in header:
        cells[name] = cells[name].str.strip()
    return RawTable(path, cells, np.asarray(lines, dtype=np.int64))


def require_columns(table: RawTable, needed: Iterable[str], what: str) -> None:
    """Raise DataFileError naming each column of ``needed`` that ``table`` lacks."""
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise DataFileError(
            table.path,
            f"{what} needs column(s) {', '.join(missing)}; found {', '.join(table.columns)}",
            line=HEADER_LINE,
            column=missing[0],
        )


def parse_numbers(table: RawTable, column: str, allow_empty: bool = False) -> np.ndarray:
    """The cells of ``column`` as float; empty cells become NaN when ``allow_empty``.

    Raises:
        DataFileError: at the first cell that is not a finite number (or is empty and
            ``allow_empty`` is false), naming its line and column.
    """
    text = table.cells[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    empty = (text == "").to_numpy()
    bad = (~np.isfinite(values)) & ~empty
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise table.error(f"not a finite number: {text.iloc[row]!r}", row, column)
    if empty.any() and not allow_empty:
        raise table.error("empty value", int(np.flatnonzero(empty)[0]), column)
    return values


def first_true(mask: np.ndarray) -> int:
    """Index of the first True in ``mask`` (the caller checked there is one)."""
    return int(np.flatnonzero(mask)[0])
