"""Request bodies of the HTTP API (pydantic): every field typed and bounded, so a bad
request is refused with the name of the field before any work is done."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmrec.recommend import EVENTS

Modality = Literal["visual", "audio", "text", "multilingual"]
ItemId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$",
                              description="an item id (the content hash from search results)")]
Weight = Annotated[float, Field(ge=0.0, le=100.0)]


def field_errors(errors: list[Any]) -> list[dict[str, str]]:
    """pydantic's errors as [{"field": "filters.kind", "message": ...}] (no "body" prefix)."""
    return [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
             "message": str(e.get("msg", ""))} for e in errors]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(_Strict):
    """Structured filters on item columns (never SQL from a request)."""

    kind: Literal["video", "audio"] | None = None
    min_duration: Annotated[float, Field(ge=0)] | None = None
    max_duration: Annotated[float, Field(ge=0)] | None = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=20)] = []
    title_contains: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class _Weighted(_Strict):
    weights: dict[Modality, Weight] | None = Field(
        None, description="per-modality weights; unnamed modalities weigh 0 (default: 1 for each "
                          "real-weight modality, 0 for random ones; balanced by their spread)")

    @field_validator("weights")
    @classmethod
    def _some_weight(cls, w: dict[str, float] | None) -> dict[str, float] | None:
        if w is not None and not any(v > 0 for v in w.values()):
            raise ValueError("at least one weight must be positive")
        return w


class SearchOptions(_Weighted):
    k: Annotated[int, Field(ge=1)] = 10
    modality: Literal["all", "visual", "audio", "text", "multilingual"] = "all"
    filters: Filters = Filters()
    moments: bool = Field(False, description="rank moments (segments) instead of items")


class SearchRequest(SearchOptions):
    """Search by text or by a catalogued item (exactly one)."""

    text: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    item: ItemId | None = None


class Rerank(_Strict):
    diversity: Annotated[float, Field(ge=0, le=1)] = 0.2
    popularity_weight: Annotated[float, Field(ge=0, le=100)] = 0.05
    freshness_weight: Annotated[float, Field(ge=0, le=100)] = 0.05
    half_life_days: Annotated[float, Field(gt=0, le=36500)] = 30.0
    exclude_seen: bool = True


class RecommendRequest(Rerank, _Weighted):
    """For a known user (their stored history), for interests text (cold start), or both."""

    user: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    interests: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    k: Annotated[int, Field(ge=1)] = 10
    explain: bool = True


class Event(BaseModel):
    """One interaction, in the interactions format; validated again against the catalog."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    user_id: Annotated[str, Field(min_length=1, max_length=200, alias="user")]
    item: Annotated[str, Field(min_length=1, max_length=4096, alias="item_id")]
    event: Literal[EVENTS]  # type: ignore[valid-type]
    value: Annotated[float, Field(ge=0, le=1)] | None = None
    timestamp: float | str | None = Field(None, description="epoch seconds or ISO 8601; default: now")
    text: Annotated[str, Field(max_length=10_000)] | None = None

    @field_validator("timestamp")
    @classmethod
    def _finite(cls, t: float | str | None) -> float | str | None:
        if isinstance(t, float) and not math.isfinite(t):
            raise ValueError("timestamp must be a finite number")
        return t


class EventBatch(_Strict):
    events: Annotated[list[Any], Field(min_length=1, max_length=10_000)]
    partial: bool = Field(False, description="keep the valid events when some are rejected")
