"""Thin script: `python benchmarks/bench_query.py [--quick] [--sizes 10000,100000] [--out DIR]`,
the same as `mmrec bench query` (mmrec.bench.query)."""

import sys

from mmrec.commands.bench_cmd import bench_command

if __name__ == "__main__":
    bench_command(["query", *sys.argv[1:]])
