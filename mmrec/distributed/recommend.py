"""`mmrec recommend --all-users --engine ray`: recommend_all_users on Ray.

The driver builds every user's vector exactly as the local engine does (one code path:
recommend_all_users with this module's writer as its last step). The items (matrix, ids,
paths, popularity, ingest times) go into the object store once; each task ranks one block
of users with the same kernels (ranked_rows) and writes its rows itself: a Parquet part
file, or a Lance fragment (lance-ray's writer) that the driver commits once. A Parquet
result is a directory of part files (the usual form of a distributed dataset), written
beside the target and renamed over it, so a failed run leaves the previous result.
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .runtime import RayOptions, connected, import_ray, quiet_data, worker_errors

MAX_BLOCK_USERS = 65536  # users per task at most (each task holds its block's top-k rows)


def ray_rows_writer(options: RayOptions | None = None) -> Callable[..., int]:
    """A `write` step for recommend_all_users that ranks blocks of users on Ray and writes
    Parquet parts (out/part-NNNNN.parquet) or, for an out ending in .lance, a Lance dataset."""
    options = options or RayOptions()
    import_ray()  # the install hint now, before anything is read

    def write(out: str | Path, block: Callable[..., pa.Table], user_ids: list[str], users: np.ndarray,
              histories: list[Any]) -> int:
        out = Path(out)
        with connected(options.address) as ray, worker_errors(ray):
            quiet_data(ray)
            slots = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            n = max(1, min(len(user_ids), 2 * slots), math.ceil(len(user_ids) / MAX_BLOCK_USERS))
            bounds = np.linspace(0, len(user_ids), n + 1).astype(int)
            shared = ray.put(block)  # the items, once for every task
            lance = out.suffix == ".lance"
            target = str(out.resolve()) if lance else str(_staging(out))
            task = ray.remote(num_cpus=1)(_rank_block)
            refs = [task.remote(shared, user_ids[a:b], users[a:b], histories[a:b], i, target, lance)
                    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)) if b > a]
            done = ray.get(refs)
        if lance:
            _commit_lance(target, done)
        else:
            _replace(Path(target), out)
        return sum(rows for rows, _, _ in done)

    return write


def _rank_block(block: Callable[..., pa.Table], user_ids: list[str], users: np.ndarray,
                histories: list[Any], index: int, target: str, lance: bool) -> tuple[int, list[bytes], bytes]:
    """One block of users ranked (the local maths) and written: (rows, fragments, schema)."""
    import pyarrow.parquet as pq

    table = block(user_ids, users, histories)
    if table.num_rows == 0:
        return 0, [], b""
    if not lance:
        pq.write_table(table, str(Path(target) / f"part-{index:05d}.parquet"))
        return table.num_rows, [], b""
    from lance_ray import LanceFragmentWriter

    written = LanceFragmentWriter(target, schema=table.schema)(table)
    return table.num_rows, written.column("fragment").to_pylist(), pickle.dumps(table.schema)


def _commit_lance(uri: str, done: list[tuple[int, list[bytes], bytes]]) -> None:
    """The workers' fragments as one new version of the dataset (created, or replaced whole)."""
    import lance

    fragments = [pickle.loads(f) for _, frags, _ in done for f in frags]
    schemas = [pickle.loads(s) for _, _, s in done if s]
    if not schemas:  # nobody has anything to recommend: an empty dataset of the local columns
        return
    lance.LanceDataset.commit(uri, lance.LanceOperation.Overwrite(schemas[0], fragments))


def _staging(out: Path) -> Path:
    """A fresh directory beside out for the part files (renamed over out at the end)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _replace(staging: Path, out: Path) -> None:
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    staging.rename(out)
