"""Structured filters -> a LanceDB `where` clause. Requests never carry SQL: each field has
one fixed template, strings are quoted by the store's own quoting, numbers are floats."""

from __future__ import annotations

from mmrec.catalog import sql_list, sql_str

from .schemas import Filters


def where_clause(f: Filters) -> str | None:
    """The AND of every filter given, or None when there are none."""
    parts = []
    if f.kind is not None:
        parts.append(f"kind = {sql_str(f.kind)}")
    if f.min_duration is not None:
        parts.append(f"duration >= {float(f.min_duration)!r}")
    if f.max_duration is not None:
        parts.append(f"duration <= {float(f.max_duration)!r}")
    if f.tags:
        parts.append(f"array_has_any(tags, make_array({sql_list(f.tags)}))")
    if f.title_contains is not None:
        parts.append(f"strpos(lower(title), lower({sql_str(f.title_contains)})) > 0")
    return " AND ".join(parts) or None
