"""`mmrec interactions import`, `mmrec recommend`, `mmrec evaluate` end to end on the
sample library and its sample interactions (offline-tiny extractors)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cli_run import run

from mmrec.catalog.store import CatalogStore
from mmrec.media.samples import INTERACTIONS_NAME, make_sample_library, write_sample_interactions


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    lib = make_sample_library(tmp_path_factory.mktemp("lib"))[0].parent
    write_sample_interactions(lib)
    db = tmp_path_factory.mktemp("db") / "cat.lance"
    run("ingest", lib, "--db", db, "--preset", "offline-tiny")
    _, out, _ = run("interactions", "import", lib / INTERACTIONS_NAME, "--db", db, "--json")
    report = json.loads(out)
    assert report["imported"] == report["rows"] == 20 and report["rejected"] == []
    return lib, db


def history(lib: Path, user: str) -> dict[str, str]:
    with (lib / INTERACTIONS_NAME).open() as f:
        return {r["item"]: r["event"] for r in csv.DictReader(f) if r["user_id"] == user}


def recommend(db: Path, *args: object) -> list[dict]:
    _, out, _ = run("recommend", "--db", db, "--json", *args)
    return json.loads(out)


def test_reimport_adds_nothing(setup):
    lib, db = setup
    _, out, _ = run("interactions", "import", lib / INTERACTIONS_NAME, "--db", db, "--json")
    assert json.loads(out)["imported"] == 0
    assert CatalogStore.open(db).counts()["interactions"] == 20


def test_bad_rows_are_rejected_with_line_numbers_and_nothing_is_written(setup, tmp_path):
    lib, db = setup
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item,event,value,timestamp,text\n"
                   f"zed,{lib / 'jazz_piano_trio.mp3'},like,,2026-01-02T10:00:00Z,\n"
                   "zed,not_in_catalog.mp4,like,,2026-01-01,\n"
                   f"zed,{lib / 'jazz_piano_trio.mp3'},love,,2026-01-01,\n"
                   f"zed,{lib / 'jazz_piano_trio.mp3'},view,1.5,2026-01-01,\n")
    code, _, err = run("interactions", "import", bad, "--db", db, ok=False)
    assert code == 1
    assert "bad.csv:3:" in err and "not_in_catalog.mp4" in err
    assert "bad.csv:4:" in err and "love" in err and "bad.csv:5:" in err
    assert "nothing was stored" in err
    assert CatalogStore.open(db).counts()["interactions"] == 20
    code, _, err = run("recommend", "--db", db, "--user", "zed", ok=False)
    assert code == 1 and "no interactions for user 'zed'" in err


def test_malformed_file_fails_cleanly(setup, tmp_path):
    _, db = setup
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\xff\xfe\x00garbage\x00\n")
    code, _, err = run("interactions", "import", junk, "--db", db, ok=False)
    assert code == 1 and "junk.csv" in err and "Traceback" not in err
    assert CatalogStore.open(db).counts()["interactions"] == 20


def test_recommend_for_a_user_with_explanations(setup):
    lib, db = setup
    seen = history(lib, "ana")
    positive = {p for p, e in seen.items() if e in ("like", "view", "share", "comment")}
    recs = recommend(db, "--user", "ana", "-k", "4", "--explain")
    assert len(recs) == 4 and [r["rank"] for r in recs] == [1, 2, 3, 4]
    for r in recs:
        assert {"rank", "item_id", "path", "score", "scores", "explanation", "because"} <= set(r)
        assert Path(r["path"]).name not in seen  # --exclude-seen is the default
        assert set(r["scores"]) == {"visual", "audio", "text"}
        assert Path(r["because"]["path"]).name in positive
        assert "you" in r["explanation"] and any(m in r["explanation"] for m in r["scores"])
    with_seen = recommend(db, "--user", "ana", "-k", "9", "--include-seen")
    assert {Path(r["path"]).name for r in with_seen} & set(seen)


def test_diversity_zero_is_score_order(setup):
    _, db = setup
    recs = recommend(db, "--user", "eve", "-k", "5", "--diversity", "0", "--popularity-weight", "0",
                     "--freshness-weight", "0")
    relevance = [sum(r["scores"].values()) for r in recs]
    assert relevance == sorted(relevance, reverse=True)


def test_cold_start_from_interests(setup):
    _, db = setup
    recs = recommend(db, "--interests", "jazz piano music", "-k", "3")
    assert recs[0]["path"].endswith("jazz_piano_trio.mp3")
    code, _, err = run("recommend", "--db", db, "--interests", " , ", ok=False)
    assert code != 0 and "interests" in err


def test_new_items_are_recommendable_at_once(setup, tmp_path):
    lib, db = setup
    copy = tmp_path / "cat.lance"
    shutil.copytree(db, copy)
    fresh = tmp_path / "new"
    fresh.mkdir()
    shutil.copy(lib / "guitar_lesson.wav", fresh / "ukulele_basics.wav")
    (fresh / "ukulele_basics.wav").write_bytes((fresh / "ukulele_basics.wav").read_bytes() + b"\0" * 64)
    (fresh / "ukulele_basics.json").write_text(json.dumps(
        {"title": "Ukulele basics", "description": "Strumming patterns for ukulele beginners."}))
    run("ingest", fresh, "--db", copy)
    recs = recommend(copy, "--interests", "ukulele strumming", "-k", "1")
    assert recs[0]["path"].endswith("ukulele_basics.wav")


def test_all_users_to_parquet(setup, tmp_path):
    lib, db = setup
    out = tmp_path / "recs.parquet"
    _, text, _ = run("recommend", "--db", db, "--all-users", "--out", out, "-k", "3")
    assert "5 users" in text
    table = pq.read_table(out).to_pylist()
    assert {r["user_id"] for r in table} == {"ana", "ben", "cleo", "dan", "eve"}
    assert len(table) == 15
    for r in table:
        assert Path(r["path"]).name not in history(lib, r["user_id"])
        assert {"rank", "item_id", "score", "score_visual", "score_audio", "score_text"} <= set(r)
    code, _, err = run("recommend", "--db", db, "--all-users", ok=False)
    assert code != 0 and "--out" in err


@pytest.mark.parametrize("args, needle", [
    (["--user", "ana", "-k", "0"], "--k"),
    ([], "--user"),
    (["--user", "ana", "--diversity", "2"], "--diversity"),
])
def test_bad_recommend_arguments(setup, args, needle):
    _, db = setup
    code, _, err = run("recommend", "--db", db, *args, ok=False)
    assert code != 0 and needle in err


def test_evaluate_against_baselines(setup):
    lib, db = setup
    _, out, _ = run("evaluate", "--db", db, "--interactions", lib / INTERACTIONS_NAME, "-k", "3",
                    "--json")
    report = json.loads(out)
    assert [m["method"] for m in report["methods"]] == ["mmrec", "popularity", "random"]
    assert report["users"] >= 4 and report["k"] == 3
    for m in report["methods"]:
        for key in ("precision", "recall", "f1", "ndcg", "mrr", "coverage"):
            assert 0.0 <= m[key] <= 1.0
        assert m["novelty"] >= 0.0
    _, table, _ = run("evaluate", "--db", db, "--interactions", lib / INTERACTIONS_NAME,
                      "--holdout", "0.3")
    assert "ndcg@10" in table and "popularity" in table
    code, _, err = run("evaluate", "--db", db, "--interactions", lib / INTERACTIONS_NAME,
                       "--holdout", "soon", ok=False)
    assert code != 0 and "holdout" in err
