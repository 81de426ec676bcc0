"""CSV cells a spreadsheet will not run (the OWASP rule against formula injection).

A shop opens order exports and reports in Excel or Sheets, where a cell starting with
`=`, `+`, `-`, `@`, a tab or a carriage return is a formula: a buyer's name such as
`=HYPERLINK(...)` would run there. Such a text cell is written with a leading `'`, which
spreadsheets show as text and do not display. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(value: Any) -> Any:
    """`value`, with a text cell that a spreadsheet would read as a formula made text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rows_text(columns: Sequence[str], rows: Iterable[dict[str, Any]], *, header: bool) -> str:
    """CSV text of `rows` (missing and None cells empty, every cell neutral)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        cells = {name: "" if row.get(name) is None else row[name] for name in columns}
        writer.writerow({name: neutral(value) for name, value in cells.items()})
    return out.getvalue()
