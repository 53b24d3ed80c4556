"""Search: the items and moments nearest to a weighted fused query, exact or through an ANN
index whose breadth is calibrated on the catalog, plus a sketch for queries far from every item.
"""

from .in_memory import prepare_resident, resident_nearest
from .index import (
    DEFAULT_KIND,
    EXACT_SEARCH_BELOW,
    INDEX_KINDS,
    MIN_INDEX_ROWS,
    IndexReport,
    build_indexes,
    calibrate_indexes,
    far_sketch,
    index_entry,
    search_kind,
    vector_index_status,
)
from .nearest import (
    Hit,
    SearchResult,
    Segment,
    check_where,
    nearest_ids,
    nearest_items,
    nearest_rows,
    nearest_segments,
)
from .spread import (
    SPREAD_KEY,
    balanced,
    default_weights,
    measure_spreads,
    query_weights,
    random_modalities,
    record_spreads,
    stored_spreads,
)

__all__ = [
    "DEFAULT_KIND", "EXACT_SEARCH_BELOW", "INDEX_KINDS", "MIN_INDEX_ROWS", "Hit", "IndexReport",
    "SearchResult", "Segment", "build_indexes", "calibrate_indexes", "check_where", "far_sketch",
    "index_entry", "nearest_ids", "nearest_items", "nearest_rows", "nearest_segments", "search_kind",
    "vector_index_status", "SPREAD_KEY", "balanced", "default_weights", "measure_spreads", "query_weights",
    "random_modalities", "record_spreads", "stored_spreads", "prepare_resident",
    "resident_nearest",
]
