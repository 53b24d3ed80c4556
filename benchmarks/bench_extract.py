"""Thin script: `python benchmarks/bench_extract.py [--quick] [--out DIR] [--device cpu|cuda]`,
the same as `mmrec bench extract` (mmrec.bench.extract)."""

import sys

from mmrec.commands.bench_cmd import bench_command

if __name__ == "__main__":
    bench_command(["extract", *sys.argv[1:]])
