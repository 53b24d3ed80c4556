"""mmrec: multimodal feature extraction, search and recommendation for audio and video.

`import mmrec` is cheap: torch, numba and the ffmpeg bindings load only when a
feature that needs them is used.
"""

from __future__ import annotations

import os
import sys

from mmrec.lazy import lazy_attributes

__version__ = "0.1.0"

# OpenBLAS workers busy-wait 2^28 cycles (~0.1 s) after every threaded call before they
# sleep, and mmrec runs BLAS beside torch's and Numba's thread pools: on 2 cores a text
# query's towers took 146 ms instead of 57 right after a 1M-row matrix-vector product.
# 2^4 cycles makes them sleep at once (waking costs microseconds). OpenBLAS reads it when
# numpy loads it, so only before that; a value set by the user wins.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

_LAZY = {
    "Catalog": "mmrec.catalog",
    "probe": "mmrec.media",
    "MediaInfo": "mmrec.media",
    "FramePolicy": "mmrec.media",
    "decode_video": "mmrec.media",
    "decode_audio": "mmrec.media",
    "read_text_meta": "mmrec.media",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
