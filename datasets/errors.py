"""Errors raised while reading data files.

A bad data file is reported with everything a user needs to fix it: the file, the line
(counted as in a text editor, the header is line 1), the column and the reason.
"""

from __future__ import annotations

from pathlib import Path


class DataFileError(ValueError):
    """A data file could not be read: unknown format, missing column or a bad value.

    Attributes:
        path: the file.
        line: 1-based line in the file (the header is line 1), or None for file-level problems.
        column: the column name, or None when the problem is not about one column.
        reason: what is wrong, in words.
    """

    def __init__(
        self,
        path: str | Path,
        reason: str,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.reason = reason
        where = [self.path]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(", ".join(where) + ": " + reason)
