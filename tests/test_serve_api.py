"""`mmrec serve` end to end: a real uvicorn server on 127.0.0.1 (an ephemeral port) over the
generated sample library, driven with an HTTP client: every endpoint, its validation
errors, Range requests, uploads, events that change the next recommendation, and the
security rules. Requests that must be refused leave the catalog's table versions as they were.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from click.testing import CliRunner
from served import running, sample_catalog

import mmrec
from mmrec.cli import main
from mmrec.serve import ServeConfig, create_app
from mmrec.serve.service import Service

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[SimpleNamespace]:
    lib, db = sample_catalog(tmp_path_factory, include_broken=True)
    config = ServeConfig(db=db, max_upload_mb=1, max_k=50)
    service = Service(config)
    locked = ServeConfig(db=db, token=TOKEN, cors=("http://app.example",), preload=False)
    with running(create_app(config, service)) as url, running(create_app(locked, service)) as locked_url, \
            httpx.Client(base_url=url, timeout=120) as client, \
            httpx.Client(base_url=locked_url, timeout=120) as locked_client:
        ids = {Path(r["path"]).stem: r["id"] for r in service.store.items.to_arrow().to_pylist()}
        yield SimpleNamespace(lib=lib, db=db, client=client, locked=locked_client, ids=ids,
                              service=service, config=config)


def versions(env) -> dict[str, int]:
    return env.client.get("/api/stats").json()["table_versions"]


def search(env, **body):
    return env.client.post("/api/search", json=body)


# -- service ----------------------------------------------------------------------------
def test_health_stats_and_docs(env):
    assert env.client.get("/healthz").json() == {"status": "ok", "version": mmrec.__version__, "items": 9}
    stats = env.client.get("/api/stats").json()
    assert stats["items"] == 9 and stats["segments"] > 9 and stats["users"] == 5
    assert stats["random_modalities"] == ["audio", "visual"]  # tiny CLIP/CLAP run on random weights
    assert {"items", "segments", "interactions"} <= set(stats["table_versions"])
    assert "path" not in stats
    held = stats["in_memory"]  # the catalog answers from memory, at the tables' versions
    assert held["items"]["version"] == stats["table_versions"]["items"] and held["items"]["mb"] >= 0
    assert held["segments"]["version"] == stats["table_versions"]["segments"]
    assert held["all_user_histories"] is True
    assert env.client.get("/docs").status_code == 200
    paths = env.client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/search/file", "/api/recommend", "/api/events",
            "/media/{item_id}"} <= set(paths)


# -- search -----------------------------------------------------------------------------
def test_text_search_finds_the_topic_and_links_instead_of_paths(env):
    r = search(env, text="football match goals", k=3)
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["item_id"] == env.ids["football_highlights"] and len(hits) == 3
    assert all("path" not in h for h in hits)
    assert hits[0]["media_url"] == f"/media/{hits[0]['item_id']}"
    assert set(hits[0]["scores"]) == {"visual", "audio", "text"}
    assert any("random weights" in n for n in r.json()["notes"])


def test_weights_modality_filters_and_moments(env):
    text_only = search(env, text="football match goals", k=5, weights={"text": 1}).json()["hits"]
    assert all(h["scores"]["visual"] == 0 and h["scores"]["audio"] == 0 for h in text_only)
    audio = search(env, text="relaxing sounds", k=9, filters={"kind": "audio"}).json()["hits"]
    assert audio and all(h["kind"] == "audio" for h in audio)
    long = search(env, text="music", k=9, filters={"min_duration": 7.0}).json()["hits"]
    short = search(env, text="music", k=9, filters={"max_duration": 7.0}).json()["hits"]
    assert {h["item_id"] for h in long}.isdisjoint(h["item_id"] for h in short) and long and short
    tagged = search(env, text="anything", k=9, filters={"tags": ["football"]}).json()["hits"]
    assert [h["item_id"] for h in tagged] == [env.ids["football_highlights"]]
    titled = search(env, text="anything", k=9, filters={"title_contains": "PASTA"}).json()["hits"]
    assert titled and all("pasta" in h["title"].lower() for h in titled)
    moments = search(env, text="rain on the window", k=4, moments=True).json()
    assert moments["moments"]
    assert all(0 <= h["segment"]["start"] < h["segment"]["end"] for h in moments["hits"])
    seg = moments["hits"][0]["segment"]
    assert seg["seg_id"].startswith(moments["hits"][0]["item_id"] + ":")
    assert seg["thumb_url"] == f"/thumbs/{moments['hits'][0]['item_id']}/{seg['seg_id']}"


def test_search_by_item_excludes_it_and_similar_items(env):
    pasta = env.ids["pasta_night"]
    hits = search(env, item=pasta, k=3).json()["hits"]
    assert hits[0]["item_id"] == env.ids["pasta_night_small"] and pasta not in [h["item_id"] for h in hits]
    similar = env.client.get(f"/api/items/{pasta}/similar", params={"k": 3}).json()["hits"]
    assert [h["item_id"] for h in similar] == [h["item_id"] for h in hits]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"text": "x", "k": 0}, 422, "k"),
    ({"text": "x", "k": "lots"}, 422, "k"),
    ({"text": "x", "k": 51}, 400, "k"),  # over the service's max_k
    ({"text": "x", "weights": {"visual": -1}}, 422, "weights.visual"),
    ({"text": "x", "weights": {"smell": 1}}, 422, "weights.smell"),
    ({"text": "x", "weights": {"text": 0}}, 422, "weights"),
    ({"text": "x", "filters": {"kind": "picture"}}, 422, "filters.kind"),
    ({"text": "x", "where": "1=1"}, 422, "where"),  # no raw SQL field exists
    ({"text": ""}, 422, "text"),
    ({"text": "x", "item": "0123456789abcdef"}, 400, "text or item"),
    ({"item": "../../etc/passwd"}, 422, "item"),
])
def test_bad_searches_name_the_field(env, body, status, field):
    before = versions(env)
    r = search(env, **body)
    assert r.status_code == status, r.text
    assert field in r.json()["error"]
    assert versions(env) == before


def test_nan_weights_and_malformed_json_are_refused(env):
    for raw in ('{"text": "x", "weights": {"visual": NaN}}', '{"text": "x", "weights": {"visual": 1e999}}',
                '{"text": "x",', "[1, 2]"):
        r = env.client.post("/api/search", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        assert r.json()["error"]


def test_filter_injection_is_only_ever_a_string(env):
    before = versions(env)
    for evil in ("x'; DROP TABLE items; --", "') OR 1=1 --", "%", "_"):
        r = search(env, text="music", k=5, filters={"title_contains": evil, "tags": [evil]})
        assert r.status_code == 200 and r.json()["hits"] == [], (evil, r.text)
    assert versions(env) == before and env.client.get("/healthz").json()["items"] == 9


def test_unknown_items_are_404(env):
    assert env.client.get("/api/items/0123456789abcdef").status_code == 404
    assert search(env, item="0123456789abcdef").status_code == 404
    for bad in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "ABC", "0123456789abcdef.mp4"):
        for url in (f"/api/items/{bad}", f"/media/{bad}"):
            assert env.client.get(url).status_code in (404, 422), url


# -- uploads ----------------------------------------------------------------------------
def test_search_by_uploaded_file(env):
    data = (env.lib / "pasta_night_small.mkv").read_bytes()
    r = env.client.post("/api/search/file", files={"file": ("clip.mkv", data)}, data={"options": '{"k": 3}'})
    assert r.status_code == 200, r.text
    # a copy of a catalogued file is recognised by its content and left out of its results
    hits = [h["item_id"] for h in r.json()["hits"]]
    assert hits[0] == env.ids["pasta_night"] and env.ids["pasta_night_small"] not in hits


def test_bad_uploads(env):
    before = versions(env)
    big = env.client.post("/api/search/file", files={"file": ("big.mp4", b"\0" * (2 << 20))})
    assert big.status_code == 413 and "limit" in big.json()["error"]
    junk = env.client.post("/api/search/file", files={"file": ("junk.mp4", b"not a video at all" * 100)})
    assert junk.status_code == 422 and junk.json()["error"]
    empty = env.client.post("/api/search/file", files={"file": ("empty.mp4", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    opts = env.client.post("/api/search/file", files={"file": ("a.mp4", b"x")}, data={"options": '{"k": 0}'})
    assert opts.status_code == 400 and "options: k" in opts.json()["error"]
    assert env.client.post("/api/search/file").status_code == 422
    assert versions(env) == before


# -- items and media --------------------------------------------------------------------
def test_item_metadata_presence_and_segments(env):
    item = env.client.get(f"/api/items/{env.ids['football_highlights']}").json()
    assert item["kind"] == "video" and item["duration"] > 0 and "football" in item["tags"]
    assert item["modalities"]["text"] == {"present": True, "random_weights": False}
    assert item["modalities"]["visual"]["random_weights"] is True
    segs = item["segments"]
    assert segs and all(s["seg_id"].startswith(item["item_id"] + ":") for s in segs)
    assert [s["start"] for s in segs] == sorted(s["start"] for s in segs)
    silent = env.client.get(f"/api/items/{env.ids['city_timelapse']}").json()
    assert silent["modalities"]["audio"]["present"] is False


def test_media_streams_with_range(env):
    iid = env.ids["football_highlights"]
    data = (env.lib / "football_highlights.mp4").read_bytes()
    full = env.client.get(f"/media/{iid}")
    assert full.status_code == 200 and full.content == data
    assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == "video/mp4"
    part = env.client.get(f"/media/{iid}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = env.client.get(f"/media/{iid}", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    past = env.client.get(f"/media/{iid}", headers={"Range": f"bytes={len(data) + 10}-"})
    assert past.status_code == 416


# -- recommendations and events -----------------------------------------------------------
def test_recommend_for_a_user_and_for_interests(env):
    r = env.client.post("/api/recommend", json={"user": "ana", "k": 3, "explain": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == "ana" and body["history"] > 0 and len(body["recommendations"]) == 3
    first = body["recommendations"][0]
    assert first["explanation"] and first["because"]["item_id"] in env.ids.values()
    assert first["kind"] in ("video", "audio") and first["because"]["title"]
    same = env.client.get("/api/users/ana/recommendations", params={"k": 3}).json()
    assert [x["item_id"] for x in same["recommendations"]] == [x["item_id"] for x in body["recommendations"]]
    cold = env.client.post("/api/recommend", json={"interests": "jazz, relaxing rain", "k": 2}).json()
    picked = {x["item_id"] for x in cold["recommendations"]}
    assert picked == {env.ids["jazz_piano_trio"], env.ids["rain_ambience"]}
    assert env.client.post("/api/recommend", json={"user": "nobody"}).status_code == 404
    assert env.client.post("/api/recommend", json={}).status_code == 400
    assert env.client.post("/api/recommend", json={"user": "ana", "diversity": 2}).status_code == 422
    users = env.client.get("/api/users").json()
    assert {u["user_id"] for u in users} >= {"ana", "ben"}


def test_random_modalities_weigh_nothing_unless_the_request_names_them(env):
    plain = env.client.post("/api/recommend", json={"user": "ana", "k": 3}).json()
    assert all(x["scores"]["visual"] == 0 and x["scores"]["audio"] == 0 for x in plain["recommendations"])
    assert any("weighs 0" in n for n in plain["notes"])
    asked = env.client.post("/api/recommend", json={"user": "ana", "k": 3,
                                                    "weights": {"audio": 1, "text": 1}}).json()
    assert any(x["scores"]["audio"] != 0 for x in asked["recommendations"])
    assert all(x["scores"]["visual"] == 0 for x in asked["recommendations"])
    bad = env.client.post("/api/recommend", json={"user": "ana", "weights": {"audio": 0}})
    assert bad.status_code == 422 and "weights" in bad.text


def test_an_event_changes_the_very_next_recommendation(env):
    first = env.client.post("/api/recommend", json={"user": "ben", "k": 3}).json()
    top = first["recommendations"][0]["item_id"]
    r = env.client.post("/api/events", json={"user_id": "ben", "item": top, "event": "like"})
    assert r.status_code == 200 and r.json() == {"received": 1, "stored": 1, "written": True, "rejected": []}
    after = env.client.post("/api/recommend", json={"user": "ben", "k": 3}).json()
    assert top not in [x["item_id"] for x in after["recommendations"]]  # seen now
    assert after["history"] == first["history"] + 1
    # a brand-new user exists from their first event on
    new = env.client.post("/api/events", json=[{"user": "zoe", "item": env.ids["jazz_piano_trio"],
                                                 "event": "like", "timestamp": "2026-12-01T10:00:00Z"}])
    assert new.status_code == 200
    zoe = env.client.post("/api/recommend", json={"user": "zoe", "k": 2, "explain": True}).json()
    assert zoe["history"] == 1
    assert zoe["recommendations"][0]["because"]["item_id"] == env.ids["jazz_piano_trio"]


def test_concurrent_event_posts_each_get_their_answer_and_the_next_list_reflects_them(env):
    before = env.client.get("/api/stats").json()["in_memory"]
    items = list(env.ids.values())

    def post(i: int) -> dict:
        with httpx.Client(base_url=env.client.base_url, timeout=30) as c:
            return c.post("/api/events", json=[{"user": f"crowd{i}", "item": items[i % len(items)],
                                                "event": "like"}]).json()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert answers == [{"received": 1, "stored": 1, "written": True, "rejected": []}] * 8
    after = env.client.get("/api/stats").json()["in_memory"]
    assert after["event_batches"] - before["event_batches"] == 8
    assert 1 <= after["event_commits"] - before["event_commits"] <= 8
    for i in range(8):
        rec = env.client.post("/api/recommend", json={"user": f"crowd{i}", "k": 3}).json()
        assert rec["history"] == 1
        assert items[i % len(items)] not in [x["item_id"] for x in rec["recommendations"]]


def test_concurrent_text_queries_are_answered_as_alone(env):
    queries = ["football match goals", "relaxing rain", "jazz piano", "cooking pasta"] * 2
    alone = [[h["item_id"] for h in search(env, text=q, k=3).json()["hits"]] for q in queries]
    before = env.client.get("/api/stats").json()["in_memory"]

    def ask(q: str) -> list[str]:
        with httpx.Client(base_url=env.client.base_url, timeout=60) as c:
            return [h["item_id"] for h in c.post("/api/search", json={"text": q, "k": 3}).json()["hits"]]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, queries))
    assert together == alone
    after = env.client.get("/api/stats").json()["in_memory"]
    assert after["texts"] - before["texts"] == 8 and 1 <= after["text_passes"] - before["text_passes"] <= 8


def test_event_batches_are_all_or_nothing_with_reasons_by_index(env):
    good = {"user": "yan", "item": env.ids["rain_ambience"], "event": "view", "value": 0.9}
    batch = [good, {**good, "item": "0123456789abcdef"}, {**good, "event": "love"}, {**good, "value": 7},
             {"user": "yan"}, "not an object", {**good, "colour": "red"}]
    before = versions(env)
    r = env.client.post("/api/events", json={"events": batch})
    assert r.status_code == 422
    body = r.json()
    assert body["written"] is False and body["stored"] == 0 and body["received"] == len(batch)
    assert body["error"].startswith("6 of 7 events rejected, nothing stored; event 1: unknown item")
    reasons = {x["index"]: x["reason"] for x in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "unknown item" in reasons[1] and "event" in reasons[2] and "value" in reasons[3]
    assert "item" in reasons[4] and "colour" in reasons[6]
    assert versions(env) == before
    assert env.client.post("/api/recommend", json={"user": "yan"}).status_code == 404
    kept = env.client.post("/api/events", json={"events": batch, "partial": True})
    assert kept.status_code == 200 and kept.json()["stored"] == 1 and len(kept.json()["rejected"]) == 6
    assert env.client.post("/api/recommend", json={"user": "yan"}).json()["history"] == 1


def test_malformed_event_bodies(env):
    before = versions(env)
    for raw in ("{", "", "42", '{"events": []}', '{"events": "x"}'):
        r = env.client.post("/api/events", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
    assert versions(env) == before


# -- security ---------------------------------------------------------------------------
def test_writes_need_the_token_when_one_is_set(env):
    event = {"user": "tok", "item": env.ids["rain_ambience"], "event": "like"}
    before = versions(env)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
        r = env.locked.post("/api/events", json=event, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert versions(env) == before
    ok = env.locked.post("/api/events", json=event, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["stored"] == 1
    assert env.locked.post("/api/search", json={"text": "rain", "k": 1}).status_code == 200  # reads stay open


def test_without_a_token_writes_come_only_from_this_machine(env):
    """An in-process client with a non-loopback peer address (no traffic leaves the process)."""
    app = create_app(replace(env.config, preload=False), env.service)
    event = {"user": "far", "item": env.ids["rain_ambience"], "event": "like"}

    async def from_afar() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mmrec") as far:
            return await far.post("/api/events", json=event), await far.get("/healthz")

    write, read = asyncio.run(from_afar())
    assert write.status_code == 403 and "--token" in write.json()["error"]
    assert read.status_code == 200
    assert env.client.post("/api/recommend", json={"user": "far"}).status_code == 404


def test_cors_is_off_unless_asked(env):
    origin = {"Origin": "http://app.example"}
    assert "access-control-allow-origin" not in env.client.get("/healthz", headers=origin).headers
    allowed = env.locked.get("/healthz", headers=origin).headers
    assert allowed["access-control-allow-origin"] == "http://app.example"
    other = env.locked.get("/healthz", headers={"Origin": "http://evil.example"}).headers
    assert "access-control-allow-origin" not in other


def test_the_service_refuses_to_listen_beyond_loopback_without_a_token(env):
    r = CliRunner().invoke(main, ["serve", "--db", str(env.db), "--host", "0.0.0.0"])
    assert r.exit_code == 1 and "--token" in r.output
    short = CliRunner().invoke(main, ["serve", "--db", str(env.db), "--host", "0.0.0.0", "--token", "abc"])
    assert short.exit_code == 1 and "too short" in short.output
    missing = CliRunner().invoke(main, ["serve", "--db", str(env.db.parent / "none.lance")])
    assert missing.exit_code == 1 and "no mmrec catalog" in missing.output


# -- consistency under writes -------------------------------------------------------------
def test_queries_during_an_ingest_see_consistent_versions(env, run_ffmpeg):
    """Searches keep answering while another writer adds files; item counts only grow and
    every hit they return is a stored item."""
    extra = env.lib / "more"
    extra.mkdir()
    for i in range(3):
        run_ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=10:duration={2 + i}",
                   "-f", "lavfi", "-i", f"sine=frequency={300 + 100 * i}:duration={2 + i}",
                   "-shortest", str(extra / f"extra_{i}.mp4"))
    done = threading.Event()
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            mmrec.Catalog(env.db).ingest(extra, preset="offline-tiny")
        except BaseException as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)
        finally:
            done.set()

    writer = threading.Thread(target=ingest)
    writer.start()
    counts, answered = [], 0
    while not done.is_set() or answered < 3:
        r = search(env, text="test pattern with a tone", k=50)
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert all(env.client.get(f"/api/items/{h['item_id']}").status_code == 200 for h in hits[:3])
        counts.append(env.client.get("/healthz").json()["items"])
        answered += 1
    writer.join()
    assert not errors, errors
    assert counts == sorted(counts) and counts[-1] == 12


def test_thumbnails_of_items_and_segments(env):
    iid = env.ids["mountain_travel_vlog"]
    poster = env.client.get(f"/thumbs/{iid}")
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content[:3] == b"\xff\xd8\xff"
    seg = env.client.get(f"/api/items/{iid}").json()["segments"][-1]
    one = env.client.get(seg["thumb_url"])
    assert one.status_code == 200 and one.content[:3] == b"\xff\xd8\xff"
    audio = env.client.get(f"/thumbs/{env.ids['rain_ambience']}")  # a waveform
    assert audio.status_code == 200 and audio.content[:3] == b"\xff\xd8\xff"
    other = env.ids["pasta_night"]
    assert env.client.get(f"/thumbs/{other}/{iid}:visual:0").status_code == 400  # not its segment
    assert env.client.get(f"/thumbs/{iid}/{iid}:visual:999").status_code == 404
    assert env.client.get("/thumbs/0123456789abcdef").status_code == 404


def test_several_worker_processes_serve_the_same_catalog(env):
    """`mmrec serve --workers 2`: uvicorn's worker processes each build the app from the
    config passed in the environment; writes from one are seen by the other's reads."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-c", "from mmrec.cli import run; run()", "serve", "--db", str(env.db),
            "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, proc.stderr.read()
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "mmrec serve --workers 2 did not answer"
                    time.sleep(0.3)
            hits = [c.post("/api/search", json={"text": "football match goals", "k": 1}).json()["hits"][0]
                    for _ in range(4)]
            assert {h["item_id"] for h in hits} == {env.ids["football_highlights"]}
            stored = c.post("/api/events", json={"user": "multi", "item": env.ids["guitar_lesson"],
                                                 "event": "like"})
            assert stored.status_code == 200 and stored.json()["stored"] == 1
            assert all(c.post("/api/recommend", json={"user": "multi"}).json()["history"] == 1
                       for _ in range(4))
            # events posted at once through both workers: each waits for the other's commit
            # (none is refused as busy), and each worker takes in the other's rows as appended
            base = f"http://127.0.0.1:{port}"

            def post(i: int) -> int:
                with httpx.Client(base_url=base, timeout=60) as one:  # a new connection: either worker
                    return one.post("/api/events", json={"user": "both", "item": env.ids["guitar_lesson"],
                                                         "event": "view", "value": 0.5,
                                                         "timestamp": 1.7e9 + i}).status_code

            with ThreadPoolExecutor(6) as pool:
                assert list(pool.map(post, range(30))) == [200] * 30
            for _ in range(6):
                with httpx.Client(base_url=base, timeout=60) as one:
                    assert one.post("/api/recommend", json={"user": "both"}).json()["history"] == 30
                    assert one.get("/api/stats").json()["in_memory"]["all_user_histories"] is True
    finally:
        proc.terminate()
        proc.wait(20)


def test_many_event_batches_are_compacted_in_the_background(env):
    """Each batch is one small file of the interactions table; past COMPACT_AFTER (counted
    every COMPACT_CHECK_EVERY commits) the service compacts them, and every stored event is
    still there."""
    from mmrec.serve.service import COMPACT_AFTER, COMPACT_CHECK_EVERY

    item = env.ids["guitar_lesson"]
    sent = COMPACT_AFTER + COMPACT_CHECK_EVERY
    for i in range(sent):
        r = env.client.post("/api/events", json={"user": "compact", "item": item, "event": "view",
                                                 "value": 0.5, "timestamp": 1.7e9 + i})
        assert r.status_code == 200
    deadline = time.monotonic() + 60
    while env.service.store.interaction_fragments() >= COMPACT_AFTER and time.monotonic() < deadline:
        time.sleep(0.2)
    assert env.service.store.interaction_fragments() < COMPACT_AFTER
    assert env.client.post("/api/recommend", json={"user": "compact", "k": 2}).json()["history"] == sent
