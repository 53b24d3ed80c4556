"""The catalog: a LanceDB directory of items, segments, interactions and errors, the ingest
that fills it (walk, skip unchanged, embed, write) under one writer lock, the poster
thumbnails beside it (`_thumbs/`, thumbs.py), and `Catalog`.

Vectors cross into this stage as NumPy/Arrow: nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmrec.lazy import lazy_attributes

from .ingest import (
    FileFailure,
    IngestOptions,
    IngestSummary,
    collect_file,
    content_hash,
    finish_ingest,
    ingest_directory,
    kept_row,
    plan_files,
    skip_known,
)
from .lock import CatalogBusyError, write_lock
from .matrix import MATRIX_COLUMNS, ItemMatrix, load_items, matrix_of, with_rows
from .resident import Resident, ResidentItems, keep_resident, resident, resident_items
from .scan import iter_media_files
from .store import (
    TRANSCRIPT_FIELDS,
    CatalogNotFoundError,
    CatalogStore,
    ItemRecord,
    SegmentRecord,
    db_path,
    fs_path,
    items_schema,
    segments_schema,
    segments_table,
    sql_list,
    sql_str,
    vector_column,
    vector_matrix,
)
from .thumbs import (
    ThumbFailure,
    ThumbnailIdError,
    ThumbnailNotFoundError,
    ThumbReport,
    build_thumbnails,
    ensure_thumbnail,
    prune_thumbnails,
    remove_orphan_thumbnails,
    remove_thumbnails,
    thumb_path,
    thumbs_root,
)

if TYPE_CHECKING:
    from .handle import Catalog, default_db_path

# `Catalog` joins every stage (search, recommend), which in turn read through the store:
# it loads on first use so that importing the store never imports them.
__getattr__ = lazy_attributes(__name__, {"Catalog": ".handle", "default_db_path": ".handle"})


__all__ = [
    "TRANSCRIPT_FIELDS", "Catalog", "CatalogBusyError", "CatalogNotFoundError", "CatalogStore",
    "IngestOptions",
    "IngestSummary", "ItemRecord", "SegmentRecord", "content_hash", "db_path", "default_db_path", "fs_path",
    "ingest_directory", "items_schema", "iter_media_files", "segments_schema", "sql_list", "sql_str",
    "vector_column",
    "vector_matrix", "write_lock",
    "MATRIX_COLUMNS", "ItemMatrix", "load_items", "matrix_of", "with_rows",
    "Resident", "ResidentItems", "keep_resident", "resident", "resident_items",
    # the steps of ingest_directory that mmrec.distributed's engine runs too (one code path)
    "FileFailure", "collect_file", "finish_ingest", "kept_row", "plan_files", "segments_table", "skip_known",
    "ThumbFailure", "ThumbReport", "ThumbnailIdError", "ThumbnailNotFoundError", "build_thumbnails",
    "ensure_thumbnail", "prune_thumbnails", "remove_orphan_thumbnails", "remove_thumbnails",
    "thumb_path", "thumbs_root",
]
