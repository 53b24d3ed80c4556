"""Crashes, Ctrl-C and concurrency never lose or corrupt data (real `mmrec ingest`
processes on the generated sample library, offline-tiny extractors)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mmrec
from mmrec.catalog.lock import LOCK_NAME
from mmrec.catalog.store import CatalogStore
from mmrec.cli import main
from mmrec.media.samples import BROKEN_NAME, make_sample_library

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    """The sample library (9 good files + a truncated download) in three subfolders: 27 good."""
    src = make_sample_library(tmp_path_factory.mktemp("src"), include_broken=True)[0].parent
    root = tmp_path_factory.mktemp("lib")
    for sub in ("a", "b", "c"):
        shutil.copytree(src, root / sub)
        # different bytes per copy (a remux with a tag), so each file is its own item
        for f in (root / sub).iterdir():
            if f.suffix == ".json":
                f.write_text(f.read_text().replace('"title": "', f'"title": "{sub} '))
            elif f.name != BROKEN_NAME:
                tagged = f.with_name("tagged" + f.suffix)
                subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(f), "-map", "0",
                                "-c", "copy", "-metadata", f"comment=copy {sub}", str(tagged)],
                               check=True)
                tagged.replace(f)
    return root


@pytest.fixture(scope="module")
def reference(lib, tmp_path_factory) -> dict[str, dict]:
    """An uninterrupted ingest: path -> item row plus its segment count (the result every
    other run must match)."""
    db = tmp_path_factory.mktemp("ref") / "ref.lance"
    mmrec.Catalog(db).ingest(lib, preset="offline-tiny")
    counts = _segment_counts(db)
    return {r["path"]: {**r, "n_segments": counts[r["id"]]}
            for r in CatalogStore.open(db).items.to_arrow().to_pylist()}


def _segment_counts(db: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for item_id in CatalogStore.open(db).segments.to_arrow().column("item_id").to_pylist():
        out[item_id] = out.get(item_id, 0) + 1
    return out


def _ingest_proc(lib: Path, db: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmrec.cli", "ingest", str(lib), "--db", str(db),
           "--preset", "offline-tiny", "--write-every", "1", "--workers", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def _items(db: Path) -> int:
    try:
        return CatalogStore.open(db).items.count_rows()
    except Exception:  # not created yet
        return 0


def _wait_for_items(db: Path, proc: subprocess.Popen, n: int, timeout: float = 240) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        count = _items(db)
        if count >= n or proc.poll() is not None:
            return count
        time.sleep(0.05)
    raise AssertionError("ingest made no progress")


def _assert_consistent(db: Path, reference: dict[str, dict]) -> None:
    """Exactly one row per good file, no orphan segments, vectors as in the reference."""
    store = CatalogStore.open(db)
    rows = store.items.to_arrow().to_pylist()
    assert len(rows) == len(reference) == 27
    assert len({r["id"] for r in rows}) == len({r["path"] for r in rows}) == 27
    counts = _segment_counts(db)
    assert set(counts) == {r["id"] for r in rows}  # no orphans, none missing
    for r in rows:
        ref = reference[r["path"]]
        assert r["id"] == ref["id"] and counts[r["id"]] == ref["n_segments"]
        np.testing.assert_allclose(r["fused"], ref["fused"], atol=1e-5)
    errors = store.errors.to_arrow().column("path").to_pylist()
    assert sorted(Path(p).name for p in errors) == [BROKEN_NAME] * 3


def test_sigkill_at_random_points_then_rerun_matches_an_uninterrupted_run(lib, reference, tmp_path):
    db = tmp_path / "killed.lance"
    rng = random.Random(1234)
    stored = []
    for _ in range(3):
        proc = _ingest_proc(lib, db)
        before = _items(db)
        _wait_for_items(db, proc, before + rng.randint(1, 4))
        time.sleep(rng.uniform(0.0, 0.4))  # land anywhere: mid-write, mid-embed, between files
        proc.kill()
        proc.wait(30)
        stored.append(_items(db))
    assert stored[-1] < 27, "the kills came too late to interrupt anything"
    proc = _ingest_proc(lib, db)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    _assert_consistent(db, reference)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(lib, reference, tmp_path):
    db = tmp_path / "interrupted.lance"
    proc = _ingest_proc(lib, db)
    _wait_for_items(db, proc, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 130, text
    assert "stopping after the file in hand" in text and "run the same command again" in text
    store = CatalogStore.open(db)
    n = store.items.count_rows()
    assert 2 <= n < 27
    assert set(store.segments.to_arrow().column("item_id").to_pylist()) == set(
        store.items.to_arrow().column("id").to_pylist())
    proc = _ingest_proc(lib, db)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert f"{27 - n + 3} files to embed, {n} unchanged" in err.decode()  # +3: the broken files
    _assert_consistent(db, reference)


def test_second_ingest_is_refused_and_queries_see_consistent_versions(lib, reference, tmp_path):
    db = tmp_path / "busy.lance"
    proc = _ingest_proc(lib, db)
    t0 = time.monotonic()
    while not (db / LOCK_NAME).exists() or not (db / LOCK_NAME).read_text().strip():
        assert time.monotonic() - t0 < 60 and proc.poll() is None
        time.sleep(0.05)
    result = CliRunner().invoke(main, ["ingest", str(lib), "--db", str(db), "--preset", "offline-tiny"])
    assert result.exit_code == 1
    assert f"pid {proc.pid}" in result.stderr and "writing to this catalog" in result.stderr

    catalog = mmrec.Catalog(db)
    seen: list[int] = []
    while proc.poll() is None:
        n = _items(db)
        if n:
            store = CatalogStore.open(db)
            hits = catalog.search(text="music", k=5).hits
            for h in hits:  # an item that is visible has all its segments
                assert store.segments.search().where(f"item_id = '{h.item_id}'").limit(1).to_list()
                assert h.path in reference
            seen.append(store.items.count_rows())
        time.sleep(0.1)
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert seen == sorted(seen), "a query saw the catalog go backwards"
    assert any(0 < n < 27 for n in seen), "no query ran while the ingest was writing"
    _assert_consistent(db, reference)
