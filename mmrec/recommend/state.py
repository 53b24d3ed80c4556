"""Users' state kept in memory between requests by a long-lived reader (the HTTP service):
each user's stored interactions and each item's popularity, valid for one version of the
interactions table.

A write through this store moves the table on by one version: the cache then refreshes
only the users and items that write touched. Any other change (another process's import,
a compaction) shows as a version it did not expect, and everything is read afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pyarrow as pa

from mmrec.recommend.interactions import Interaction, positive_rows

STATE_KEY = "user_state"  # where the cache lives in CatalogStore.derived


def user_state(store: Any, read_user: Callable[[str], list[Interaction]]) -> UserState:
    """The store's cache (made on first use; it lives as long as the store handle)."""
    state = store.derived.get(STATE_KEY)
    if state is None:
        state = store.derived[STATE_KEY] = UserState(store, read_user)
    return state


class UserState:
    """Per-user interactions and per-item popularity (distinct users with a positive event)."""

    def __init__(self, store: Any, read_user: Callable[[str], list[Interaction]],
                 max_users: int = 50_000) -> None:
        self.store = store
        self._read_user = read_user
        self.max_users = max_users
        self._lock = threading.Lock()
        self._version: int | None = None
        self._users: OrderedDict[str, list[Interaction]] = OrderedDict()
        self._popularity: dict[str, int] = {}

    def _table_version(self) -> int:
        table = self.store.interactions_table()
        return -1 if table is None else int(table.version)

    def _current(self) -> None:
        """Drop everything when the table is not at the version the cache holds."""
        version = self._table_version()
        if version != self._version:
            self._users.clear()
            self._popularity.clear()
            self._version = version

    def history(self, user: str) -> list[Interaction]:
        """The user's stored interactions (an empty list for an unknown user)."""
        with self._lock:
            self._current()
            rows = self._users.get(user)
            if rows is not None:
                self._users.move_to_end(user)
                return rows
        rows = self._read_user(user)
        with self._lock:
            if self._table_version() == self._version:  # nobody wrote while it was read
                self._users[user] = rows
                while len(self._users) > self.max_users:
                    self._users.popitem(last=False)
        return rows

    def popularity(self, items: Iterable[str]) -> dict[str, int]:
        """Popularity of these items (absent ones: 0), reading only those not yet known."""
        items = list(items)
        with self._lock:
            self._current()
            missing = [i for i in items if i not in self._popularity]
            version = self._version
        counts = popularity_by_item(self.store.interaction_columns(
            ["user_id", "item_id", "event", "value"], items=missing)) if missing else {}
        with self._lock:
            if self._version == version and self._table_version() == version:
                for i in missing:
                    self._popularity[i] = counts.get(i, 0)
            known = {i: self._popularity.get(i, counts.get(i, 0)) for i in items}
        return known

    def before_write(self) -> int:
        """The table version a write starts from (call under the interactions lock)."""
        return self._table_version()

    def after_write(self, before: int, users: Sequence[str], items: Sequence[str]) -> None:
        """After this store wrote one commit from `before`: forget only what it touched."""
        with self._lock:
            after = self._table_version()
            if self._version != before or after != before + 1:
                self._users.clear()
                self._popularity.clear()
            else:
                for u in users:
                    self._users.pop(u, None)
                for i in items:
                    self._popularity.pop(i, None)
            self._version = after


def popularity_by_item(t: pa.Table) -> dict[str, int]:
    """item id -> distinct users with a positive event, counted in Arrow."""
    if not len(t):
        return {}
    pairs = t.filter(positive_rows(t["event"], t["value"])).group_by(["item_id", "user_id"]).aggregate([])
    counts = pairs.group_by("item_id").aggregate([("user_id", "count")])
    return dict(zip(counts["item_id"].to_pylist(), counts["user_id_count"].to_pylist(), strict=True))
