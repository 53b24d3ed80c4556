"""Throughput benchmarks of mmrec (`mmrec bench ...`): one module per benchmark, each with a
`run(quick, out, device) -> dict` that writes <out>/<name>.json and <name>.png.

decode: sampled-frame and audio-window decoding per worker count; extract: model
throughput per extractor; ingest: end-to-end Catalog.ingest with its stage timings;
score: the top-k kernels against NumPy/torch; query: search latency and recall on synthetic
catalogs; startup: cold `mmrec` commands and where their time goes; serve: the HTTP service
under a bounded loopback load. Benchmarks use only mmrec's public API.
"""

from __future__ import annotations

from .common import resolve_device

BENCHMARKS = ("decode", "extract", "ingest", "score", "query", "startup", "serve")

__all__ = ["BENCHMARKS", "resolve_device"]
