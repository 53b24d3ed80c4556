"""Recommendations from a catalog: stored items and interactions -> user vectors ->
kernels top-k -> rerank -> explanations; interaction import; offline evaluation.

The maths lives in users / rerank / ranker / evaluate (arrays in, arrays out);
this module only moves data between them and the LanceDB store.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmrec.catalog import MATRIX_COLUMNS, CatalogStore, ItemMatrix, load_items, resident_items, with_rows
from mmrec.errors import ConfigError
from mmrec.fusion import TEXT_MODALITIES
from mmrec.recommend.evaluate import EvalReport, evaluate, parse_holdout
from mmrec.recommend.interactions import (
    Interaction,
    RejectedRow,
    is_positive,
    parse_interactions,
    validate_records,
)
from mmrec.recommend.ranker import (
    Recommendation,
    RecommendOptions,
    UserHistory,
    histories_from_interactions,
    modality_scores,
    popularity_counts,
    rank,
    recommend,
    user_matrix,
    vector_recommender,
)
from mmrec.recommend.state import UserState, popularity_by_item, user_state
from mmrec.recommend.users import UserVectorConfig, cold_start_vector, embed_comments, split_interests
from mmrec.search import EXACT_SEARCH_BELOW, nearest_rows, query_weights, resident_nearest, search_kind

log = logging.getLogger(__name__)

TextEncoder = Callable[[list[str]], Mapping[str, np.ndarray]]  # texts -> {modality: [n, d]}


def _state(store: CatalogStore) -> UserState:
    return user_state(store, lambda user: stored_interactions(store, user=user),
                      lambda: _keyed(store.interactions()),
                      lambda since, until: _keyed(store.interactions_appended(since, until)))


def _keyed(rows: pa.Table | list[dict[str, Any]] | None) -> tuple[list[Interaction], list[str]] | None:
    """Stored rows as interactions and their keys, aligned (None stays None)."""
    from mmrec.recommend.sentiment import with_sentiment

    if rows is None:
        return None
    rows = rows.to_pylist() if isinstance(rows, pa.Table) else rows
    return (with_sentiment([Interaction(r["user_id"], r["item_id"], r["event"], r["value"], r["timestamp"],
                                        r["text"], sentiment=r.get("sentiment")) for r in rows]),
            [r["key"] for r in rows])


def hold_user_state(store: CatalogStore, shared: bool = False) -> bool:
    """Keep every user's interactions in memory for this store handle (a long-lived reader
    such as the HTTP service), when the table is small enough (see UserState.fill).
    shared: sibling processes of the same service write events too, so each request checks
    the table's version instead of trusting a watcher's (up to 0.1 s old)."""
    state = _state(store)
    state.shared = shared
    return state.fill()


def user_state_figures(store: CatalogStore) -> dict[str, Any]:
    """What the store's user state holds now: every history (complete), and how many other
    writers' commits it took in by reading only what they appended."""
    state = _state(store)
    return {"complete": state.complete, "followed_commits": state.followed}


def _two_stage(store: CatalogStore) -> bool:
    """Whether a recommendation ranks the nearest items only (a catalog large enough for
    an index; for a long-lived reader's copy in memory, large enough for candidates to pay)."""
    copy = resident_items(store)
    if copy is not None:
        return len(copy.items.ids) >= EXACT_SEARCH_BELOW
    return search_kind(store, store.items, None) is not None


def _items_of(store: CatalogStore, ids: Iterable[str]) -> ItemMatrix:
    """The item matrix of these ids: from a long-lived reader's copy when it has one."""
    copy = resident_items(store)
    if copy is None:
        return load_items(store, ids)
    positions = copy.items.positions(ids)
    return copy.items.subset(positions) if positions else load_items(store, [])


def _with_nearest(store: CatalogStore, items: ItemMatrix, query: np.ndarray, n: int) -> ItemMatrix:
    """items, then the n nearest items to query that it does not hold (sliced from a
    long-lived reader's copy when it has one, else read in the search)."""
    near = resident_nearest(store, query, n)
    if near is None:
        return with_rows(items, nearest_rows(store, query, n, MATRIX_COLUMNS))
    copy, top, _ = near
    held = copy.items.positions(items.ids)
    if len(held) < len(items.ids):  # a history item the copy lacks (a commit between): by rows
        return with_rows(items, copy.items.rows(top.tolist(), MATRIX_COLUMNS))
    mine = set(held)
    return copy.items.subset(held + [p for p in top.tolist() if p not in mine])


def item_resolver(store: CatalogStore, base: Path | None = None) -> Callable[[str], str | None]:
    """Map an interaction's `item` (item id, catalogued path, or path relative to `base`
    or the working directory) to an item id; None when it is not in the catalog."""
    by_path = {p: r["id"] for p, r in store.file_index().items()}
    ids = set(by_path.values())

    def resolve(key: str) -> str | None:
        if key in ids:
            return key
        for cand in (Path(key), (base / key) if base else None):
            if cand is not None:
                hit = by_path.get(str(cand.expanduser().resolve()))
                if hit:
                    return hit
        return None

    return resolve


def keyed_resolver(store: CatalogStore, keys: Iterable[str]) -> Callable[[str], str | None]:
    """item_resolver for a known set of keys (live events): only those ids and paths are
    looked up, so a handful of events does not read every item's path."""
    keys = set(keys)
    copy = resident_items(store)  # a long-lived reader's copy: ids need no read
    if copy is not None:
        found = {k: k for k in keys if k in copy.items.index}
    else:
        found = {r["id"]: r["id"] for r in store.items_by_id(keys, ["id"]).to_pylist()}
    paths: dict[str, str] = {}
    for key in keys - set(found):
        try:
            paths[str(Path(key).expanduser().resolve())] = key
        except (OSError, RuntimeError, ValueError):  # not a path at all: unknown
            continue
    if paths:
        for r in store.items_by_path(paths, ["id", "path"]).to_pylist():
            found[paths[r["path"]]] = r["id"]
    return found.get


# -- interactions ------------------------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    """What `import_interactions` did: rows read, new rows stored, and rejected lines."""

    path: str
    rows: int
    imported: int
    already_stored: int
    rejected: list[RejectedRow]
    written: bool


def _key(r: Interaction) -> str:
    raw = "\x1f".join(map(str, (r.user_id, r.item_id, r.event, r.timestamp, r.value, r.text or "")))
    return hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def stored_rows(rows: Sequence[Interaction], source: str) -> list[dict[str, Any]]:
    """Validated interactions as rows of the interactions table (the key dedupes re-imports),
    each comment's sentiment scored here (mmrec.recommend.sentiment) and stored with it."""
    from mmrec.recommend.sentiment import with_sentiment  # the scorers load on the first comment

    return [{"key": _key(r), "user_id": r.user_id, "item_id": r.item_id, "event": r.event,
             "value": r.value, "timestamp": r.timestamp, "text": r.text, "source": source,
             "sentiment": r.sentiment}
            for r in with_sentiment(rows)]


def import_interactions(store: CatalogStore, path: str | Path, skip_bad: bool = False) -> ImportReport:
    """Validate a CSV/JSONL interactions file and store its rows in one commit.

    With rejected rows nothing is written unless skip_bad (then only the good rows are).
    """
    parsed = parse_interactions(path, item_resolver(store, Path(path).resolve().parent))
    if parsed.rejected and not skip_bad:
        return ImportReport(str(path), len(parsed.rows), 0, 0, parsed.rejected, written=False)
    new, _ = store.add_interactions(stored_rows(parsed.rows, str(path)))
    store.set_meta({POPULARITY_TOP: {"rows": store.interaction_rows(),
                                     "count": count_popularity_top(store)}})
    n = len(parsed.rows)
    return ImportReport(str(path), n, new, n - new, parsed.rejected, written=True)


class UnknownUserError(ConfigError, LookupError):
    """A recommendation for a user with no stored interactions (and no interests)."""


@dataclass(frozen=True)
class EventReport:
    """What `record_events` did: events received, new rows stored, rejections by index."""

    received: int
    stored: int
    rejected: list[RejectedRow]
    written: bool


def record_events(store: CatalogStore, records: Sequence[Mapping[str, Any]], partial: bool = False,
                  source: str = "events", dry_run: bool = False) -> EventReport:
    """Validate live events (interaction records) and store them in one commit.

    All or nothing by default: with any rejected event nothing is written, unless partial
    (then the valid ones are); dry_run only validates. The next recommendation reads them:
    user vectors are built from the stored interactions on every request.
    """
    if dry_run:
        keys = [str(r["item"]) for r in records if isinstance(r, Mapping) and r.get("item") is not None]
        return EventReport(len(records), 0, validate_records(records, keyed_resolver(store, keys)).rejected,
                           written=False)
    return record_event_batches(store, [(records, partial)], source)[0]


def compact_interactions(store: CatalogStore, indexes: bool = True,
                         locked: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
    """Compact the interactions table's files (and its indexes); `locked()` takes the
    interactions lock for the commits only (CatalogStore.compact_interactions). The
    user-state cache keeps what it holds, as the rows are the same."""
    state = _state(store)

    @contextmanager
    def committing() -> Iterator[None]:
        with locked(), state.compacting():
            yield

    store.compact_interactions(indexes, committing)


def record_event_batches(store: CatalogStore, batches: Sequence[tuple[Sequence[Mapping[str, Any]], bool]],
                         source: str = "events") -> list[EventReport]:
    """record_events for several callers' batches (records, partial) at once: each is
    validated on its own, and every accepted one is stored in the same commit (a service's
    group commit: one commit for all the clients that posted while the last one ran)."""
    keys = [str(r["item"]) for recs, _ in batches for r in recs
            if isinstance(r, Mapping) and r.get("item") is not None]
    resolve = keyed_resolver(store, keys)
    parsed = [validate_records(recs, resolve) for recs, _ in batches]
    accepted = [p.rows if p.rows and (partial or not p.rejected) else []
                for p, (_, partial) in zip(parsed, batches, strict=True)]
    rows = [stored_rows(a, source) if a else [] for a in accepted]
    flat = [r for batch in rows for r in batch]
    if not flat:
        return [EventReport(len(recs), 0, p.rejected, written=False)
                for p, (recs, _) in zip(parsed, batches, strict=True)]
    state = _state(store)
    before = None if state.complete else {"rows": store.interaction_rows(), "count": popularity_top(store)}
    with state.writing() as version:
        keys = [r["key"] for r in flat]
        maybe = state.maybe_stored(version, keys)
        if maybe is not None:  # complete state: only keys it may hold are looked up, new rows appended
            stored_before = store.interaction_keys([k for k, m in zip(keys, maybe, strict=True) if m])
            fresh = list({r["key"]: r for r in flat if r["key"] not in stored_before}.values())
            stored, after = store.add_interactions(fresh, new=True) if fresh else (0, version)
        else:
            fresh = flat
            stored_before = store.interaction_keys(keys) if len(batches) > 1 else set()
            stored, after = store.add_interactions(flat)
        if fresh:
            state.after_write(version, [Interaction(r["user_id"], r["item_id"], r["event"], r["value"],
                                                    r["timestamp"], r["text"], sentiment=r["sentiment"])
                                        for r in fresh], stored, after, [r["key"] for r in fresh])
    if before is not None:  # the next list needs no recount (complete state keeps its own)
        _raise_popularity_top(store, before, [r for a in accepted for r in a], stored)
    reports = []
    for p, (recs, _), batch in zip(parsed, batches, rows, strict=True):
        new = {r["key"] for r in batch} - stored_before
        stored_before |= new
        reports.append(EventReport(len(recs), stored if len(batches) == 1 else len(new), p.rejected,
                                   written=bool(batch)))
    return reports


def stored_interactions(store: CatalogStore, user: str | None = None,
                        items: Iterable[str] | None = None) -> list[Interaction]:
    """Stored interactions: all, or one user's and/or those on these items (see store).
    Comments stored before the sentiment column existed are scored as they are read."""
    return _keyed(store.interactions(user, items))[0]  # type: ignore[index]


POPULARITY_TOP = "popularity_top"  # meta key: {"rows": interactions counted, "count": n}


def popularity_top(store: CatalogStore) -> float:
    """The largest popularity count of any item (distinct users with a positive event):
    kept in the catalog's meta by each import with the number of rows it counted, or in
    this store's `derived` figures by the events it recorded, and counted afresh when rows
    were added since (or were never counted)."""
    rows = store.interaction_rows()
    for kept in (store.meta().get(POPULARITY_TOP), store.derived.get(POPULARITY_TOP)):
        if isinstance(kept, dict) and kept.get("rows") == rows:
            return float(kept["count"])
    count = count_popularity_top(store)
    store.derived[POPULARITY_TOP] = {"rows": rows, "count": count}
    return count


def _raise_popularity_top(store: CatalogStore, before: dict[str, float], added: Sequence[Interaction],
                          stored: int) -> None:
    """After `added` rows: the new top count without a recount. Counts only grow as rows are
    added, so it is the old top or the count of an item an added positive event touched.
    When another process wrote meanwhile (the row count says so) the next read recounts."""
    rows = store.interaction_rows()
    if rows != before["rows"] + stored:
        store.derived.pop(POPULARITY_TOP, None)
        return
    touched = {r.item_id for r in added if is_positive(r.event, r.value)}
    top = before["count"]
    if touched:
        top = max(top, _top_count(store.interaction_columns(["user_id", "item_id", "event", "value"],
                                                            items=touched)))
    store.derived[POPULARITY_TOP] = {"rows": rows, "count": top}


def count_popularity_top(store: CatalogStore) -> float:
    """popularity_top counted in Arrow over three columns (no object per interaction)."""
    return _top_count(store.interaction_columns(["user_id", "item_id", "event", "value"]))


def _top_count(t: pa.Table) -> float:
    """The largest number of distinct users with a positive event on one item of t."""
    return float(max(popularity_by_item(t).values(), default=0))


# -- recommending --------------------------------------------------------------------
@dataclass
class UserRecommendations:
    """One user's ranked recommendations, ready to print or serialise."""

    user: str
    recommendations: list[Recommendation]
    items: ItemMatrix
    history: int  # interactions used
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for r in self.recommendations:
            rec = r.to_json(self.items.ids, self.items.paths)
            rec["title"] = self.items.titles[r.item_index]
            rec["kind"] = self.items.kinds[r.item_index]
            if rec.get("because"):
                rec["because"]["title"] = self.items.titles[r.because_index]
            out.append(rec)
        return out


def _comment_vectors(histories: Mapping[str, UserHistory], encode: TextEncoder | None,
                     layout: Any) -> dict[str, dict[str, np.ndarray]]:
    """Comment texts of each history embedded into the text blocks (the text extractors)."""
    wordy = [m for m in TEXT_MODALITIES if m in layout.modalities]
    if encode is None or not wordy:
        return {}

    def text_only(texts: list[str]) -> Mapping[str, np.ndarray]:
        vectors = encode(texts)
        return {m: vectors[m] for m in wordy if m in vectors}

    return {u: embed_comments(h.texts, text_only, layout) for u, h in histories.items()
            if any(t and t.strip() for t in h.texts)}


def interests_vector(interests: str, encode: TextEncoder, layout: Any) -> np.ndarray:
    """A cold-start user vector from free text ("jazz, travel vlogs") with every text tower."""
    parts = split_interests(interests)
    if not parts:
        raise ConfigError("--interests is empty: give a few comma-separated topics, e.g. 'jazz, hiking'")
    return cold_start_vector(dict(encode(parts)), layout)


def recommend_for_user(store: CatalogStore, options: RecommendOptions, *, user: str | None = None,
                       interests: str | None = None, encode: TextEncoder | None = None,
                       user_config: UserVectorConfig | None = None, now: float | None = None,
                       weights: str | dict[str, float] | None = None) -> UserRecommendations:
    """Recommendations for one stored user (their history), for interests text (cold
    start), or both (the interests blend in as a prior).

    A catalog searched through its ANN index (see `mmrec.search.index.search_kind`) is not read
    whole: the user's history items give the user vector, the index gives the
    `k × candidate_factor` nearest items (plus as many as the user has seen), and those
    are ranked, reranked and explained exactly as the whole catalog would be.
    """
    if user is None and interests is None:
        raise ConfigError("give --user ID or --interests TEXT")
    layout = store.layout
    now = time.time() if now is None else now
    two_stage = _two_stage(store)
    if two_stage:  # this user's rows now (kept between requests); candidates' popularity below
        interactions = _state(store).history(user) if user is not None else []
    else:
        interactions = stored_interactions(store)
    mine = {r.item_id for r in interactions if r.user_id == user}
    copy = resident_items(store)
    items = _items_of(store, mine) if two_stage else copy.items if copy is not None else load_items(store)
    histories = histories_from_interactions(interactions, items.index)
    prior = interests_vector(interests, _need(encode), layout) if interests is not None else None
    if user is None:
        users, name = prior[None, :].astype(np.float32), "(interests)"
    else:
        if user not in histories:
            if prior is None:
                raise UnknownUserError(f"no interactions for user {user!r} in {store.path}: import them "
                                       "with `mmrec interactions import FILE`, or use --interests for a "
                                       "new user")
            users = prior[None, :].astype(np.float32)
        else:
            own = {user: histories[user]}
            um = user_matrix(own, items.vectors, layout, now, user_config,
                             _comment_vectors(own, encode, layout), None if prior is None else {user: prior})
            if not um.user_ids:
                raise ConfigError(f"user {user!r}: {um.skipped[user]}")
            users = um.vectors
        name = user
    notes = random_weight_notes(store, weights)
    users = layout.scale(users, query_weights(store, weights))  # random modalities weigh 0
    top = None
    popularity = None
    if two_stage:  # the index's nearest items, then every stage on those candidates only
        fetch = max(options.k, options.k * options.candidate_factor) + len(mine)
        items = _with_nearest(store, items, users[0], fetch)
        state = _state(store)
        top = state.top()
        top = popularity_top(store) if top is None else top
        known = state.popularity(items.ids)
        popularity = np.array([known[i] for i in items.ids], dtype=np.int64)
        histories = histories_from_interactions(interactions, items.index)
    hist = histories.get(user) if user is not None else None
    if popularity is None:
        popularity = popularity_counts(histories, len(items.ids))
    recs = recommend(users, items.vectors, layout, options, histories=[hist],
                     popularity=popularity, popularity_top=top,
                     ingest_times=items.ingested_at, now=now, titles=items.titles, kinds=items.kinds)
    used = len(hist.events) if hist is not None else 0
    return UserRecommendations(name, recs[0], items, used, notes)


def random_weight_notes(store: CatalogStore, weights: str | dict[str, float] | None = None) -> list[str]:
    """One note per extractor the catalog was built with random weights: it weighs 0 unless
    the weights given name it."""
    notes: list[str] = []
    w = query_weights(store, weights, notes=notes)
    return notes + [f"{e['preset']} ran on random weights: its {e['modality']} scores are meaningless"
                    for e in store.meta().get("extractors", []) if e.get("random_weights")
                    and w.get(e["modality"])]


def _need(encode: TextEncoder | None) -> TextEncoder:
    if encode is None:
        raise ConfigError("interests need the catalog's text extractors; none were given")
    return encode


@dataclass(frozen=True)
class BatchReport:
    users: int
    skipped: dict[str, str]
    rows: int
    seconds: float
    out: str


def recommend_all_users(store: CatalogStore, out: str | Path, options: RecommendOptions, *,
                        encode: TextEncoder | None = None, user_config: UserVectorConfig | None = None,
                        now: float | None = None,
                        weights: str | dict[str, float] | None = None,
                        write: RowsWriter | None = None) -> BatchReport:
    """Top-k for every user with interactions, scored in batches by the kernels, written
    to a Parquet file: user_id, rank, item_id, path, score and one column per modality.
    `write` replaces that last step (mmrec.distributed ranks blocks of users on Ray)."""
    t0 = time.perf_counter()
    items = load_items(store)
    layout = store.layout
    now = time.time() if now is None else now
    histories = histories_from_interactions(stored_interactions(store), items.index)
    if not histories:
        raise ConfigError(f"no interactions in {store.path}: import them with `mmrec interactions import`")
    um = user_matrix(histories, items.vectors, layout, now, user_config,
                     _comment_vectors(histories, encode, layout))
    users = layout.scale(um.vectors, query_weights(store, weights))  # random modalities weigh 0
    opts = replace(options, explain=False)
    hist = [histories[u] for u in um.user_ids]
    block = partial(ranked_rows, items, layout, opts, popularity_counts(histories, len(items.ids)), now)
    rows = (write or _write_parquet)(out, block, um.user_ids, users, hist)
    return BatchReport(len(um.user_ids), um.skipped, rows, time.perf_counter() - t0, str(out))


# (out, block, user ids, user vectors, histories) -> rows written; block(ids, vectors,
# histories) gives the rows of any slice of the users (ranked_rows with the items bound).
RowsWriter = Callable[[str | Path, Callable[..., pa.Table], list[str], np.ndarray, list[Any]], int]


def ranked_rows(items: ItemMatrix, layout: Any, options: RecommendOptions, popularity: np.ndarray,
                now: float, user_ids: Sequence[str], users: np.ndarray,
                histories: Sequence[UserHistory]) -> pa.Table:
    """The --all-users rows of these users (kernels top-k, reranked): user_id, rank, item_id,
    path, score and score_<modality>; each user's rows do not depend on the others'."""
    idx, scores = rank(users, items.vectors, options, histories=histories, popularity=popularity,
                       ingest_times=items.ingested_at, now=now)
    parts = modality_scores(users, items.vectors, idx, layout)
    valid = idx >= 0
    user_col = np.repeat(np.array(user_ids, dtype=object), idx.shape[1]).reshape(idx.shape)
    rank_col = np.broadcast_to(np.arange(1, idx.shape[1] + 1), idx.shape)
    ids, paths = np.array(items.ids, dtype=object), np.array(items.paths, dtype=object)
    flat = idx[valid]
    return pa.table({
        "user_id": user_col[valid].tolist(), "rank": rank_col[valid].astype(np.int32),
        "item_id": ids[flat].tolist(), "path": paths[flat].tolist(),
        "score": scores[valid].astype(np.float32),
        **{f"score_{m}": np.asarray(v)[valid].astype(np.float32) for m, v in parts.items()},
    })


def _write_parquet(out: str | Path, block: Callable[..., pa.Table], user_ids: list[str],
                   users: np.ndarray, histories: list[Any]) -> int:
    """The local engine's last step: every user's rows at once, in one Parquet file."""
    import pyarrow.parquet as pq

    table = block(user_ids, users, histories)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(out))
    return table.num_rows


# -- evaluation ----------------------------------------------------------------------
def evaluate_catalog(store: CatalogStore, interactions: str | Path, *, k: int = 10,
                     holdout: str = "last", options: RecommendOptions | None = None,
                     user_config: UserVectorConfig | None = None,
                     seed: int = 0, sentiment: str = "on") -> tuple[EvalReport, list[RejectedRow]]:
    """mmrec against popularity and random baselines on a held-out split of a file, with
    comment sentiment "on", "off" or both ("compare": an extra "mmrec-no-sentiment" row)."""
    from mmrec.recommend.evaluate import sentiment_variants
    from mmrec.recommend.sentiment import with_sentiment

    variants = sentiment_variants(sentiment, user_config)
    items = load_items(store)
    parsed = parse_interactions(interactions, item_resolver(store, Path(interactions).resolve().parent))
    if not parsed.rows:
        raise ConfigError(f"{interactions}: no usable interactions "
                          f"({len(parsed.rejected)} rejected rows; first: {_first(parsed.rejected)})")
    rows = with_sentiment(parsed.rows) if any(c.sentiment for c in variants.values()) else parsed.rows
    methods = {name: vector_recommender(items.ids, items.vectors, store.layout, user_config=cfg,
                                        options=options or RecommendOptions(), ingest_times=items.ingested_at)
               for name, cfg in variants.items()}
    report = evaluate(methods, rows, items.ids, k=k, holdout=parse_holdout(holdout), seed=seed)
    return report, parsed.rejected


def _first(rejected: Sequence[RejectedRow]) -> str:
    return f"line {rejected[0].line}: {rejected[0].reason}" if rejected else "none"
