"""--engine ray against the local engine, on real Ray (a local instance with 2 CPUs, then a
two-node cluster on this machine) and real LanceDB: the same catalog (ids, segments,
vectors, fingerprints, transcripts, errors rows), resume after a killed driver, a killed
worker retried, the same --all-users lists; and everything local works with Ray absent.

One Ray instance serves the module (Ray starts slowly); the cluster test comes last
because it replaces that instance. Libraries are the generated samples, offline-tiny.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import lance
import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster
from test_boundaries import ROOT, graph, under

import mmrec
from mmrec.catalog import CatalogStore, IngestOptions
from mmrec.media.samples import (
    BROKEN_NAME,
    INTERACTIONS_NAME,
    make_sample_library,
    make_spoken_sample,
    write_sample_interactions,
)

pytestmark = pytest.mark.slow

QUICK = IngestOptions(sources=(), thumbnails=False)  # no speech or OCR: the faster runs


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    """Five sample files (videos with sound, a silent video, music, noise), a spoken lecture
    (speech to transcribe) and a truncated download."""
    src = make_sample_library(tmp_path_factory.mktemp("samples"), include_broken=True)[0].parent
    root = tmp_path_factory.mktemp("lib")
    for name in ("pasta_night.mp4", "city_timelapse.webm", "jazz_piano_trio.mp3", "rain_ambience.flac",
                 "football_highlights.mp4", BROKEN_NAME):
        shutil.copy2(src / name, root / name)
        if (src / name).with_suffix(".json").exists():
            shutil.copy2((src / name).with_suffix(".json"), (root / name).with_suffix(".json"))
    make_spoken_sample(root)
    write_sample_interactions(root)
    return root


@pytest.fixture(scope="module")
def ref_db(lib, tmp_path_factory) -> Path:
    """The local engine's catalog of the library, with the set's text sources (speech, OCR)."""
    db = tmp_path_factory.mktemp("ref") / "ref.lance"
    mmrec.Catalog(db).ingest(lib, preset="offline-tiny", options=IngestOptions(thumbnails=False))
    return db


@pytest.fixture(scope="module")
def ref_quick(lib, tmp_path_factory) -> dict:
    """The local engine's catalog of the library without text sources (the faster runs)."""
    db = tmp_path_factory.mktemp("ref_quick") / "ref.lance"
    mmrec.Catalog(db).ingest(lib, preset="offline-tiny", options=QUICK)
    return snapshot(db)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def snapshot(db: Path) -> dict:
    """A catalog as comparable data: item rows by path, segments by seg_id, errors rows."""
    store = CatalogStore.open(db)
    items = store.items.to_arrow().to_pylist()
    by_path = {r["path"]: r for r in items}
    assert len(by_path) == len(items), "two rows for one path"
    segments = {r["seg_id"]: r for r in store.segments.to_arrow().to_pylist()}
    errors = sorted((r["path"], r["stage"], r["error"], r["message"])
                    for r in store.errors.to_arrow().to_pylist())
    return {"items": by_path, "segments": segments, "errors": errors,
            "rows": store.items.count_rows(), "segment_rows": store.segments.count_rows()}


def assert_same_catalog(got: dict, want: dict) -> None:
    """Same paths and ids, columns equal (vectors within 1e-5), the same segments per item,
    no duplicate or orphan rows, and the same errors rows."""
    assert sorted(got["items"]) == sorted(want["items"])
    assert got["rows"] == want["rows"] and got["segment_rows"] == len(got["segments"])
    for path, w in want["items"].items():
        g = got["items"][path]
        for col, value in w.items():
            if col == "ingested_at":
                continue
            if col == "fused" or col.endswith("_vec"):
                assert (g[col] is None) == (value is None), (path, col)
                if value is not None:
                    np.testing.assert_allclose(g[col], value, atol=1e-5, err_msg=f"{path} {col}")
            else:
                assert g[col] == value, (path, col)
    count = Counter(s["item_id"] for s in got["segments"].values())
    assert count == Counter(s["item_id"] for s in want["segments"].values())
    assert set(count) == {r["id"] for r in got["items"].values()}  # no orphan segments
    for seg_id, w in want["segments"].items():
        g = got["segments"][seg_id]
        assert (g["modality"], g["start"], g["end"], g["label"], g["text"]) == \
            (w["modality"], w["start"], w["end"], w["label"], w["text"])
        np.testing.assert_allclose(g["vector"], w["vector"], atol=1e-5)
    assert got["errors"] == want["errors"]


def test_ray_ingest_equals_the_local_engine(lib, ref_db, local_ray, tmp_path):
    """Hash, probe, decode (speech and on-screen text included) and embed on Ray, segments
    written as Lance fragments by the workers and committed by the driver: the catalog the
    local engine makes, and a rerun skips every file."""
    db = tmp_path / "ray.lance"
    events: list[str] = []
    summary = mmrec.Catalog(db).ingest(lib, preset="offline-tiny", engine="ray",
                                       options=IngestOptions(thumbnails=False, batch_files=4),
                                       progress=lambda e, d: events.append(e))
    want = snapshot(ref_db)
    assert_same_catalog(snapshot(db), want)
    assert any(r["transcript"] for r in want["items"].values())  # the text sources ran
    assert [f.path for f in summary.failed] == [str((lib / BROKEN_NAME).resolve())]
    assert len(summary.ingested) == 6 and events.count("embedded") == 6 and events[0] == "planned"
    assert summary.timings["model"] > 0 and summary.timings["decode"] > 0
    again = mmrec.Catalog(db).ingest(lib, preset="offline-tiny", engine="ray",
                                     options=IngestOptions(thumbnails=False))
    assert again.ingested == [] and again.unchanged == 6 and len(again.failed) == 1
    assert_same_catalog(snapshot(db), want)


DRIVER = """
import sys
import mmrec
from mmrec.catalog import IngestOptions
lib, db, address = sys.argv[1:4]
mmrec.Catalog(db).ingest(lib, preset="offline-tiny", engine="ray", address=address,
                         options=IngestOptions(batch_files=1, write_batch=1, sources=(), thumbnails=False))
"""


def test_a_driver_killed_mid_run_is_completed_by_the_next_run(lib, ref_quick, local_ray, tmp_path):
    """A Ray ingest (its own driver process on the module's Ray instance) killed with SIGKILL
    after its first commit: the rerun completes the catalog with exactly one row per good
    file, no orphan segments, and the local engine's vectors."""
    db = tmp_path / "killed.lance"
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(lib), str(db), address],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 150
        while _rows(db) < 1:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no commit within 150 s"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert _rows(db) < len(ref_quick["items"])  # killed mid-run, not after it
    mmrec.Catalog(db).ingest(lib, preset="offline-tiny", engine="ray", options=QUICK)
    assert_same_catalog(snapshot(db), ref_quick)


def _rows(db: Path) -> int:
    try:
        return CatalogStore.open(db).items.count_rows()
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def test_recommend_all_users_on_ray_equals_local(lib, ref_db, local_ray, tmp_path):
    """Users ranked in blocks on Ray (the items in the object store once): the local lists,
    as Parquet parts and as a Lance dataset."""
    catalog = mmrec.Catalog(ref_db)
    catalog.import_interactions(lib / INTERACTIONS_NAME, skip_bad=True)  # rows on the other samples
    local = catalog.recommend_all(tmp_path / "local.parquet", k=4)
    as_parquet = catalog.recommend_all(tmp_path / "ray.parquet", k=4, engine="ray")
    as_lance = catalog.recommend_all(tmp_path / "ray.lance", k=4, engine="ray")
    want = pq.read_table(tmp_path / "local.parquet")
    assert want.num_rows == local.rows == as_parquet.rows == as_lance.rows > 0
    for got in (pq.read_table(tmp_path / "ray.parquet"), lance.dataset(tmp_path / "ray.lance").to_table()):
        assert got.schema.remove_metadata() == want.schema.remove_metadata()
        assert _lists(got).keys() == _lists(want).keys()
        for user, items in _lists(want).items():
            assert set(_lists(got)[user]) == set(items), user
            for item, score in items.items():
                assert abs(_lists(got)[user][item] - score) < 1e-5


def _lists(t) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in t.select(["user_id", "item_id", "score"]).to_pylist():
        out.setdefault(r["user_id"], {})[r["item_id"]] = r["score"]
    return out


RAY_ABSENT = r"""
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "lance_ray"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())  # as if mmrec[ray] were not installed
from click.testing import CliRunner
from mmrec.cli import main

def run(*args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, (args, r.output, r.stderr)
    return r.output + r.stderr

lib, db, out = sys.argv[1:4]
run("ingest", lib, "--db", db, "--preset", "offline-tiny", "--no-asr", "--no-ocr")
run("stats", "--db", db)
run("query", "--db", db, "--text", "jazz piano", "-k", "2")
run("index", "--db", db)
run("interactions", "import", f"{lib}/interactions.csv", "--db", db, "--skip-bad")
run("recommend", "--db", db, "--user", "ben", "-k", "2")
run("recommend", "--db", db, "--all-users", "--out", out, "-k", "2")
run("evaluate", "--db", db, "--interactions", f"{lib}/interactions.csv", "-k", "2")
run("probe", f"{lib}/pasta_night.mp4")
for args in (("ingest", lib, "--db", db, "--engine", "ray"),
             ("recommend", "--db", db, "--all-users", "--out", out, "--engine", "ray")):
    assert "Ray is not installed: pip install 'mmrec[ray]'" in run(*args, code=1)
import mmrec
loaded = [m for m in sys.modules if m.split(".")[0] in ("ray", "lance_ray")]
assert not loaded, loaded
print("local without ray: ok")
"""


def test_everything_local_works_without_ray(lib, tmp_path):
    """With ray and lance_ray unimportable: import mmrec and the local commands work, and
    --engine ray names the install."""
    out = subprocess.run([sys.executable, "-c", RAY_ABSENT, str(lib), str(tmp_path / "c.lance"),
                          str(tmp_path / "recs.parquet")], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and "local without ray: ok" in out.stdout, out.stderr[-3000:]


def test_only_the_distributed_package_imports_ray():
    """Ray and lance-ray are imported by mmrec/distributed/ only (an optional extra); Lance
    itself by that and the catalog only (everything else goes through LanceDB)."""
    edges = graph(ROOT)
    bad = [f"{e.where} imports {e.module}" for e in edges
           if any(under(e.module, m) for m in ("ray", "lance_ray"))
           and not under(e.importer, "mmrec.distributed")]
    bad += [f"{e.where} imports {e.module}" for e in edges if under(e.module, "lance")
            and not any(under(e.importer, p) for p in ("mmrec.distributed", "mmrec.catalog"))]
    assert bad == []


def test_a_two_node_cluster_survives_a_killed_worker(lib, ref_quick, local_ray, tmp_path):
    """A simulated two-node cluster (ray.cluster_utils.Cluster): an embed worker process is
    killed mid-batch; Ray restarts it and retries the batch, and the catalog still equals the
    local engine's, with exactly one row per good file."""
    ray.shutdown()  # the module's local instance makes way for the cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2)
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
        cluster.wait_for_nodes()
        killed: list[int] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_first_busy_embedder, args=(killed, stop), daemon=True)
        killer.start()
        db = tmp_path / "cluster.lance"
        summary = mmrec.Catalog(db).ingest(lib, preset="offline-tiny", engine="ray", ray_workers=2,
                                           options=IngestOptions(batch_files=1, sources=(),
                                                                 thumbnails=False))
        stop.set()
        killer.join()
        assert killed, "no embed worker was seen busy, so none was killed"
        assert len(summary.ingested) == len(ref_quick["items"])
        assert_same_catalog(snapshot(db), ref_quick)
    finally:
        ray.shutdown()
        cluster.shutdown()


def _kill_first_busy_embedder(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first embed actor process seen running a batch (Ray names the process
    after its task: ray::MapWorker(MapBatches(EmbedActor)).submit)."""
    while not stop.wait(0.05) and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"EmbedActor)).submit" in title:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
