"""`serve` benchmark: `mmrec serve` under a bounded load, per endpoint and concurrency.

A synthetic catalog (the offline-tiny layout: its text towers answer text queries; 100,000
items, --quick 2,000) with synthetic users and interactions, the ANN index built when the
catalog is large enough for search to use it; then `mmrec serve` in its own process on
127.0.0.1 and a load generator in this one: for each endpoint and concurrency 1, 8 and 32,
a fixed number of requests within a time cap, latency p50/p95/p99, throughput and errors.
"event -> recommendation" posts a like and asks for the user's list, and counts it an
error unless the liked item has left the list (seen items are excluded): the time until a
recommendation reflects the event.

The load generator shares the machine's cores with the service, so it is kept light: the
standard library's HTTP client on one keep-alive connection per client thread (httpx
cost ~0.7 ms of CPU a request, five times as much). Each client warms up with a few
untimed requests, and the service's own CPU time per request is reported beside the
latencies: with it the figures say what bounds them.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .common import Report
from .query import _texts, build_catalog

SET = "offline-tiny"
CONCURRENCY = (1, 8, 32)
USERS, EVENTS_PER_USER = 500, 20
GOALS = {  # endpoint -> (concurrency, p95 ms) of the issue, at 100k items
    "search by item": (8, 30.0), "text search": (8, 150.0),
    "event -> recommendation": (8, 50.0), "recommend": (8, 60.0),
}
GOAL_ITEMS = 100_000
WARMUP = 5  # untimed requests per client before each case


def _layout_dims() -> list[tuple[str, int]]:
    from mmrec.extractors import presets, set_modalities

    return [(m, presets.get(p).dim) for p, m in set_modalities(SET).items()]


def build(path: Path, n: int) -> list[str]:
    """The synthetic catalog with users' interactions (and its index when n is large);
    returns the item ids."""
    from mmrec.search import MIN_INDEX_ROWS, build_indexes

    store = build_catalog(path, n, _layout_dims())
    store.set_meta({"preset": SET})
    add_segments(store)
    rng = np.random.default_rng(7)
    ids = [f"{i:032x}" for i in range(n)]
    now = time.time()
    rows = []
    for u in range(USERS):
        for j, i in enumerate(rng.integers(0, n, EVENTS_PER_USER)):
            rows.append({"key": f"{u}:{j}", "user_id": f"user{u}", "item_id": ids[i],
                         "event": "like" if j % 3 else "view", "value": None,
                         "timestamp": now - 3600 * (EVENTS_PER_USER - j), "text": None, "source": "bench"})
    store.add_interactions(rows)
    if n >= MIN_INDEX_ROWS * 40:
        build_indexes(store)
    return ids


def add_segments(store: Any, batch: int = 20_000, seed: int = 11) -> None:
    """One segment per modality per item, as an ingest makes them: that block of the
    item's fused vector, moved a little and made unit again, the other blocks zero."""
    import pyarrow as pa

    from mmrec.catalog import segments_schema

    rng = np.random.default_rng(seed)
    schema = segments_schema(store.layout)
    t = store.items.to_lance().to_table(columns=["id", "fused", "duration"])
    fused = np.asarray(t.column("fused").combine_chunks().values, np.float32).reshape(t.num_rows, -1)
    ids, durations = t.column("id").to_pylist(), t.column("duration").to_numpy()
    for lo in range(0, t.num_rows, batch):
        hi = min(lo + batch, t.num_rows)
        parts = []
        for b in store.layout.blocks:
            vec = np.zeros((hi - lo, store.layout.dim), np.float32)
            cols = slice(b.offset, b.offset + b.dim)
            block = fused[lo:hi, cols] + rng.normal(0, 0.02, (hi - lo, b.dim)).astype(np.float32)
            vec[:, cols] = block / np.linalg.norm(block, axis=1, keepdims=True).clip(1e-9)
            start = rng.uniform(0, 1, hi - lo) * durations[lo:hi] * 0.8
            parts.append(pa.table({
                "seg_id": [f"{i}:{b.modality}:0" for i in ids[lo:hi]], "item_id": ids[lo:hi],
                "modality": [b.modality] * (hi - lo), "start": start, "end": start + 10.0,
                "label": [""] * (hi - lo),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), store.layout.dim),
                "text": pa.nulls(hi - lo, pa.string())}, schema=schema))
        store.segments.add(pa.concat_tables(parts))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`mmrec serve` on 127.0.0.1 in a child process, stopped on exit."""

    def __init__(self, db: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-c", "from mmrec.cli import run; run()", "serve", "--db", str(db),
                "--port", str(self.port), "--preset", SET, "--max-k", "100"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mmrec serve exited: {self.proc.stderr.read()[-500:]}")
            try:
                if Client(self.url).get("/healthz").status_code == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("mmrec serve did not answer /healthz within 180 s")

    def cpu_s(self) -> float:
        """CPU seconds the service process has used so far (user + system, from /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not Linux: no figure
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Reply:
    """A response: its status and its JSON body."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self._body = status, body

    def json(self) -> Any:
        return json.loads(self._body)


class Client:
    """One keep-alive HTTP/1.1 connection to the service, reopened after a failure."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        try:
            self.conn.request(method, path, body, headers)
            r = self.conn.getresponse()
            return Reply(r.status, r.read())
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise

    def get(self, path: str) -> Reply:
        return self._send("GET", path, None, {})

    def post(self, path: str, json: Any) -> Reply:  # noqa: A002 - httpx's name for it
        return self._send("POST", path, _dumps(json), {"Content-Type": "application/json"})

    def close(self) -> None:
        self.conn.close()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


Request = Callable[[Any, int], "bool | float"]


def load(url: str, request: Request, total: int, concurrency: int, max_s: float,
         warmup: int = WARMUP) -> dict[str, Any]:
    """`total` calls of request(client, i) over `concurrency` threads, stopping at max_s,
    after `warmup` untimed calls per thread. request returns False (or raises) for an
    error, True for success (the call is timed), or the milliseconds of the part of it
    that counts."""
    counter = itertools.count()
    lock = threading.Lock()
    ms: list[float] = []
    errors = [0]
    stop = time.monotonic() + max_s

    def worker(n: int) -> None:
        client = Client(url)
        try:
            for j in range(warmup):
                try:
                    request(client, total + n * warmup + j)
                except Exception:  # noqa: BLE001, S112 - a warm-up call is not counted
                    continue
            while time.monotonic() < stop:
                with lock:
                    i = next(counter)
                if i >= total:
                    return
                t = time.perf_counter()
                try:
                    got = request(client, i)
                except Exception:  # noqa: BLE001 - a failed request is a counted error
                    got = False
                took = got if type(got) is float else (time.perf_counter() - t) * 1e3
                with lock:
                    ms.append(took)
                    errors[0] += got is False
        finally:
            client.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker, n) for n in range(concurrency)]:
            f.result()
    wall = time.perf_counter() - t0
    arr = np.asarray(ms or [float("nan")])
    return {"requests": len(ms), "errors": errors[0], "seconds": wall, "per_s": len(ms) / wall,
            "p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
            "p99_ms": float(np.percentile(arr, 99))}


def scenarios(ids: list[str], seed: int = 3) -> dict[str, Request]:
    """endpoint label -> one request of it (i: the request's number)."""
    rng = np.random.default_rng(seed)
    items = [ids[i] for i in rng.integers(0, len(ids), 4096)]
    texts = _texts(512, seed)

    def ok(r: Any) -> bool:
        return r.status_code == 200

    def event_then_recommend(c: Any, i: int) -> bool | float:
        """The like and the list after it (timed), once the list before it was read."""
        user = f"user{i % USERS}"
        top = c.post("/api/recommend", json={"user": user, "k": 1, "explain": False}).json()
        liked = top["recommendations"][0]["item_id"]
        t = time.perf_counter()
        if not ok(c.post("/api/events", json={"user_id": user, "item": liked, "event": "like"})):
            return False
        after = c.post("/api/recommend", json={"user": user, "k": 10, "explain": False})
        took = (time.perf_counter() - t) * 1e3
        reflected = ok(after) and liked not in [x["item_id"] for x in after.json()["recommendations"]]
        return took if reflected else False

    return {
        "search by item": lambda c, i: ok(c.post("/api/search", json={"item": items[i % 4096], "k": 10})),
        "text search": lambda c, i: ok(c.post("/api/search", json={"text": texts[i % 512], "k": 10})),
        "recommend": lambda c, i: ok(c.post("/api/recommend", json={"user": f"user{i % USERS}", "k": 10,
                                                                     "explain": True})),
        "event -> recommendation": event_then_recommend,
    }


def run(quick: bool, out: Path, device: str, items: int | None = None) -> dict[str, Any]:
    """Serve a synthetic catalog and load it; writes serve.json / serve.png under out."""
    rep = Report("serve", device, quick)
    n = items or (2_000 if quick else GOAL_ITEMS)
    total, max_s = (8, 20.0) if quick else (400, 60.0)
    concurrency = CONCURRENCY[:2] if quick else CONCURRENCY
    db = out / "catalogs" / f"serve-{n}.lance"
    if db.exists():  # events of an earlier run changed its users
        shutil.rmtree(db)
    t0 = time.perf_counter()
    ids = build(db, n)
    rep.params = {"items": n, "preset": SET, "users": USERS, "interactions": USERS * EVENTS_PER_USER,
                  "requests_per_case": total, "max_seconds_per_case": max_s, "concurrency": list(concurrency),
                  "warmup_per_client": WARMUP, "client": "http.client, one keep-alive connection per thread",
                  "catalog_build_s": time.perf_counter() - t0, "host": "127.0.0.1"}
    cases = scenarios(ids)
    with Server(db) as server:
        for label, request in cases.items():
            for c in concurrency:
                cpu = server.cpu_s()
                row = load(server.url, request, total, c, max_s)
                calls = row["requests"] + c * WARMUP  # the warm-up calls used the service too
                row["server_cpu_ms"] = (server.cpu_s() - cpu) * 1e3 / max(calls, 1)
                rep.rows.append({"endpoint": label, "concurrency": c, **row})
    for label, (c, goal) in GOALS.items():
        row = next(r for r in rep.rows if r["endpoint"] == label and r["concurrency"] == c)
        if n < GOAL_ITEMS:
            rep.goal(f"{label} p95 <= {goal:.0f} ms at concurrency {c}, 100k items", None,
                     f"{n} items only (p95 {row['p95_ms']:.1f} ms)")
        else:
            met = row["p95_ms"] <= goal and row["errors"] == 0
            rep.goal(f"{label} p95 <= {goal:.0f} ms at concurrency {c}, 100k items", met,
                     f"p95 {row['p95_ms']:.1f} ms, {row['errors']} errors, {row['per_s']:.0f} req/s")
    cols = ["endpoint", "concurrency", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
            "server CPU ms"]
    table = [[r["endpoint"], r["concurrency"], r["requests"], r["errors"], r["per_s"], r["p50_ms"],
              r["p95_ms"], r["p99_ms"], r["server_cpu_ms"]] for r in rep.rows]
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), f"mmrec serve, {n} items, loopback")


def _plot(ax: Any, rows: list[dict[str, Any]]) -> None:
    for label in dict.fromkeys(r["endpoint"] for r in rows):
        pts = [(r["concurrency"], r["p95_ms"]) for r in rows if r["endpoint"] == label]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="p95 latency, ms")
