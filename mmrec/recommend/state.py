"""Users' state kept in memory between requests by a long-lived reader (the HTTP service):
each user's stored interactions and each item's popularity, valid for one version of the
interactions table.

Complete mode (`fill`): a table of at most COMPLETE_ROWS rows is read whole once, and then
a user without rows, or an item without positive events, needs no read either; nor does
a write of events whose keys it does not hold (a hash of every key: they are appended). A write
through this store moves the table on by one version: complete state takes the written
rows in as they are; otherwise only the users and items that write touched are read
again. Commits by other processes (a sibling worker's events, a compaction) show as
versions it did not expect: complete state reads only the rows they appended (see
mmrec.catalog.changes); when one did more than append (an import that updated rows), or
in lazy mode, everything is dropped, read lazily, and filled again in the background.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from mmrec.catalog import resident
from mmrec.recommend.interactions import Interaction, is_positive, positive_rows

STATE_KEY = "user_state"  # where the cache lives in CatalogStore.derived
COMPLETE_ROWS = 1_000_000  # tables up to this size are held whole (~300 bytes a row)
log = logging.getLogger(__name__)


Keyed = tuple[list[Interaction], list[str]]  # rows and their keys, aligned


def user_state(store: Any, read_user: Callable[[str], list[Interaction]],
               read_all: Callable[[], Keyed] | None = None,
               read_added: Callable[[int, int], Keyed | None] | None = None) -> UserState:
    """The store's cache (made on first use; it lives as long as the store handle)."""
    state = store.derived.get(STATE_KEY)
    if state is None:
        state = store.derived[STATE_KEY] = UserState(store, read_user, read_all, read_added=read_added)
    return state


def _hashes(keys: Iterable[str]) -> np.ndarray:
    """Sorted 64-bit hashes of interaction keys (this process's str hash: they never leave it)."""
    return np.sort(np.fromiter(map(hash, keys), np.int64))


class UserState:
    """Per-user interactions and per-item popularity (distinct users with a positive event).

    read_user(user): that user's rows. read_all(): every row and its key (complete mode).
    read_added(since, until): the rows and keys versions since+1 .. until appended, or None
    when one did more than append (then complete state is read again)."""

    def __init__(self, store: Any, read_user: Callable[[str], list[Interaction]],
                 read_all: Callable[[], Keyed] | None = None, max_users: int = 50_000,
                 complete_rows: int = COMPLETE_ROWS,
                 read_added: Callable[[int, int], Keyed | None] | None = None) -> None:
        self.store = store
        self._read_user = read_user
        self._read_all = read_all
        self._read_added = read_added
        self.max_users = max_users
        self.complete_rows = complete_rows
        self._lock = threading.Lock()
        self._version: int | None = None
        self._users: OrderedDict[str, list[Interaction]] = OrderedDict()
        self._popularity: dict[str, int] = {}
        self._complete = False  # every user and every item's positive users are held
        self._positive: dict[str, set[str]] = {}  # item -> users with a positive event (complete)
        self._filling = False
        self._top = 0  # the largest popularity (complete)
        # hashes of every stored key (complete): the filled ones, sorted, and those written
        # since. A key whose hash is not here is certainly not stored
        self._key_hashes: np.ndarray | None = None
        self._new_hashes: set[int] = set()
        self._compacting = False  # this store is compacting the table (see compacting)
        self._writing: int | None = None  # this store is committing from this version (see writing)
        # other processes write this table as part of the same service (its sibling workers):
        # then every request checks the table's version, as their events must show at once
        self.shared = False
        self.followed = 0  # other writers' commits taken in without reading everything again

    @property
    def complete(self) -> bool:
        return self._complete

    def top(self) -> float | None:
        """The largest popularity of any item, in complete mode (None otherwise)."""
        with self._lock:
            self._current()
            return float(self._top) if self._complete else None

    def _table_version(self) -> int:
        """The table's version; the one held when a watcher of the tables (a Resident) has
        seen none newer, so a request need not check it itself."""
        kept = None if self.shared else resident(self.store)
        seen = None if kept is None else kept.version("interactions")
        if seen is not None and self._version is not None and seen <= self._version:
            return self._version
        return self.store.interactions_version()

    def _current(self, version: int | None = None) -> None:
        """Bring what is held to the table's version (or this one): complete state takes in
        what other writers appended; anything else drops everything."""
        version = self._table_version() if version is None else version
        writing = self._writing
        own_commit = writing is not None and writing == self._version and version == writing + 1
        if self._compacting or own_commit or version == self._version:
            return  # this store's own compaction or commit, not yet taken in: what is held holds
        if self._follow(version):
            return
        was_complete = self._complete
        if was_complete:
            log.info("interactions moved from version %s to %s by another writer, not only by "
                     "appends: every history is read again", self._version, version)
        self._drop()
        self._version = version
        if was_complete:
            self._fill_later()

    def _follow(self, version: int) -> bool:
        """Take in the rows other writers appended up to `version` (complete state), or
        forget only the users and items they touched (lazy), when appending is all they
        did (True)."""
        if self._read_added is None or self._version is None or version < self._version:
            return False
        added = self._read_added(self._version, version)
        if added is None:
            return False
        if self._complete:
            self._take_in(*added, skip=self._key_hashes is not None)
        else:
            for r in added[0]:
                self._users.pop(r.user_id, None)
                self._popularity.pop(r.item_id, None)
        self._version = version
        self.followed += 1
        return True

    def _take_in(self, rows: Sequence[Interaction], keys: Sequence[str], skip: bool = False) -> None:
        """Add stored rows to complete state (skip: leave out those whose key it holds)."""
        for r, key in zip(rows, keys, strict=True):
            h = hash(key)
            if skip and self._holds(h):
                continue
            self._users.setdefault(r.user_id, []).append(r)
            if is_positive(r.event, r.value):
                liked = self._positive.setdefault(r.item_id, set())
                liked.add(r.user_id)
                self._top = max(self._top, len(liked))
            if self._key_hashes is not None:
                self._new_hashes.add(h)

    def _holds(self, h: int) -> bool:
        held = self._key_hashes
        if h in self._new_hashes:
            return True
        if held is None or not len(held):
            return False
        at = min(int(np.searchsorted(held, h)), len(held) - 1)
        return bool(held[at] == h)

    def _drop(self) -> None:
        self._users.clear()
        self._popularity.clear()
        self._positive.clear()
        self._complete = False
        self._key_hashes = None
        self._new_hashes = set()

    # -- complete mode ----------------------------------------------------------------
    def fill(self) -> bool:
        """Hold the whole table when it has at most complete_rows rows (True if it now does)."""
        if self._read_all is None:
            return False
        table = self.store.interactions_table()
        if table is not None and table.count_rows() > self.complete_rows:
            return False
        version = -1 if table is None else int(table.version)
        rows, keys = self._read_all() if table is not None else ([], [])
        users: OrderedDict[str, list[Interaction]] = OrderedDict()
        positive: dict[str, set[str]] = {}
        for r in rows:
            users.setdefault(r.user_id, []).append(r)
            if is_positive(r.event, r.value):
                positive.setdefault(r.item_id, set()).add(r.user_id)
        with self._lock:
            self._drop()
            self._users, self._positive, self._version, self._complete = users, positive, version, True
            self._key_hashes = _hashes(keys)
            self._top = max(map(len, positive.values()), default=0)
            current = -1 if table is None else int(table.version)
            # written meanwhile: the read holds some of those commits' rows (its keys say
            # which), the rest are taken in; a commit that did more than append: stay lazy
            if current != version and not self._follow(current):
                self._drop()
                self._version = version
                return False
        log.info("%d interactions of %d users held in memory", len(rows), len(users))
        return True

    def _fill_later(self) -> None:
        """fill() in a background thread (one at a time); reads are lazy meanwhile."""
        if self._filling or self._read_all is None:
            return
        self._filling = True

        def run() -> None:
            try:
                self.fill()
            except Exception as e:  # noqa: BLE001 - lazy reads keep serving
                log.warning("reading every interaction again failed: %s", e)
            finally:
                self._filling = False

        threading.Thread(target=run, name="mmrec-user-state", daemon=True).start()

    # -- reads ------------------------------------------------------------------------
    def history(self, user: str) -> list[Interaction]:
        """The user's stored interactions (an empty list for an unknown user)."""
        with self._lock:
            self._current()
            rows = self._users.get(user)
            if rows is not None or self._complete:
                if rows is not None and not self._complete:
                    self._users.move_to_end(user)
                return list(rows or [])
        rows = self._read_user(user)
        with self._lock:
            if self._table_version() == self._version and not self._complete:  # nobody wrote meanwhile
                self._users[user] = rows
                while len(self._users) > self.max_users:
                    self._users.popitem(last=False)
        return rows

    def popularity(self, items: Iterable[str]) -> dict[str, int]:
        """Popularity of these items (absent ones: 0), reading only those not yet known."""
        items = list(items)
        with self._lock:
            self._current()
            if self._complete:
                return {i: len(self._positive.get(i, ())) for i in items}
            missing = [i for i in items if i not in self._popularity]
            version = self._version
        counts = popularity_by_item(self.store.interaction_columns(
            ["user_id", "item_id", "event", "value"], items=missing)) if missing else {}
        with self._lock:
            if self._version == version and self._table_version() == version and not self._complete:
                for i in missing:
                    self._popularity[i] = counts.get(i, 0)
            known = {i: self._popularity.get(i, counts.get(i, 0)) for i in items}
        return known

    # -- this store's writes ----------------------------------------------------------
    def before_write(self) -> int:
        """The table version a write starts from (call under the interactions lock)."""
        return self.store.interactions_version()

    @contextmanager
    def writing(self) -> Iterator[int]:
        """Around one commit by this store (under the interactions lock), yielding the
        version it starts from; after_write inside takes it in. Meanwhile a read that sees
        the commit's version keeps what is held (the commit is not taken in yet) instead of
        dropping it all."""
        version = self.before_write()
        with self._lock:
            self._current(version)  # other writers' commits first, so this one follows on
            self._writing = version
        try:
            yield version
        finally:
            with self._lock:
                self._writing = None

    def maybe_stored(self, version: int, keys: Sequence[str]) -> list[bool] | None:
        """For each key, whether the table at `version` may hold it (False: it certainly
        does not); None when this state cannot tell (not complete, or at another version).
        Call under the interactions lock, with before_write's version."""
        with self._lock:
            if not self._complete or self._key_hashes is None or self._version != version:
                return None
            held, wanted = self._key_hashes, np.fromiter(map(hash, keys), np.int64, len(keys))
            at = np.minimum(np.searchsorted(held, wanted), max(len(held) - 1, 0))
            filled = held[at] == wanted if len(held) else np.zeros(len(keys), bool)
            return [bool(f) or int(h) in self._new_hashes for f, h in zip(filled, wanted, strict=True)]

    @contextmanager
    def compacting(self) -> Iterator[None]:
        """Around a compaction of the table by this store (under the interactions lock, so
        nothing else writes): the rows stay the same, so reads meanwhile keep what is held
        though the version moves, and what is held is valid at the version it ends on."""
        before = self.before_write()
        self._compacting = True
        try:
            yield
        finally:
            with self._lock:
                self._compacting = False
                table = self.store.interactions_table()
                if table is not None and self._version == before:
                    self._version = int(table.version)

    def after_write(self, before: int, rows: Sequence[Interaction], stored: int, after: int,
                    keys: Sequence[str]) -> None:
        """After this store wrote one commit from version `before` to `after` holding
        `stored` of `rows` (keyed `keys`; the rest were stored already): take them in, or
        forget only what they touched."""
        with self._lock:
            if self._version != before or after != before + 1:
                was_complete = self._complete
                self._drop()
                if was_complete:
                    self._fill_later()
            elif self._complete and stored == len(rows):
                self._take_in(rows, keys)
            else:
                if self._complete:  # which rows were new is unknown: read lazily, fill again
                    self._drop()
                    self._fill_later()
                for r in rows:
                    self._users.pop(r.user_id, None)
                    self._popularity.pop(r.item_id, None)
            self._version = after


def popularity_by_item(t: pa.Table) -> dict[str, int]:
    """item id -> distinct users with a positive event, counted in Arrow."""
    if not len(t):
        return {}
    pairs = t.filter(positive_rows(t["event"], t["value"])).group_by(["item_id", "user_id"]).aggregate([])
    counts = pairs.group_by("item_id").aggregate([("user_id", "count")])
    return dict(zip(counts["item_id"].to_pylist(), counts["user_id_count"].to_pylist(), strict=True))

