"""The user-state cache of a long-lived reader: served from memory while the interactions
table stands still, refreshed where this store's own write touched, and read afresh when
another process writes."""

from __future__ import annotations

import time

import pytest

from mmrec.bench.query import build_catalog
from mmrec.catalog.store import CatalogStore
from mmrec.recommend.from_catalog import (
    _keyed,
    _state,
    count_popularity_top,
    record_events,
    stored_interactions,
    stored_rows,
)
from mmrec.recommend.interactions import Interaction
from mmrec.recommend.state import UserState, popularity_by_item

IDS = [f"{i:032x}" for i in range(50)]


@pytest.fixture()
def store(tmp_path) -> CatalogStore:
    s = build_catalog(tmp_path / "cat.lance", 50, [("visual", 8), ("text", 8)])
    now = time.time()
    rows = [Interaction(f"u{u}", IDS[(u * 7 + j) % 50], "like" if j % 2 else "view", None, now - j, None)
            for u in range(5) for j in range(4)]
    s.add_interactions(stored_rows(rows, "test"))
    return s


class Counting:
    """read_user that counts how often the store is read."""

    def __init__(self, store: CatalogStore) -> None:
        self.store, self.reads = store, 0

    def __call__(self, user: str) -> list[Interaction]:
        self.reads += 1
        return stored_interactions(self.store, user=user)


def test_history_is_read_once_while_the_table_stands_still(store):
    reader = Counting(store)
    state = UserState(store, reader)
    first = state.history("u1")
    assert len(first) == 4 and {r.user_id for r in first} == {"u1"}
    assert state.history("u1") == first and reader.reads == 1
    assert state.history("nobody") == [] and reader.reads == 2


def test_own_write_refreshes_only_the_users_and_items_it_touched(store):
    reader = Counting(store)
    state = UserState(store, reader)
    store.derived["user_state"] = state  # the cache record_events keeps up to date
    for u in ("u1", "u2"):
        state.history(u)
    before = state.popularity(IDS)
    event = {"user_id": "u1", "item": IDS[40], "event": "like", "timestamp": time.time()}
    report = record_events(store, [event])
    assert report.stored == 1
    assert IDS[40] in {r.item_id for r in state.history("u1")}  # re-read: its write touched u1
    state.history("u2")
    assert reader.reads == 3  # u2 still came from memory
    after = state.popularity(IDS)
    assert after[IDS[40]] == before[IDS[40]] + 1
    assert {k: v for k, v in after.items() if k != IDS[40]} == {k: v for k, v in before.items()
                                                               if k != IDS[40]}


def test_another_process_write_clears_the_cache(store):
    state = UserState(store, Counting(store))
    assert len(state.history("u3")) == 4
    other = CatalogStore.open(store.path)  # a second handle: another process's import
    other.add_interactions(stored_rows([Interaction("u3", IDS[44], "like", None, time.time(), None)], "x"))
    assert IDS[44] in {r.item_id for r in state.history("u3")}
    assert state.popularity([IDS[44]])[IDS[44]] >= 1


def test_popularity_matches_a_full_count(store):
    state = _state(store)
    counts = state.popularity(IDS)
    full = popularity_by_item(store.interaction_columns(["user_id", "item_id", "event", "value"]))
    assert counts == {i: full.get(i, 0) for i in IDS}
    assert max(counts.values()) == count_popularity_top(store)


def test_events_resolve_only_their_own_keys(store):
    """An event names its item by id or catalogued path; an unknown one is rejected by index."""
    events = [{"user_id": "u9", "item": "/synthetic/3.mp4", "event": "like", "timestamp": 1.7e9},
              {"user_id": "u9", "item": "no-such-item", "event": "like", "timestamp": 1.7e9}]
    report = record_events(store, events, partial=True)
    assert report.stored == 1 and [r.line for r in report.rejected] == [1]
    assert [r.item_id for r in stored_interactions(store, user="u9")] == [IDS[3]]


def _complete(store: CatalogStore) -> tuple[UserState, Counting]:
    reader = Counting(store)
    state = UserState(store, reader, lambda: _keyed(store.interactions()))  # no follower: refills
    store.derived["user_state"] = state
    assert state.fill() and state.complete
    return state, reader


def test_complete_state_answers_every_user_and_item_without_reads(store):
    state, reader = _complete(store)
    lazy = UserState(store, Counting(store))
    for u in ("u0", "u3", "nobody"):
        assert sorted(state.history(u), key=lambda r: (r.timestamp, r.item_id)) == \
            sorted(lazy.history(u), key=lambda r: (r.timestamp, r.item_id))
    assert state.popularity(IDS) == lazy.popularity(IDS)
    assert state.top() == count_popularity_top(store)
    assert reader.reads == 0


def test_complete_state_takes_its_own_writes_in(store):
    state, reader = _complete(store)
    top = state.top()
    others = [{"user_id": f"v{n}", "item": IDS[41], "event": "like", "timestamp": time.time()}
              for n in range(int(top) + 1)]
    assert record_events(store, others).stored == len(others)
    assert state.complete and reader.reads == 0
    assert [r.user_id for r in state.history("v0")] == ["v0"]
    assert state.popularity([IDS[41]])[IDS[41]] == len(others) == state.top()
    again = record_events(store, others[:1])  # already stored: the state reads it again
    assert again.stored == 0
    assert [r.item_id for r in state.history("v0")] == [IDS[41]]  # once, not twice


def test_complete_state_without_a_follower_refills_after_another_process_writes(store):
    state, _ = _complete(store)
    other = CatalogStore.open(store.path)
    other.add_interactions(stored_rows([Interaction("u3", IDS[45], "like", None, time.time(), None)], "x"))
    assert IDS[45] in {r.item_id for r in state.history("u3")}  # read lazily at once
    deadline = time.time() + 10
    while not state.complete and time.time() < deadline:
        time.sleep(0.05)
    assert state.complete and state.popularity([IDS[45]])[IDS[45]] >= 1


def test_a_table_over_the_limit_stays_lazy(store):
    state = UserState(store, Counting(store), lambda: _keyed(store.interactions()), complete_rows=5)
    assert not state.fill() and not state.complete
    assert len(state.history("u2")) == 4


def test_a_compaction_keeps_the_complete_state(store):
    from mmrec.recommend.from_catalog import compact_interactions, record_events

    state = _state(store)
    assert state.fill()
    for i in range(3):  # three small files
        record_events(store, [{"user": "u1", "item": IDS[40 + i], "event": "like", "timestamp": 1.7e9 + i}])
    version = store.interactions_table().version
    compact_interactions(store)
    assert store.interactions_table().version > version and store.interaction_fragments() == 1
    assert state.complete and len(state.history("u1")) == 7


def test_compaction_leaves_full_files_alone(store, monkeypatch):
    """Files of INTERACTION_FILE_ROWS rows or more are not rewritten, so compacting a large
    table costs what its small files hold; the small ones become one, and no row is lost."""
    import mmrec.catalog.store as store_module
    from mmrec.recommend.from_catalog import compact_interactions

    monkeypatch.setattr(store_module, "INTERACTION_FILE_ROWS", 20)  # the fixture's 20 rows: one full file
    ds = store.interactions_table().to_lance
    full = [f.fragment_id for f in ds().get_fragments()]
    for i in range(3):
        record_events(store, [{"user": "u1", "item": IDS[40 + i], "event": "like", "timestamp": 1.7e9 + i}])
    assert store.interaction_fragments() == 3
    compact_interactions(store, indexes=False)
    after = ds().get_fragments()
    assert [f.fragment_id for f in after][:1] == full and len(after) == 2
    assert store.interaction_fragments() == 1 and ds().count_rows() == 23
    assert len(stored_interactions(store, user="u1")) == 7


def test_pruning_old_versions_keeps_the_rows(store):
    from datetime import timedelta

    for i in range(3):
        record_events(store, [{"user": "u2", "item": IDS[30 + i], "event": "like", "timestamp": 1.7e9 + i}])
    ds = store.interactions_table().to_lance
    before = len(ds().versions())
    store.prune_interaction_versions(older_than=timedelta(0))
    assert len(ds().versions()) < before and ds().count_rows() == 23
    assert len(stored_interactions(store, user="u2")) == 7


@pytest.mark.parametrize("shared", [False, True])
def test_a_sibling_workers_event_shows_at_once_when_writes_are_shared(store, shared):
    """A service's workers each hold the interactions; with shared writes a request checks
    the table's version itself instead of trusting the watcher's (which never polls here)."""
    from mmrec.catalog import keep_resident
    from mmrec.recommend.from_catalog import hold_user_state, record_events

    reader = CatalogStore.open(store.path)
    keep_resident(reader, poll_s=3600)
    assert hold_user_state(reader, shared=shared)
    state = _state(reader)
    assert len(state.history("u2")) == 4
    record_events(CatalogStore.open(store.path),  # the sibling worker
                  [{"user": "u2", "item": IDS[45], "event": "like", "timestamp": 1.7e9}])
    assert len(state.history("u2")) == (5 if shared else 4)  # unshared: seen within the watcher's poll


def test_complete_state_appends_new_events_and_skips_stored_ones_without_dropping(store, monkeypatch):
    """With every key's hash held, a new event is appended (no key lookup) and one stored
    already is not written again; either way the state stays complete."""
    state = _state(store)
    assert state.fill() and state.complete
    calls = []
    real = store.add_interactions
    monkeypatch.setattr(store, "add_interactions",
                        lambda rows, new=False: calls.append((len(rows), new)) or real(rows, new))
    event = {"user": "u1", "item": IDS[44], "event": "like", "timestamp": 1.7e9}
    assert record_events(store, [event, dict(event)]).stored == 1  # twice in one batch: stored once
    assert calls == [(1, True)]
    version = store.interactions_table().version
    again = record_events(store, [event])
    assert again.stored == 0 and again.written and calls == [(1, True)]  # no commit at all
    assert store.interactions_table().version == version
    assert state.complete and len(state.history("u1")) == 5 == len(stored_interactions(store, user="u1"))
    imported = stored_rows([Interaction("u1", IDS[45], "view", 0.5, 1.6e9, None)], "x")
    assert state.maybe_stored(version, [r["key"] for r in imported] + [stored_rows(
        [Interaction("u1", IDS[44], "like", None, 1.7e9, None)], "x")[0]["key"]]) == [False, True]


def test_a_read_between_a_commit_and_its_intake_keeps_the_complete_state(store, monkeypatch):
    """A request thread that sees this store's commit before the writer took it in must not
    take it for another writer's (which drops every history)."""
    state = _state(store)
    assert state.fill()
    seen = []
    real = store.add_interactions

    def add_then_read(rows, new=False):
        out = real(rows, new)
        seen.append(len(state.history("u2")))  # the table is at the new version already
        return out

    monkeypatch.setattr(store, "add_interactions", add_then_read)
    record_events(store, [{"user": "u2", "item": IDS[46], "event": "like", "timestamp": 1.7e9}])
    assert seen == [4] and state.complete  # the old rows until the intake, then the new one
    assert len(state.history("u2")) == 5


def _other(store: CatalogStore) -> CatalogStore:
    return CatalogStore.open(store.path)  # another process's handle


def test_another_writers_appends_are_taken_in_without_reading_everything_again(store):
    """A sibling worker's event commits (and its compaction) keep the state complete: only
    the rows they appended are read."""
    from mmrec.recommend.from_catalog import compact_interactions

    state = _state(store)
    assert state.fill()
    other = _other(store)
    for i in range(3):
        record_events(other, [{"user": "u1", "item": IDS[40 + i], "event": "like", "timestamp": 1.7e9 + i},
                              {"user": f"new{i}", "item": IDS[40], "event": "like", "timestamp": 1.7e9}])
    assert {r.item_id for r in state.history("u1")} >= {IDS[40], IDS[41], IDS[42]}
    assert state.complete and state.followed == 1  # three commits, one catch-up
    assert state.popularity([IDS[40]])[IDS[40]] == 4 == state.top()
    compact_interactions(other)  # rewrites the files, not the rows
    record_events(other, [{"user": "u1", "item": IDS[43], "event": "like", "timestamp": 1.7e9}])
    assert len(state.history("u1")) == 8 == len(stored_interactions(store, user="u1"))
    assert state.complete and state.followed == 2
    stored = stored_rows([Interaction("u1", IDS[43], "like", None, 1.7e9, None)], "api")[0]["key"]
    assert state.maybe_stored(store.interactions_table().version, [stored]) == [True]
    # this store's own event after the sibling's: still one version on, still complete
    record_events(store, [{"user": "u1", "item": IDS[44], "event": "like", "timestamp": 1.7e9}])
    assert state.complete and len(state.history("u1")) == 9


def test_another_writers_update_of_stored_rows_drops_and_refills(store):
    state = _state(store)
    assert state.fill()
    row = stored_interactions(store, user="u0")[0]
    changed = [{**r, "value": 0.25} for r in stored_rows([row], "x")]  # same key, new value
    _other(store).add_interactions(changed)  # an upsert that updates a row: not an append
    assert [r.value for r in state.history("u0") if r.item_id == row.item_id] == [0.25]
    deadline = time.time() + 10
    while not state.complete and time.time() < deadline:
        time.sleep(0.05)
    assert state.complete and [r.value for r in state.history("u0") if r.item_id == row.item_id] == [0.25]


def test_a_fill_that_a_commit_overtakes_still_completes_with_every_row_once(store):
    """A commit landing while the whole table is read: the read's keys say which of its
    rows it already has, and the rest are taken in."""
    read_all = lambda: _keyed(store.interactions())  # noqa: E731
    other = _other(store)

    def read_amid_writes():  # one commit before the read (it holds that row), one after
        record_events(other, [{"user": "u4", "item": IDS[48], "event": "like", "timestamp": 1.7e9}])
        got = read_all()
        record_events(other, [{"user": "u4", "item": IDS[49], "event": "like", "timestamp": 1.7e9}])
        return got

    state = UserState(store, Counting(store), read_amid_writes, read_added=_state(other)._read_added)
    assert state.fill() and state.complete
    items = [r.item_id for r in state.history("u4")]
    assert items.count(IDS[48]) == 1 and items.count(IDS[49]) == 1 and len(items) == 6


def test_appended_rows_names_what_commits_appended_and_nothing_else(store):
    from mmrec.catalog.changes import appended_rows

    table = store.interactions_table()
    v0 = table.version
    store.add_interactions(stored_rows([Interaction("u9", IDS[1], "like", None, 1.7e9, None)], "x"), new=True)
    # an upsert that only inserts
    store.add_interactions(stored_rows([Interaction("u9", IDS[2], "like", None, 1.7e9, None)], "x"))
    got = appended_rows(table, v0, table.version, ["user_id", "item_id"])
    assert sorted(got.column("item_id").to_pylist()) == [IDS[1], IDS[2]]
    v1 = table.version
    store.compact_interactions()  # rewrites files, adds no row
    assert table.version > v1 and appended_rows(table, v1, table.version).num_rows == 0
    v2 = table.version
    table.delete("user_id = 'u9'")
    assert appended_rows(table, v2, table.version) is None
    v3 = table.version
    row = stored_rows([Interaction("u0", IDS[0], "like", None, 1.7e9, None)], "x")
    store.add_interactions(row)
    store.add_interactions([{**row[0], "value": 2.0}])  # matches a stored key: an update
    assert appended_rows(table, v3, table.version) is None
    assert appended_rows(table, table.version, table.version - 1) is None  # backwards


def test_appends_land_on_top_of_other_writers_and_on_tables_older_than_a_column(tmp_path):
    """add_interactions(new=True) appends with Lance itself: on a table made before the
    `sentiment` column, after another handle's commits, and each returns the version it
    wrote, which LanceDB's own handle then reads."""
    import pyarrow as pa

    from mmrec.catalog.store import INTERACTIONS, INTERACTIONS_SCHEMA

    store = build_catalog(tmp_path / "cat.lance", 10, [("text", 8)])
    old_schema = pa.schema([f for f in INTERACTIONS_SCHEMA if f.name != "sentiment"])
    old = stored_rows([Interaction("u1", IDS[0], "like", None, 1.7e9, None)], "old")
    store.db.create_table(INTERACTIONS, pa.Table.from_pylist(old, schema=old_schema))
    store = CatalogStore.open(store.path)
    before = store.interactions_table().version
    fresh = stored_rows([Interaction("u1", IDS[1], "like", None, 1.7e9, "great")], "x")
    fresh[0]["sentiment"] = 0.5
    assert store.add_interactions(fresh, new=True) == (1, before + 2)  # the column, then the rows
    other = _other(store)
    for i in range(2):
        view = Interaction("u2", IDS[2 + i], "view", None, 1.7e9, None)
        _, written = other.add_interactions(stored_rows([view], "y"), new=True)
    assert store.interactions_version() == written
    _, mine = store.add_interactions(stored_rows([Interaction("u3", IDS[5], "like", None, 1.7e9, None)], "z"),
                                     new=True)
    assert mine == written + 1 == store.interactions_table().version == other.interactions_version()
    rows = {r["item_id"]: r for r in store.interactions_table().to_arrow().to_pylist()}
    assert sorted(rows) == sorted(IDS[i] for i in (0, 1, 2, 3, 5))
    assert rows[IDS[0]]["sentiment"] is None and rows[IDS[1]]["sentiment"] == 0.5


def test_events_committed_during_a_compactions_rewrite_are_kept(store):
    """The compaction rewrites files before it takes the lock and commits inside it: an
    event another writer commits between the two stays, and the state stays complete."""
    from contextlib import contextmanager

    from mmrec.recommend.from_catalog import compact_interactions

    state = _state(store)
    assert state.fill()
    for i in range(3):
        record_events(store, [{"user": "u1", "item": IDS[40 + i], "event": "like", "timestamp": 1.7e9 + i}])
    other, taken = _other(store), []

    @contextmanager
    def locked():  # the rewrite is done: a sibling's event lands just before the lock
        record_events(other, [{"user": "u1", "item": IDS[45], "event": "like", "timestamp": 1.7e9}])
        taken.append(store.interaction_fragments())
        yield

    compact_interactions(store, indexes=True, locked=locked)
    assert taken == [5]  # the fixture's file, three events and the sibling's: not compacted yet
    assert store.interaction_fragments() == 2  # the four it rewrote became one; the sibling's stays
    assert store.interactions_table().count_rows() == 24
    assert {IDS[40], IDS[41], IDS[42], IDS[45]} <= {r.item_id for r in state.history("u1")}
    assert len(stored_interactions(store, user="u1")) == 8 == len(state.history("u1")) and state.complete
