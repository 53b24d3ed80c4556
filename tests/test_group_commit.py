"""Group commit of event batches: concurrent callers share commits, each gets its own
report (or the failure), and record_event_batches validates and counts each batch alone."""

from __future__ import annotations

import threading
import time

import pytest

from mmrec.bench.query import build_catalog
from mmrec.recommend import record_event_batches
from mmrec.recommend.from_catalog import stored_interactions
from mmrec.serve.group_commit import GroupCommit

IDS = [f"{i:032x}" for i in range(20)]


def _slow_commit(groups: list[list]) -> object:
    def commit(batches):
        groups.append(list(batches))
        time.sleep(0.05)
        return [("report", b[0]) for b in batches]
    return commit


def _together(n: int, fn) -> list:
    out: list = [None] * n
    go = threading.Barrier(n)

    def run(i):
        go.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - the test looks at what each caller got
            out[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_concurrent_writers_share_commits_and_each_gets_its_own_report():
    groups: list[list] = []
    gc = GroupCommit(_slow_commit(groups))
    out = _together(8, lambda i: gc.write(([{"n": i}], False)))
    assert out == [("report", [{"n": i}]) for i in range(8)]
    assert gc.batches == 8 and gc.commits == len(groups) < 8  # the later ones waited for one commit
    assert sorted(b[0][0]["n"] for g in groups for b in g) == list(range(8))  # each stored once


def test_a_group_is_capped_and_the_rest_commit_next():
    groups: list[list] = []
    gc = GroupCommit(_slow_commit(groups), max_batches=2)
    _together(6, lambda i: gc.write(([{"n": i}], False)))
    assert max(len(g) for g in groups) <= 2 and gc.batches == 6


def test_a_failed_commit_reaches_every_caller_in_its_group_and_the_next_group_commits():
    calls = []

    def commit(batches):
        calls.append(len(batches))
        if len(calls) == 1:
            raise OSError("disk full")
        return [len(b[0]) for b in batches]
    gc = GroupCommit(commit)
    with pytest.raises(OSError, match="disk full"):
        gc.write(([{}], False))
    assert gc.write(([{}, {}], False)) == 2 and gc.commits == 1


@pytest.fixture()
def store(tmp_path):
    return build_catalog(tmp_path / "cat.lance", 20, [("visual", 8)])


def _event(user: str, item: str, ts: float = 1.7e9, event: str = "like") -> dict:
    return {"user": user, "item": item, "event": event, "timestamp": ts}


def test_batches_are_validated_alone_and_stored_in_one_commit(store):
    version = store.interactions_table().version if store.interactions_table() is not None else None
    batches = [([_event("a", IDS[0]), _event("a", IDS[1])], False),
               ([_event("b", IDS[2]), _event("b", "no-such-item")], False),  # all or nothing: refused
               ([_event("c", IDS[3]), _event("c", "no-such-item")], True),  # partial: the good one kept
               ([_event("a", IDS[0]), _event("d", IDS[4])], False)]  # one already in the first batch
    reports = record_event_batches(store, batches)
    assert [(r.received, r.stored, r.written) for r in reports] == [(2, 2, True), (2, 0, False), (2, 1, True),
                                                                     (2, 1, True)]
    assert [[x.line for x in r.rejected] for r in reports] == [[], [1], [1], []]  # index in its batch
    assert "no-such-item" in reports[1].rejected[0].reason
    kept = {(i.user_id, i.item_id) for i in stored_interactions(store)}
    assert kept == {("a", IDS[0]), ("a", IDS[1]), ("c", IDS[3]), ("d", IDS[4])}
    table = store.interactions_table()
    assert version is None or table.version - version == 1  # one commit for all four batches
