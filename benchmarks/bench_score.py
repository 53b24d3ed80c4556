"""Thin script: `python benchmarks/bench_score.py [--quick] [--out DIR] [--device cpu|cuda]`,
the same as `mmrec bench score` (mmrec.bench.score)."""

import sys

from mmrec.commands.bench_cmd import bench_command

if __name__ == "__main__":
    bench_command(["score", *sys.argv[1:]])
