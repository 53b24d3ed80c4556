"""What a run of commits did to a Lance table, read from their transactions: the rows they
appended, when appending is all they did to its rows. A long-lived reader that holds a
table's rows in memory (the service's user state) takes in another process's event commit
this way, reading one small file instead of the whole table again."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

log = logging.getLogger(__name__)

# operations that leave every row as it was: a compaction rewrites files, an index build
# or a config change touches none
UNCHANGED = frozenset({"Rewrite", "CreateIndex", "UpdateConfig", "Project"})


def _kind(op: Any) -> str:
    """'append' (new rows only), 'same' (no row changed), 'opaque' (an operation this
    version of pylance does not describe, such as a compaction's fragment-id reservation)
    or 'other'."""
    name = type(op).__name__
    if name == "BaseOperation":
        return "opaque"
    if name == "Append":
        return "append"
    if name == "Update" and not op.removed_fragment_ids and not op.updated_fragments:
        return "append"  # an upsert that matched no stored key: it only inserted
    return "same" if name in UNCHANGED else "other"


def _operation(ds: Any, v: int) -> str:
    """_kind of the commit that made version v. pylance 14 cannot build the description of
    a compaction that remapped indexes (its RewrittenIndex takes arguments it is not given):
    that error names a rewrite, taken as one when the row count stayed the same."""
    try:
        return _kind(ds.read_transaction(v).operation)
    except TypeError as e:
        if "RewrittenIndex" not in str(e):
            raise
        kept = ds.checkout_version(v).count_rows() == ds.checkout_version(v - 1).count_rows()
        return "same" if kept else "other"


def _files(ds: Any) -> list[str]:
    """Each fragment's id, data files and deletion file: equal lists hold the same rows."""
    return [repr(f.metadata) for f in ds.get_fragments()]


def appended_rows(table: Any, since: int, until: int, columns: list[str] | None = None) -> pa.Table | None:
    """The rows that versions since+1 .. until of a LanceDB table appended, or None when
    one of them changed or removed rows (an update, a delete, an overwrite), or a version
    can no longer be read: then the caller reads the table again."""
    if until < since:
        return None
    try:
        ds = table.to_lance()
        parts: list[pa.Table] = []
        before: set[int] | None = None
        for v in range(since + 1, until + 1):
            kind = _operation(ds, v)
            if kind == "opaque":  # the same when every fragment is as it was
                kept = _files(ds.checkout_version(v)) == _files(ds.checkout_version(v - 1))
                kind = "same" if kept else "other"
            if kind == "other":
                return None
            if kind == "same":
                before = None
                continue
            at = ds.checkout_version(v)
            if before is None:
                before = set(ds.checkout_version(v - 1).fragment_ids())
            now = at.fragment_ids()
            new = [at.get_fragment(i) for i in now if i not in before]
            if new:
                parts.append(at.scanner(columns=columns, fragments=new).to_table())
            before = set(now)
    except Exception as e:  # noqa: BLE001 - an old version cleaned up, a format it cannot read
        log.info("versions %d..%d of %s: no row diff (%s); it is read again", since + 1, until,
                 getattr(table, "name", "table"), e)
        return None
    if not parts:
        empty = ds.schema.empty_table()
        return empty if columns is None else empty.select(columns)
    return pa.concat_tables(parts)
