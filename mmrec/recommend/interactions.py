"""Interaction logs: parse CSV or JSONL rows into validated `Interaction` records.

A row is all or nothing: a row naming an unknown item or event, or holding a bad
value or timestamp, is rejected with its 1-based line number and every reason, and
no part of it is kept. A file that cannot be read as CSV or JSONL raises
`InteractionsError`. Storage-free: the caller resolves items (path or id -> id).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mmrec.errors import MmrecError

EVENTS = ("view", "like", "dislike", "skip", "comment", "share")
COLUMNS = ("user_id", "item", "event", "value", "timestamp", "text")
REQUIRED = ("user_id", "item", "event", "timestamp")
# Other spellings seen in exported logs; each maps to one canonical column.
ALIASES = {"user": "user_id", "userid": "user_id", "item_id": "item", "path": "item",
           "ts": "timestamp", "time": "timestamp"}
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
# Events that count as "the user wanted this" for relevance, popularity and "because".
POSITIVE_EVENTS = frozenset({"like", "share", "comment"})
POSITIVE_VIEW_FRACTION = 0.5


class InteractionsError(MmrecError):
    """An interactions file cannot be read as CSV or JSONL; the message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Interaction:
    """One validated event: `user_id` did `event` on catalog item `item_id` at `timestamp`.

    `value` is the watched/listened fraction in [0, 1] (None when not given), `timestamp`
    is epoch seconds (UTC), `line` the row's 1-based line in the source file (0 if none),
    `sentiment` the comment's sentiment in [-1, 1] (None without a scored comment; see
    mmrec.recommend.sentiment: it is scored when the row is stored).
    """

    user_id: str
    item_id: str
    event: str
    value: float | None
    timestamp: float
    text: str | None = None
    line: int = 0
    sentiment: float | None = None


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not imported: its 1-based line number and why (all reasons, '; ')."""

    line: int
    reason: str


@dataclass
class ParsedInteractions:
    """Result of `parse_interactions`: accepted rows in file order, rejections, the format."""

    rows: list[Interaction]
    rejected: list[RejectedRow]
    format: str


def is_positive(event: str, value: float | None) -> bool:
    """True for like, share, comment, and a view with no fraction or a fraction >= 0.5."""
    if event == "view":
        return value is None or value >= POSITIVE_VIEW_FRACTION
    return event in POSITIVE_EVENTS


def positive_rows(events: pa.Array | pa.ChunkedArray, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`is_positive` over Arrow columns (a null value is no fraction), for whole-table counts."""
    view = pc.equal(events, "view")
    enough = pc.or_kleene(pc.is_null(values), pc.greater_equal(values, POSITIVE_VIEW_FRACTION))
    other = pc.is_in(events, value_set=pa.array(sorted(POSITIVE_EVENTS)))
    return pc.fill_null(pc.if_else(view, enough, other), False)


def parse_timestamp(raw: Any) -> float:
    """Epoch seconds from a number, a numeric string or ISO-8601 (naive = UTC); ValueError if bad."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"timestamp {raw!r} is not a time")
    if isinstance(raw, int | float):
        t = float(raw)
    else:
        text = str(raw).strip()
        if not text:
            raise ValueError("timestamp is empty")
        try:
            t = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError as e:
                raise ValueError(
                    f"timestamp {text!r} is neither ISO-8601 (2024-05-01T12:00:00Z) nor epoch seconds"
                ) from e
            t = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(t):
        raise ValueError(f"timestamp {raw!r} is not finite")
    return t


def parse_value(raw: Any) -> float | None:
    """A watch/listen fraction in [0, 1], or None when empty; ValueError otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"value {raw!r} is not a number")
    try:
        v = float(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"value {raw!r} is not a number") from e
    if not (0.0 <= v <= 1.0):  # also rejects NaN
        raise ValueError(f"value {raw!r} must be a fraction in [0, 1]")
    return v


def _text(raw: Any) -> str:
    return "" if raw is None else str(raw).strip()


def _canonical(name: str) -> str:
    key = name.strip().lower().lstrip("\ufeff")
    return ALIASES.get(key, key)


def _validate(rec: dict[str, Any], line: int,
              resolve_item: Callable[[str], str | None]) -> Interaction | RejectedRow:
    """Check one record; every problem is reported, nothing of a bad row is kept."""
    problems: list[str] = []
    user = _text(rec.get("user_id"))
    if not user:
        problems.append("user_id is empty")
    item_key, item_id = _text(rec.get("item")), None
    if not item_key:
        problems.append("item is empty")
    else:
        item_id = resolve_item(item_key)
        if item_id is None:
            problems.append(f"unknown item {item_key!r}: not a catalogued path or item id")
    event = _text(rec.get("event")).lower()
    if event not in EVENTS:
        problems.append(f"unknown event {event!r} (valid: {', '.join(EVENTS)})")
    value = timestamp = None
    try:
        value = parse_value(rec.get("value"))
    except ValueError as e:
        problems.append(str(e))
    try:
        timestamp = parse_timestamp(rec.get("timestamp"))
    except ValueError as e:
        problems.append(str(e))
    if problems or item_id is None or timestamp is None:
        return RejectedRow(line, "; ".join(problems))
    return Interaction(user, item_id, event, value, timestamp, _text(rec.get("text")) or None, line)


def _csv_records(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(start line, record or rejection reason) for each data row; the header is line 1."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if not header:
            raise InteractionsError(path, "empty file: expected a CSV header row or JSONL objects")
        names = [_canonical(h) for h in header]
        dupes = sorted({n for n in names if n and names.count(n) > 1})
        if dupes:
            raise InteractionsError(path, f"header names {', '.join(dupes)} more than once "
                                          f"(after aliases {ALIASES})")
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise InteractionsError(
                path, f"not an interactions CSV or JSONL: header {header!r} lacks "
                      f"{', '.join(missing)} (columns: {', '.join(COLUMNS)})")
        last = reader.line_num
        for row in reader:
            start, last = last + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(names):
                yield start, f"has {len(row)} fields but the header has {len(names)}"
                continue
            yield start, dict(zip(names, row, strict=False))
    except csv.Error as e:
        raise InteractionsError(path, f"line {reader.line_num}: not valid CSV ({e})") from e


def _jsonl_records(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, record or rejection reason) for each non-blank line of a JSON-lines file."""
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield n, f"not valid JSON ({e.msg})"
            continue
        if not isinstance(obj, dict):
            yield n, f"expected a JSON object, got {type(obj).__name__}"
            continue
        yield n, {_canonical(str(k)): v for k, v in obj.items()}


READERS: dict[str, Callable[[Path, Iterable[str]], Iterator[tuple[int, dict[str, Any] | str]]]] = {
    "csv": _csv_records,
    "jsonl": _jsonl_records,
}


def detect_format(path: Path) -> str:
    """'csv' or 'jsonl' from the suffix, else sniffed: a first non-blank line '{...' is JSONL."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt:
        return fmt
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for text in fh:
            if text.strip():
                return "jsonl" if text.lstrip().startswith("{") else "csv"
    return "csv"


def parse_interactions(path: str | Path, resolve_item: Callable[[str], str | None],
                       format: str | None = None) -> ParsedInteractions:
    """Read and validate an interactions file (CSV with a header row, or JSONL).

    Args:
        path: the file. `.csv` is CSV, `.jsonl`/`.ndjson`/`.json` is JSON lines; any
            other suffix is sniffed from the first non-blank line.
        resolve_item: maps the `item` column (a catalogued path or an item id) to an
            item id, or None when the catalog has no such item (the row is rejected).
        format: force "csv" or "jsonl" instead of detecting it.

    Returns:
        ParsedInteractions with accepted rows in file order and rejected rows with their
        1-based line numbers and reasons.

    Raises:
        InteractionsError: the file is missing, not UTF-8 text, not CSV or JSONL, or a
            CSV without the user_id, item, event and timestamp columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InteractionsError(path, "no such file")
    try:
        fmt = format or detect_format(path)
        if fmt not in READERS:
            raise InteractionsError(path, f"unknown format {fmt!r} (use {', '.join(READERS)})")
        rows: list[Interaction] = []
        rejected: list[RejectedRow] = []
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for line, rec in READERS[fmt](path, fh):
                out = RejectedRow(line, rec) if isinstance(rec, str) else _validate(rec, line, resolve_item)
                (rejected if isinstance(out, RejectedRow) else rows).append(out)  # type: ignore[arg-type]
    except UnicodeDecodeError as e:
        raise InteractionsError(path, f"not UTF-8 text ({e.reason} at byte {e.start}): "
                                      "expected CSV or JSONL") from e
    except OSError as e:
        raise InteractionsError(path, f"cannot read ({e.strerror or e})") from e
    return ParsedInteractions(rows, rejected, fmt)


def validate_records(records: Iterable[Mapping[str, Any]],
                     resolve_item: Callable[[str], str | None]) -> ParsedInteractions:
    """Validate interaction records given as mappings (an HTTP batch, say) with the same
    rules as a file's rows; a rejection's `line` is the record's 0-based index."""
    rows: list[Interaction] = []
    rejected: list[RejectedRow] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            rejected.append(RejectedRow(i, f"expected an object, got {type(rec).__name__}"))
            continue
        out = _validate({_canonical(str(k)): v for k, v in rec.items()}, i, resolve_item)
        (rejected if isinstance(out, RejectedRow) else rows).append(out)  # type: ignore[arg-type]
    return ParsedInteractions(rows, rejected, "records")


def by_user(rows: Iterable[Interaction]) -> dict[str, list[Interaction]]:
    """Rows grouped per user, each list in time order (file order breaks ties)."""
    out: dict[str, list[Interaction]] = {}
    for r in sorted(rows, key=lambda r: (r.timestamp, r.line)):
        out.setdefault(r.user_id, []).append(r)
    return out
