"""Thin script: `python benchmarks/bench_decode.py [--quick] [--out DIR] [--device cpu|cuda]`,
the same as `mmrec bench decode` (mmrec.bench.decode)."""

import sys

from mmrec.commands.bench_cmd import bench_command

if __name__ == "__main__":
    bench_command(["decode", *sys.argv[1:]])
