"""Thin script: `python benchmarks/bench_ingest.py [--quick] [--out DIR] [--device cpu|cuda]`,
the same as `mmrec bench ingest` (mmrec.bench.ingest)."""

import sys

from mmrec.commands.bench_cmd import bench_command

if __name__ == "__main__":
    bench_command(["ingest", *sys.argv[1:]])
