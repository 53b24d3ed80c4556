"""Every `mmrec bench` benchmark runs with --quick on the CPU and writes its JSON and PNG.

Tiny sizes and tiny random models: this checks the harness, not the numbers (no timing
assertions). All four share one output directory, so the quick media library is
generated once.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmrec.commands.bench_cmd import bench_command

COMMON = {"benchmark", "quick", "device", "environment", "params", "results", "goals", "notes",
          "table", "files"}
ROW_KEYS = {
    "decode": {"kind", "workers", "per_s", "realtime_x", "median_s", "min_s", "max_s"},
    "extract": {"preset", "unit", "precision", "batch", "items_per_s", "median_s", "random_weights"},
    "ingest": {"files", "seconds", "files_per_s", "media_hours_per_hour", "stages", "bottleneck", "gpu"},
    "score": {"backend", "U", "N", "D", "k", "dtype", "median_ms", "min_ms", "max_ms", "gb_s", "tflop_s",
              "x_floor", "peak_bytes", "check"},
    "query": {"items", "exact_vector_ms", "exact_item_ms", "ann_vector_ms", "ann_item_ms", "ann_text_ms",
              "recall_at_10", "recall_text_at_10", "index_build_s"},
    "startup": {"command", "argv", "median_s", "runs_s", "goal_s", "imports_s", "rest_s", "top_imports"},
    "serve": {"endpoint", "concurrency", "requests", "errors", "per_s", "p50_ms", "p95_ms", "p99_ms",
              "server_cpu_ms"},
}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("bench")


@pytest.mark.parametrize("name", ["score", "decode", "extract", "ingest", "query", "startup", "serve"])
def test_quick_benchmark_writes_json_and_png(name, out_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(bench_command, [name, "--quick", "--out", str(out_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads((out_dir / f"{name}.json").read_text())
    assert COMMON <= set(data), set(data) ^ COMMON
    assert data["benchmark"] == name and data["quick"] is True and data["device"] == "cpu"
    env = data["environment"]
    assert env["date"] and env["cpu"] and env["cpu_count"] and "numpy" in env["versions"]
    assert data["results"], "no rows measured"
    for row in data["results"]:
        assert ROW_KEYS[name] <= set(row), ROW_KEYS[name] - set(row)
    assert len(data["table"]["rows"]) >= 1 and data["table"]["columns"]
    png = out_dir / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["files"] == {"json": str(out_dir / f"{name}.json"), "png": str(png)}
    assert data["table"]["title"] in result.output  # the table is printed last


def test_startup_times_every_command_and_names_its_imports(out_dir):
    data = json.loads((out_dir / "startup.json").read_text())
    rows = {r["command"]: r for r in data["results"]}
    assert list(rows) == ["help", "stats", "text query", "text query, text tower only"]
    assert {g["goal"] for g in data["goals"]} == {"cold help <= 0.5 s", "cold stats <= 1.5 s",
                                                  "cold text query <= 6.0 s"}
    modules = {r["command"]: {t["module"] for t in r["top_imports"]} for r in data["results"]}
    assert "mmrec.cli" in modules["help"] and "lancedb" in modules["stats"]
    assert "torch" in modules["text query"] and "open_clip" not in modules["text query, text tower only"]
    assert data["params"]["bytecode_present"] in (True, False)


def test_serve_loads_every_endpoint_without_errors(out_dir):
    data = json.loads((out_dir / "serve.json").read_text())
    cases = {(r["endpoint"], r["concurrency"]): r for r in data["results"]}
    assert {e for e, _ in cases} == {"search by item", "text search", "recommend", "event -> recommendation"}
    assert {c for _, c in cases} == {1, 8}
    assert all(r["errors"] == 0 and r["requests"] == 8 and r["p95_ms"] > 0 for r in cases.values())
    assert all(r["server_cpu_ms"] > 0 for r in cases.values())  # the service's own CPU, from /proc
    assert all(g["met"] is None for g in data["goals"])  # a quick run is too small to judge


def test_score_quick_checks_every_backend_against_the_reference(out_dir):
    data = json.loads((out_dir / "score.json").read_text())
    backends = {r["backend"] for r in data["results"]}
    assert {"numba-cpu", "numpy-matmul", "numpy-ref"} <= backends
    bad = [r for r in data["results"] if not r["check"]["ok"]]
    assert not bad, bad
    goal = [g for g in data["goals"] if g["goal"].startswith("every backend agrees")]
    assert goal and goal[0]["met"] is True


def test_unknown_device_is_a_usage_error(tmp_path):
    args = ["score", "--quick", "--out", str(tmp_path), "--device", "tpu"]
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 2 and "tpu" in result.output


def test_query_quick_index_keeps_recall(out_dir):
    data = json.loads((out_dir / "query.json").read_text())
    assert all(r["recall_at_10"] >= 0.95 for r in data["results"]), data["results"]


def test_query_bench_text_query_is_what_catalog_search_runs(tmp_path):
    # The bench times text queries outside Catalog (its real-size towers may have random
    # weights, which no preset names); it must find what Catalog.search(text=) finds.
    from mmrec.extractors import load_extractor_set

    import mmrec
    from mmrec.bench.query import TextQuery, build_catalog

    text = TextQuery(load_extractor_set("offline-tiny", device="cpu"))
    store = build_catalog(tmp_path / "c.lance", 300, [(e.modality, e.dim) for e in text.extractors])
    for words in ("rain on a tin roof", "football highlights"):
        got = [h.item_id for h in text.search(store, words, exact=True)]
        want = mmrec.Catalog(tmp_path / "c.lance", device="cpu").search(
            text=words, preset="offline-tiny", exact=True, best_segment=False)
        assert len(got) == 10 and got == [h.item_id for h in want.hits]


def test_paired_timing_tells_the_faster_of_two():
    import time

    from mmrec.bench.score import paired

    res = paired(lambda: time.sleep(0.001), lambda: time.sleep(0.02), 3)
    assert res["rounds"] == 3 and len(res["a_ms"]) == len(res["b_ms"]) == 3
    assert res["speed"] > 3 and res["speed_min_max"][0] <= res["speed"] <= res["speed_min_max"][1]


def test_query_cli_offers_every_data_model_and_index_kind():
    """The CLI lists the choices literally (importing the bench at start-up would load
    numpy for every command); they must stay the registries' keys."""
    from mmrec.bench.query import DATA_MODELS
    from mmrec.search.index import INDEX_KINDS

    opts = {p.name: p for p in bench_command.commands["query"].params}
    assert list(opts["data"].type.choices) == list(DATA_MODELS)
    assert list(opts["index"].type.choices) == list(INDEX_KINDS)


def test_index_and_recommend_clis_offer_every_index_kind_and_backend():
    """Listed literally for the same reason: `mmrec --help` loads no numpy."""
    from mmrec.cli import main
    from mmrec.scoring import BACKENDS
    from mmrec.search import DEFAULT_KIND, INDEX_KINDS

    index = {p.name: p for p in main.commands["index"].params}
    assert list(index["kind"].type.choices) == list(INDEX_KINDS) and index["kind"].default == DEFAULT_KIND
    for name in ("recommend", "evaluate"):
        opts = {p.name: p for p in main.commands[name].params}
        assert list(opts["backend"].type.choices) == list(BACKENDS), name


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_full_score_sweep_spans_every_axis_of_the_issue(device):
    """Users, items, dims and k each take at least two values, at the issue's ends where the
    machine holds them (10M float32 items at 512 dims need 20 GB: CUDA only)."""
    from mmrec.bench.score_cases import CPU_GOAL, cases_for

    cases = cases_for(device, quick=False, full=True)
    assert CPU_GOAL in cases or any(c.cpu_too for c in cases)
    assert {1, 16, 256, 4096} <= {c.users for c in cases}
    assert {10_000, 1_000_000} <= {c.items for c in cases}
    assert {512, 1408} <= {c.dim for c in cases} and {1000} <= {c.k for c in cases}
    assert len(cases) > len(cases_for(device, quick=False, full=False))
