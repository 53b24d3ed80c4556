"""Comment sentiment as a user signal: the scorers (real VADER and SnowNLP), the event
weights it scales, recommendations it moves, "you loved X", the stored column (also in a
catalog made before it existed) and `mmrec evaluate --sentiment`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from cli_run import run

from mmrec.catalog.store import INTERACTIONS, INTERACTIONS_SCHEMA, CatalogStore, ItemRecord
from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout
from mmrec.recommend.from_catalog import stored_interactions
from mmrec.recommend.interactions import Interaction
from mmrec.recommend.ranker import RecommendOptions, histories_from_interactions, recommend, user_matrix
from mmrec.recommend.rerank import RerankConfig
from mmrec.recommend.sentiment import (
    LOVED,
    SCORERS,
    SentimentAnalyzer,
    detect_language,
    register,
    score_text,
    vader,
    with_sentiment,
)
from mmrec.recommend.users import UserVectorConfig, event_weights, sentiment_weights, user_vector

GLOWING = "Absolutely loved it, the best thing I've watched all year!"
PANNED = "boring, waste of time"
NEUTRAL = "watched it on Tuesday"
ZH_GLOWING = "太好看了，非常喜欢"
ZH_PANNED = "无聊，浪费时间"

DAY = 86_400.0
NOW = 1_790_000_000.0
DIM = 8
LAYOUT = FusionLayout.from_dims([("visual", "v", DIM), ("audio", "a", DIM)])
CLUSTERS = "abc"
PER_CLUSTER = 6
PLAIN = RerankConfig(popularity_weight=0.0, freshness_weight=0.0, diversity=0.0)


def cluster_items() -> tuple[list[str], np.ndarray]:
    """Items a0..a5, b0..b5, c0..c5: each cluster near its own basis direction in every block."""
    rng = np.random.default_rng(11)
    ids, rows = [], []
    for c, name in enumerate(CLUSTERS):
        for i in range(PER_CLUSTER):
            blocks = {}
            for m in LAYOUT.modalities:
                v = np.eye(DIM)[c] + 0.05 * rng.standard_normal(DIM)
                blocks[m] = (v / np.linalg.norm(v)).astype(np.float32)
            ids.append(f"{name}{i}")
            rows.append(LAYOUT.fuse(blocks))
    return ids, np.stack(rows)


IDS, ITEMS = cluster_items()
INDEX = {i: n for n, i in enumerate(IDS)}


def history_rows(user: str, comment: str | None) -> list[Interaction]:
    """Shared b0 two days ago; commented on a0 yesterday (the comment's sentiment is scored)."""
    rows = [Interaction(user, "b0", "share", None, NOW - 2 * DAY),
            Interaction(user, "a0", "comment", None, NOW - DAY, comment)]
    return with_sentiment(rows)


def ranked(comment: str | None, config: UserVectorConfig | None = None,
           explain: bool = False) -> list:
    """Every unseen item for that user, best first, in pure score order."""
    hist = histories_from_interactions(history_rows("u", comment), INDEX)
    um = user_matrix(hist, ITEMS, LAYOUT, NOW, config)
    opts = RecommendOptions(k=len(IDS), backend="numpy", rerank=PLAIN, explain=explain)
    return recommend(um.vectors, ITEMS, LAYOUT, opts, histories=[hist["u"]], titles=IDS)[0]


def a_positions(recs: list) -> list[int]:
    """0-based positions of a0's neighbours (a1..a5) in the list."""
    return [p for p, r in enumerate(recs) if IDS[r.item_index].startswith("a")]


def a_relevance(recs: list) -> float:
    return float(np.mean([r.relevance for r in recs if IDS[r.item_index].startswith("a")]))


# -- scorers ---------------------------------------------------------------------------

def test_english_and_chinese_scorers_and_language_detection() -> None:
    assert score_text(GLOWING) > 0.5
    assert score_text(PANNED) < -0.3
    assert abs(score_text(NEUTRAL)) < 0.05
    assert score_text(ZH_GLOWING) > 0
    assert score_text(ZH_PANNED) < 0
    assert score_text("") is None and score_text("   ") is None and score_text(None) is None
    for text in (GLOWING, PANNED, ZH_GLOWING, ZH_PANNED, "这个MV太好看了"):
        assert -1.0 <= score_text(text) <= 1.0
    assert detect_language(ZH_GLOWING) == "zh" and detect_language(ZH_PANNED) == "zh"
    assert detect_language(GLOWING) == "en" and detect_language("I love 周杰伦") == "en"  # most letters Latin
    assert detect_language("とても面白かった") == "ja" and detect_language("정말 재미있어요") == "ko"
    assert detect_language(":)") == "en"
    assert score_text("とても面白かった") is None  # no Japanese scorer: left unscored
    assert score_text("ok", language="en") == score_text("ok")
    with pytest.raises(ConfigError, match="'fr'.*have en, zh"):
        score_text("génial", language="fr")


def test_registry_refuses_a_duplicate_and_analyzers_are_pluggable() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register("en")(vader)
    assert SCORERS["en"] is vader

    def shouting() -> object:  # a toy scorer: the share of capital letters
        return lambda text: sum(c.isupper() for c in text) / max(1, len(text))

    custom = SentimentAnalyzer(scorers={"xx": shouting}, detect=lambda text: "xx")
    assert custom.languages == ["xx"]
    assert custom.score("AB") == 1.0 and custom.score("ab") == 0.0
    assert custom.score("ab", language="xx") == 0.0


def test_scorers_are_built_once_and_shared_across_threads() -> None:
    builds = []

    def counted() -> object:
        builds.append(1)
        return vader()

    analyzer = SentimentAnalyzer(scorers={"en": counted, "zh": SCORERS["zh"]})
    texts = [GLOWING, PANNED, NEUTRAL, ZH_GLOWING, ZH_PANNED] * 8
    expected = [score_text(t) for t in texts]
    results: dict[int, list[float | None]] = {}

    def work(n: int) -> None:
        results[n] = [analyzer.score(t) for t in texts]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert all(results[n] == expected for n in range(6))
    assert analyzer.score_many([PANNED, None, PANNED]) == [expected[1], None, expected[1]]


def test_no_scorer_is_loaded_by_import_mmrec_or_the_cli() -> None:
    code = ("import sys, mmrec, mmrec.cli, mmrec.recommend, mmrec.recommend.sentiment\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('vaderSentiment', 'snownlp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- weights and user vectors ---------------------------------------------------------

def test_sentiment_weight_formula() -> None:
    cfg = UserVectorConfig()  # gain 1, neutral band 0.2
    w = sentiment_weights(np.array([0.7, 0.7, 0.7, 0.7, -1.0, -1.0, 1.0]),
                          [0.8, 0.1, -0.6, None, 0.9, -0.5, float("nan")], cfg)
    assert w == pytest.approx([0.7 * 1.8, 0.7, -0.7 * 1.6, 0.7, -1.0, -1.5, 1.0])
    assert list(sentiment_weights(np.array([0.7]), [0.8], UserVectorConfig(sentiment=False))) == [0.7]
    assert sentiment_weights(np.array([0.7]), [0.3], UserVectorConfig(sentiment_gain=2.0,
                                                                       sentiment_neutral=0.5))[0] == 0.7
    assert event_weights(["comment"], [None], cfg, [score_text(PANNED)])[0] < -0.7  # like a dislike
    assert list(event_weights(["comment", "view"], [None, 0.5], cfg, [None, None])) == \
        list(event_weights(["comment", "view"], [None, 0.5], cfg))
    for bad in ({"sentiment_gain": -1.0}, {"sentiment_neutral": 1.0}):
        with pytest.raises(ConfigError, match="sentiment"):
            UserVectorConfig(**bad)
    with pytest.raises(ConfigError, match="sentiments"):
        event_weights(["comment"], [None], cfg, [0.5, 0.5])


def test_no_comment_or_a_neutral_one_is_the_plain_comment_event() -> None:
    def vec(comment: str | None, **cfg: object) -> np.ndarray:
        rows = history_rows("u", comment)
        return user_vector(ITEMS[[INDEX[r.item_id] for r in rows]], [r.event for r in rows],
                           [r.value for r in rows], [r.timestamp for r in rows], LAYOUT, NOW,
                           config=UserVectorConfig(**cfg), sentiments=[r.sentiment for r in rows])

    plain = vec(None)
    assert vec(NEUTRAL) == pytest.approx(plain)
    assert vec(GLOWING, sentiment=False) == pytest.approx(plain)
    assert vec(PANNED, sentiment=False) == pytest.approx(plain)
    no_arg = user_vector(ITEMS[[INDEX["b0"], INDEX["a0"]]], ["share", "comment"], [None, None],
                         [NOW - 2 * DAY, NOW - DAY], LAYOUT, NOW)
    assert no_arg == pytest.approx(plain)  # behaviour without sentiments is unchanged


@pytest.mark.parametrize(("glowing", "panned", "baseline"), [(GLOWING, PANNED, NEUTRAL),
                                                             (ZH_GLOWING, ZH_PANNED, None)])
def test_comments_move_the_commented_items_neighbourhood(glowing: str, panned: str,
                                                         baseline: str | None) -> None:
    base, up, down = ranked(baseline), ranked(glowing), ranked(panned)
    # 16 unseen items: b1..b5, a1..a5, c0..c5. A plain comment (0.7) is weaker than the
    # share (0.8), so b0's neighbours come first, then a0's, then the unrelated c's.
    assert a_positions(base) == [5, 6, 7, 8, 9]
    assert a_relevance(up) > a_relevance(base) > 0 > a_relevance(down)
    assert a_positions(up) == [0, 1, 2, 3, 4]  # praise lifts a0's neighbours above b0's
    assert a_positions(down) == [11, 12, 13, 14, 15]  # a complaint: last, below even the c's
    off = ranked(panned, UserVectorConfig(sentiment=False))
    assert [r.item_index for r in off] == [r.item_index for r in base]


def test_explanations_say_loved_and_never_use_a_panned_item() -> None:
    up = ranked(GLOWING, explain=True)
    for r in up[:5]:
        assert IDS[r.because_index] == "a0" and "a0 you loved;" in r.explanation
    flat = ranked(NEUTRAL, explain=True)
    assert "a0 you commented on;" in next(r.explanation for r in flat if IDS[r.item_index] == "a1")
    down = ranked(PANNED, explain=True)
    assert all(IDS[r.because_index] == "b0" for r in down)  # a0 was panned: never "because"
    # SnowNLP is milder (2 * 0.71 - 1 = 0.42 here): lifted, but below LOVED, so "commented on".
    assert 0 < score_text(ZH_GLOWING) < LOVED
    assert "a0 you commented on;" in ranked(ZH_GLOWING, explain=True)[0].explanation


# -- a real catalog, through the CLI ----------------------------------------------------

def build_catalog(path: Path) -> CatalogStore:
    store = CatalogStore.create(path, LAYOUT, {"preset": "synthetic"})
    records = []
    for n, item_id in enumerate(IDS):
        blocks = LAYOUT.split(ITEMS[n])
        records.append(ItemRecord(id=item_id, path=f"/lib/{item_id}.mp4", size=n, mtime=0.0, duration=60.0,
                                  kind="video", title=item_id.upper(), text="", tags=[], vectors=blocks,
                                  fused=ITEMS[n], fingerprints={}))
    store.write(records, [])
    return store


USERS = {"glow": GLOWING, "flat": NEUTRAL, "pan": PANNED,
         "zglow": ZH_GLOWING, "zpan": ZH_PANNED, "zplain": ""}


def write_history(path: Path, users: dict[str, str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item", "event", "value", "timestamp", "text"])
        for user, text in users.items():
            w.writerow([user, "b0", "share", "", "2026-10-01T10:00:00Z", ""])
            w.writerow([user, "a0", "comment", "", "2026-10-02T10:00:00Z", text])
    return path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sentiment")
    build_catalog(tmp / "cat.lance")
    _, out, _ = run("interactions", "import", write_history(tmp / "history.csv", USERS),
                    "--db", tmp / "cat.lance", "--json")
    assert json.loads(out)["imported"] == 2 * len(USERS)
    return tmp / "cat.lance"


def cli_recommend(db: Path, user: str, *args: str) -> list[dict]:
    _, out, _ = run("recommend", "--db", db, "--user", user, "-k", str(len(IDS) - 2), "--explain", "--json",
                    "--diversity", "0", "--popularity-weight", "0", "--freshness-weight", "0", *args)
    return json.loads(out)


def cli_a_positions(recs: list[dict]) -> list[int]:
    return [p for p, r in enumerate(recs) if r["item_id"].startswith("a")]


def test_the_stored_interactions_carry_the_sentiment(catalog: Path) -> None:
    t = CatalogStore.open(catalog).interactions_table().to_arrow()
    assert t.schema.field("sentiment").type == pa.float64()
    s = {(r["user_id"], r["event"]): r["sentiment"] for r in t.to_pylist()}
    assert s[("glow", "comment")] > 0.5 and s[("pan", "comment")] < -0.3
    assert abs(s[("flat", "comment")]) < 0.05 and s[("flat", "comment")] is not None
    assert s[("zglow", "comment")] > 0 > s[("zpan", "comment")]
    assert s[("zplain", "comment")] is None and s[("glow", "share")] is None


def test_cli_recommendations_follow_the_comments(catalog: Path) -> None:
    glow, flat, pan = (cli_recommend(catalog, u) for u in ("glow", "flat", "pan"))
    assert cli_a_positions(flat) == [5, 6, 7, 8, 9]
    assert cli_a_positions(glow) == [0, 1, 2, 3, 4]
    assert cli_a_positions(pan) == [11, 12, 13, 14, 15]  # below the c's
    assert all("A0 you loved;" in r["explanation"] for r in glow[:5])
    assert all(r["because"]["item_id"] == "b0" for r in pan)
    zglow, zplain, zpan = (cli_recommend(catalog, u) for u in ("zglow", "zplain", "zpan"))
    assert cli_a_positions(zplain) == [5, 6, 7, 8, 9]
    assert cli_a_positions(zglow) == [0, 1, 2, 3, 4]
    assert cli_a_positions(zpan) == [11, 12, 13, 14, 15]
    a_score = {u: np.mean([r["score"] for r in recs if r["item_id"].startswith("a")])
               for u, recs in (("zglow", zglow), ("zplain", zplain), ("zpan", zpan))}
    assert a_score["zglow"] > a_score["zplain"] > 0 > a_score["zpan"]
    off = cli_recommend(catalog, "glow", "--sentiment", "off")
    assert [r["item_id"] for r in off] == [r["item_id"] for r in flat]
    assert [r["score"] for r in off] == pytest.approx([r["score"] for r in flat])


def test_evaluate_compares_sentiment_on_and_off(catalog: Path, tmp_path: Path) -> None:
    """Users who shared b0, praised a0, then liked one of a0's neighbours (the held-out item):
    with sentiment the top 5 are a0's neighbours, without it b0's."""
    path = tmp_path / "eval.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item", "event", "value", "timestamp", "text"])
        for u in range(1, 6):
            w.writerow([f"e{u}", "b0", "share", "", "2026-10-01T10:00:00Z", ""])
            w.writerow([f"e{u}", "a0", "comment", "", "2026-10-02T10:00:00Z", GLOWING])
            w.writerow([f"e{u}", f"a{u}", "like", "", "2026-10-03T10:00:00Z", ""])
    args = ("evaluate", "--db", catalog, "--interactions", path, "-k", "5", "--json", "--diversity", "0",
            "--popularity-weight", "0", "--freshness-weight", "0")
    both = json.loads(run(*args, "--sentiment", "compare")[1])
    methods = {m["method"]: m for m in both["methods"]}
    assert list(methods) == ["mmrec", "mmrec-no-sentiment", "popularity", "random"]
    assert methods["mmrec"]["recall"] == 1.0 and methods["mmrec-no-sentiment"]["recall"] == 0.0
    off = json.loads(run(*args, "--sentiment", "off")[1])["methods"]
    assert [m["method"] for m in off] == ["mmrec", "popularity", "random"]
    assert off[0]["recall"] == methods["mmrec-no-sentiment"]["recall"]
    assert json.loads(run(*args)[1])["methods"][0] == methods["mmrec"]  # on by default
    code, _, err = run(*args, "--sentiment", "maybe", ok=False)
    assert code != 0 and "maybe" in err


def test_a_catalog_made_before_the_sentiment_column_keeps_working(tmp_path: Path) -> None:
    db = tmp_path / "old.lance"
    store = build_catalog(db)
    old_schema = pa.schema([f for f in INTERACTIONS_SCHEMA if f.name != "sentiment"])
    table = store.db.create_table(INTERACTIONS, schema=old_schema)
    table.add(pa.Table.from_pylist([
        {"key": "k1", "user_id": "glow", "item_id": "b0", "event": "share", "value": None,
         "timestamp": NOW - 2 * DAY, "text": None, "source": "old"},
        {"key": "k2", "user_id": "glow", "item_id": "a0", "event": "comment", "value": None,
         "timestamp": NOW - DAY, "text": GLOWING, "source": "old"}], schema=old_schema))
    # Read as they are: the old comment is scored on read, and recommendations use it.
    assert next(r for r in stored_interactions(CatalogStore.open(db)) if r.text).sentiment > 0.5
    recs = cli_recommend(db, "glow")
    assert cli_a_positions(recs) == [0, 1, 2, 3, 4] and "A0 you loved;" in recs[0]["explanation"]
    # The next import adds the column (null in the old rows) and stores the new rows' sentiment.
    _, out, _ = run("interactions", "import", write_history(tmp_path / "more.csv", {"pan": PANNED}),
                    "--db", db, "--json")
    assert json.loads(out)["imported"] == 2
    rows = CatalogStore.open(db).interactions_table().to_arrow().to_pylist()
    assert {r["key"]: r["sentiment"] for r in rows if r["source"] == "old"} == {"k1": None, "k2": None}
    assert next(r["sentiment"] for r in rows if r["user_id"] == "pan" and r["text"]) < -0.3
    assert cli_a_positions(cli_recommend(db, "pan")) == [11, 12, 13, 14, 15]
    assert cli_a_positions(cli_recommend(db, "glow")) == [0, 1, 2, 3, 4]
