"""CLI basics, the sample library, the file walker and the import-time promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from mmrec.catalog.scan import iter_media_files
from mmrec.cli import main
from mmrec.media import probe
from mmrec.media.samples import BROKEN_NAME, SAMPLES, make_sample_library


def test_import_mmrec_is_light():
    code = ("import sys, mmrec, mmrec.media, mmrec.extractors, mmrec.kernels; "
            "print([m for m in ('torch', 'numba', 'ffmpeg', 'lancedb') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_mmrec_quiets_idle_blas_workers_unless_told_otherwise():
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when numpy loads it: mmrec sets it first
    (idle workers otherwise spin ~0.1 s and slow the next torch or Numba pass)."""
    def timeout(code: str, **env: str) -> str:
        run_env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"} | env
        out = subprocess.run([sys.executable, "-c", code + "; import os; "
                              "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"],
                             capture_output=True, text=True, check=True, env=run_env)
        return out.stdout.strip()

    assert timeout("import mmrec") == "4"
    assert timeout("import mmrec", OPENBLAS_THREAD_TIMEOUT="9") == "9"  # the user's value wins
    assert timeout("import numpy, mmrec") == "None"  # too late to matter: left alone


def test_sample_library_and_probe_cli(tmp_path):
    lib = tmp_path / "lib"
    paths = make_sample_library(lib, include_broken=True)
    assert len(paths) == len(SAMPLES) + 1
    kinds = {p.name: probe(p).kind for p in paths if p.name != BROKEN_NAME}
    assert sorted(set(kinds.values())) == ["audio", "video"]
    result = CliRunner().invoke(main, ["probe", str(lib), "--segments", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["files"]) == len(SAMPLES)
    assert [f["path"] for f in data["failed"]] == [str(lib / BROKEN_NAME)]
    by_name = {os.path.basename(f["path"]): f for f in data["files"]}
    pasta = by_name["pasta_night.mp4"]
    assert (pasta["title"], pasta["frames"], pasta["audio_windows"]) == ("Pasta night", 6, 1)
    assert by_name["rain_ambience.flac"]["frames"] == 0
    assert by_name["rain_ambience.flac"]["audio_windows"] == 2


def test_probe_table_names_the_failed_file(media):
    result = CliRunner().invoke(main, ["probe", str(media["mp4"]), str(media["random"])])
    assert result.exit_code == 0
    assert "clip.mp4" in result.output
    assert f"failed {media['random']}: not a readable media file" in result.output


def test_help_on_every_command():
    runner = CliRunner()
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, name


def test_walker_follows_symlinks_without_looping(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.mp4").write_bytes(b"x")
    (tmp_path / "a" / "b" / "two.WAV").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / "b" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / ".hidden" / "three.mp3").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_media_files(tmp_path)]
    assert found == ["a/one.mp4", "a/b/two.WAV"]
    assert [p.name for p in iter_media_files(tmp_path / "a", recursive=False)] == ["one.mp4"]
