"""Recommending: interactions -> user vectors -> scored candidates -> rerank -> explanations,
and offline evaluation against baselines. `ranker` is the storage-free core (arrays in and
out); `from_catalog` moves data between it and the catalog.
"""

from .evaluate import EvalReport
from .from_catalog import (
    BatchReport,
    EventReport,
    ImportReport,
    TextEncoder,
    UnknownUserError,
    UserRecommendations,
    compact_interactions,
    evaluate_catalog,
    hold_user_state,
    import_interactions,
    recommend_all_users,
    recommend_for_user,
    record_event_batches,
    record_events,
    user_state_figures,
)
from .interactions import EVENTS, Interaction, InteractionsError, parse_interactions
from .ranker import Recommendation, RecommendOptions, options_from
from .rerank import RerankConfig
from .sentiment import SentimentAnalyzer, score_text
from .users import UserVectorConfig

__all__ = [
    "EVENTS", "BatchReport", "EvalReport", "EventReport", "ImportReport", "Interaction", "InteractionsError",
    "Recommendation", "RecommendOptions", "RerankConfig", "SentimentAnalyzer", "TextEncoder",
    "UnknownUserError", "UserRecommendations",
    "UserVectorConfig", "evaluate_catalog", "hold_user_state", "import_interactions", "options_from",
    "parse_interactions",
    "compact_interactions", "recommend_all_users", "recommend_for_user", "record_event_batches",
    "record_events", "score_text", "user_state_figures",
]
