"""Model fingerprints: architecture + weights digest + preprocessing, as a short sha256 hex.

Weights are digested fast (size + first and last MiB of each weight file; config and
tokenizer files in full) so a 600 MB checkpoint costs two reads of 1 MiB. The file's
mtime is left out on purpose: copying the same weights elsewhere keeps the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .weights import ResolvedWeights

_MIB = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's size and its first and last MiB (the whole file when small)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        if size <= 2 * _MIB:
            h.update(f.read())
        else:
            h.update(f.read(_MIB))
            f.seek(size - _MIB)
            h.update(f.read(_MIB))
    return h.hexdigest()


def dir_digest(path: Path) -> str:
    """sha256 over the relative names and file digests of a model directory (hidden dirs skipped)."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        h.update(str(rel).encode())
        h.update(file_digest(f).encode())
    return h.hexdigest()


def weights_digest(weights: ResolvedWeights) -> str:
    """Digest of the weights: the seed for random init, else the file/directory digest."""
    if weights.path is None:
        return f"random-seed:{weights.seed}"
    return dir_digest(weights.path) if weights.path.is_dir() else file_digest(weights.path)


def fingerprint(
    extractor: str, architecture: Mapping[str, Any], weights: str, preprocess: Mapping[str, Any]
) -> str:
    """Short hex id that changes when the architecture, weights or preprocessing change."""
    blob = json.dumps(
        {"extractor": extractor, "arch": architecture, "weights": weights, "prep": preprocess},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def combined(base: str, parts: Mapping[str, str]) -> str:
    """A fingerprint that changes when `base` or any named part's fingerprint changes."""
    blob = json.dumps({"base": base, "parts": dict(parts)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
