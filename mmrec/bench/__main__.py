"""`python -m mmrec.bench ...`: the bench commands without the top-level CLI."""

from mmrec.commands.bench_cmd import bench_command

if __name__ == "__main__":
    bench_command()
