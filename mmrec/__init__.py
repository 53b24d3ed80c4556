"""mmrec: multimodal feature extraction, search and recommendation for audio and video.

`import mmrec` is cheap: torch, numba and the ffmpeg bindings load only when a
feature that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Catalog": "mmrec.catalog",
    "probe": "mmrec.media",
    "MediaInfo": "mmrec.media",
    "FramePolicy": "mmrec.media",
    "decode_video": "mmrec.media",
    "decode_audio": "mmrec.media",
    "read_text_meta": "mmrec.media",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrec' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = ["__version__", *_LAZY]
