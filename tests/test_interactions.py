"""Parsing interaction logs: CSV and JSONL, line-numbered rejections, typed file errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mmrec.recommend.interactions import (
    EVENTS,
    Interaction,
    InteractionsError,
    by_user,
    is_positive,
    parse_interactions,
    parse_timestamp,
    parse_value,
)

CATALOG = {"/media/a.mp4": "id-a", "/media/b.mp3": "id-b", "id-a": "id-a", "id-b": "id-b"}


def resolve(key: str) -> str | None:
    return CATALOG.get(key)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_rows_and_line_numbered_rejections(tmp_path: Path) -> None:
    p = write(tmp_path, "log.csv", "\n".join([
        "user_id,item,event,value,timestamp,text",             # 1
        "u1,/media/a.mp4,view,0.75,2024-05-01T12:00:00Z,",     # 2 ok
        "u1,id-b,like,,1714564800,great tune",                 # 3 ok
        "u2,/media/missing.mp4,like,,1714564800,",             # 4 unknown item
        "u2,id-a,purr,,1714564800,",                           # 5 unknown event
        "",                                                    # 6 blank
        "u2,id-a,view,1.5,1714564800,",                        # 7 value out of range
        "u3,id-a,view,,yesterday,",                            # 8 bad timestamp
        ",id-a,LIKE,,1714564800,",                             # 9 empty user
        '"u4",id-b,comment,,1714564801,"two\nlines"',          # 10-11 ok, multi-line text
        "u5,id-a,skip,,1714564802,,extra",                     # 12 too many fields
    ]) + "\n")
    parsed = parse_interactions(p, resolve)
    assert parsed.format == "csv"
    assert [r.line for r in parsed.rows] == [2, 3, 10]
    first = parsed.rows[0]
    assert first == Interaction("u1", "id-a", "view", 0.75, datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp(),
                                None, 2)
    assert parsed.rows[1].text == "great tune" and parsed.rows[1].value is None
    assert parsed.rows[2].text == "two\nlines"
    reasons = {r.line: r.reason for r in parsed.rejected}
    assert sorted(reasons) == [4, 5, 7, 8, 9, 12]
    assert "unknown item '/media/missing.mp4'" in reasons[4]
    assert "unknown event 'purr'" in reasons[5] and "dislike" in reasons[5]
    assert "[0, 1]" in reasons[7]
    assert "'yesterday'" in reasons[8]
    assert reasons[9] == "user_id is empty"  # LIKE is accepted case-insensitively
    assert "7 fields" in reasons[12]


def test_row_with_several_problems_lists_them_all(tmp_path: Path) -> None:
    p = write(tmp_path, "log.csv", "user_id,item,event,value,timestamp\nu1,nope,zap,abc,\n")
    (rej,) = parse_interactions(p, resolve).rejected
    assert rej.line == 2
    for part in ("unknown item 'nope'", "unknown event 'zap'", "'abc' is not a number", "timestamp is empty"):
        assert part in rej.reason


def test_jsonl_rows_and_rejections(tmp_path: Path) -> None:
    lines = [
        {"user_id": "u1", "item": "/media/a.mp4", "event": "like", "timestamp": 1714564800},
        {"user": 7, "item_id": "id-b", "event": "view", "value": 0.3, "ts": "2024-05-01"},
        "not json {",
        [1, 2],
        {"user_id": "u2", "item": "id-zzz", "event": "like", "timestamp": 1},
        {"user_id": "u2", "item": "id-a", "event": "share", "value": True, "timestamp": 1},
        {"user_id": "u2", "item": "id-a", "event": "dislike", "value": None, "timestamp": 2.5,
         "text": "meh"},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    parsed = parse_interactions(write(tmp_path, "log.jsonl", text + "\n\n"), resolve)
    assert parsed.format == "jsonl"
    assert [(r.line, r.user_id, r.item_id, r.event) for r in parsed.rows] == [
        (1, "u1", "id-a", "like"), (2, "7", "id-b", "view"), (7, "u2", "id-a", "dislike")]
    assert parsed.rows[1].timestamp == datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    assert parsed.rows[2].text == "meh" and parsed.rows[2].timestamp == 2.5
    reasons = {r.line: r.reason for r in parsed.rejected}
    assert sorted(reasons) == [3, 4, 5, 6]
    assert "not valid JSON" in reasons[3]
    assert "JSON object" in reasons[4]
    assert "id-zzz" in reasons[5]
    assert "True" in reasons[6]


def test_format_is_sniffed_without_a_known_suffix(tmp_path: Path) -> None:
    j = write(tmp_path, "log.txt", '\n{"user_id":"u","item":"id-a","event":"like","timestamp":3}\n')
    c = write(tmp_path, "log.dat", "user_id,item,event,timestamp\nu,id-b,skip,4\n")
    assert parse_interactions(j, resolve).format == "jsonl"
    assert parse_interactions(c, resolve).rows[0].item_id == "id-b"


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("empty.csv", "", "empty file"),
    ("noheader.csv", "a,b,c\n1,2,3\n", "lacks user_id, item, event, timestamp"),
    ("dup.csv", "user_id,user,item,event,timestamp\n", "more than once"),
    ("prose.txt", "Dear diary, today I watched things.\n", "not an interactions CSV"),
])
def test_unreadable_files_raise_typed_errors(tmp_path: Path, name: str, content: str, needle: str) -> None:
    with pytest.raises(InteractionsError, match=needle) as info:
        parse_interactions(write(tmp_path, name, content), resolve)
    assert info.value.path.endswith(name)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InteractionsError, match="no such file"):
        parse_interactions(tmp_path / "nope.csv", resolve)
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"user_id,item,event,timestamp\n\xff\xfe\x00garbage\n")
    with pytest.raises(InteractionsError, match="not UTF-8"):
        parse_interactions(binary, resolve)


def test_value_and_timestamp_parsers() -> None:
    assert parse_value("") is None and parse_value(None) is None and parse_value(" 0.5 ") == 0.5
    for bad in ("nan", "-0.1", "1.01", "x"):
        with pytest.raises(ValueError):
            parse_value(bad)
    assert parse_timestamp("1714564800.5") == 1714564800.5
    assert parse_timestamp("2024-05-01T14:00:00+02:00") == parse_timestamp("2024-05-01T12:00:00Z")
    assert parse_timestamp("2024-05-01T12:00:00") == parse_timestamp("2024-05-01T12:00:00Z")  # naive = UTC
    for bad in ("inf", "", True, "05/01/2024"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_positive_events_and_grouping() -> None:
    assert EVENTS == ("view", "like", "dislike", "skip", "comment", "share")
    assert [is_positive(e, None) for e in EVENTS] == [True, True, False, False, True, True]
    assert is_positive("view", 0.5) and not is_positive("view", 0.49)
    rows = [Interaction("u", "b", "like", None, 20.0, line=1), Interaction("v", "a", "like", None, 5.0),
            Interaction("u", "a", "view", 0.2, 10.0, line=2),
            Interaction("u", "c", "view", 1.0, 10.0, line=3)]
    grouped = by_user(rows)
    assert [r.item_id for r in grouped["u"]] == ["a", "c", "b"]
    assert list(grouped) == ["v", "u"]


def test_positive_rows_over_arrow_agree_with_is_positive():
    import pyarrow as pa

    from mmrec.recommend.interactions import EVENTS, is_positive, positive_rows

    grid = [(e, v) for e in EVENTS for v in (None, 0.0, 0.2, 0.5, 0.9, 1.0)]
    got = positive_rows(pa.array([e for e, _ in grid]), pa.array([v for _, v in grid], pa.float64()))
    assert got.to_pylist() == [is_positive(e, v) for e, v in grid]
    assert sum(got.to_pylist()) > 0 and not all(got.to_pylist())
