"""Batched calls (the group commit of event batches, text queries): concurrent callers
share runs, each gets its own result (or the failure); record_event_batches validates and
counts each batch alone; embed_together splits one pass's vectors back per call."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mmrec.bench.query import build_catalog
from mmrec.recommend import record_event_batches
from mmrec.recommend.from_catalog import stored_interactions
from mmrec.serve.batcher import Batcher
from mmrec.serve.service import embed_together

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
    gc = Batcher(_slow_commit(groups))
    out = _together(8, lambda i: gc.submit(([{"n": i}], False)))
    assert out == [("report", [{"n": i}]) for i in range(8)]
    assert gc.calls == 8 and gc.runs == len(groups) < 8  # the later ones waited for one commit
    assert sorted(b[0][0]["n"] for g in groups for b in g) == list(range(8))  # each stored once


def test_a_group_is_capped_and_the_rest_commit_next():
    groups: list[list] = []
    gc = Batcher(_slow_commit(groups), max_batch=2)
    _together(6, lambda i: gc.submit(([{"n": i}], False)))
    assert max(len(g) for g in groups) <= 2 and gc.calls == 6


def test_a_failed_commit_reaches_every_caller_in_its_group_and_the_next_group_commits():
    calls = []

    def commit(batches):
        calls.append(len(batches))
        if len(calls) == 1:
            raise OSError("disk full")
        return [len(b[0]) for b in batches]
    gc = Batcher(commit)
    with pytest.raises(OSError, match="disk full"):
        gc.submit(([{}], False))
    assert gc.submit(([{}, {}], False)) == 2 and gc.runs == 1


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


class _Tower:
    """A text tower that says how often it ran: vector i of a text is its length, then i."""

    has_text_tower = True

    def __init__(self, modality: str) -> None:
        self.modality, self.passes = modality, 0

    def embed_text(self, texts: list[str]) -> np.ndarray:
        self.passes += 1
        return np.array([[len(t), i] for i, t in enumerate(texts)], np.float32)


def test_texts_of_several_calls_go_through_one_pass_per_extractor_set():
    a, b = (_Tower("text"), _Tower("visual")), (_Tower("text"),)
    out = embed_together([(a, ["ab", "abcd"]), (b, ["x"]), (a, ["abc"])])
    assert [a[0].passes, a[1].passes, b[0].passes] == [1, 1, 1]
    assert out[0]["text"][:, 0].tolist() == [2, 4] and out[2]["visual"][:, 0].tolist() == [3]
    assert out[2]["text"][:, 1].tolist() == [2]  # the third text of the first pass
    assert set(out[1]) == {"text"} and out[1]["text"].shape == (1, 2)
