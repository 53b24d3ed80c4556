"""A compressed scan of every row for queries far from every item (text, outside files, users).

An HNSW graph finds a stored vector's neighbours with a narrow search, but a query in no
item's neighbourhood makes it wander: at 1M items it can need ef 3,000-4,000 (65-85 ms on
two cores) and on near-isotropic data still misses (recall 0.85). A sketch scores the
query against every row instead, from a compressed copy (mmrec.kernels.qscan): each row's
coordinates on the column's top principal directions (int8) plus its residual as sign
bits after a random rotation (1,408 dims, 64 directions: 64 + 176 bytes a row, ~20 ms
for 1M rows on two cores). The best `rerank` rows by that estimate are re-scored from
int8 copies of the rows (1,408 bytes each, memory-mapped: only those rows are touched),
and the best limit + EXACT_MARGIN read from the table and scored exactly. The principal
part finds the neighbours of embeddings with a low intrinsic dimension in a few hundred
candidates; the sign bits keep near-isotropic data in reach (thousands of candidates).

`mmrec index` measures it against the graph on the same off-item queries and keeps
whichever is better (mmrec.search.calibration). It lives in `<catalog>/_sketch/<table>/` as
.npy files that are memory-mapped: opening one costs nothing, the OS pages it in. A
sketch serves only the table version it was built from; after any write, search falls
back to the graph until `mmrec index` runs again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmrec.catalog import vector_matrix
from mmrec.errors import MmrecError
from mmrec.kernels import qscan

FIT_SAMPLE = 20_000  # rows the principal directions are fitted on
VARIANCE = 0.90  # share of the sample's variance the kept directions must explain...
MAX_DIMS = 64  # ...but never more than this many (the scan reads rows x dims floats)
DIM_STEP = 16  # dims are rounded up to a multiple of this (whole SIMD lanes)
# rows re-scored from their int8 copies, fewest first (calibration walks it): a few
# hundred on learned embeddings, thousands on near-isotropic vectors
RERANK_LADDER = (250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
EXACT_MARGIN = 5  # rows past the limit read and scored exactly (int8 scores are ~1e-4 off)
SCAN_BATCH = 32_768  # rows per streamed batch while building
DIRECTORY = "_sketch"  # under the catalog
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sketch:
    """A compressed copy of every row of one vector column (see the module docstring)."""

    basis: np.ndarray  # (dim, r) float32, orthonormal columns: the top principal directions
    rotation: np.ndarray  # (dim, dim) float32, orthogonal: applied to the residuals
    coords: np.ndarray  # (rows, r) int8: each row's coordinates on basis (its mean taken off)...
    coord_scale: np.ndarray  # (r,) float32: ...in these units per direction
    codes: np.ndarray  # (rows, words) uint64: signs of each rotated residual
    fac: np.ndarray  # (rows,) float32: |y|²/‖y‖₁ of each rotated residual y
    ones: np.ndarray  # (rows,) float32: positive signs per row
    q8: np.ndarray  # (rows, dim) int8: the rows, scaled
    scale: np.ndarray  # (rows,) float32: row ≈ q8 · scale
    rowids: np.ndarray  # (rows,) int64: the table's row ids, in this order
    version: int  # the table version it describes
    directory: Path  # where its files are

    @property
    def dims(self) -> int:
        return int(self.basis.shape[1])

    def shortlist(self, query: np.ndarray, n: int) -> np.ndarray:
        """Positions of the n rows whose estimated score against query is highest
        (unordered). The mean's share of the score is the same for every row: left out."""
        q = np.asarray(query, np.float32)
        qc = q @ self.basis
        qbits = qscan.QueryBits((q - self.basis @ qc) @ self.rotation)
        est = qscan.estimate(self.coords, self.coord_scale, self.codes, self.fac, self.ones, qc, qbits)
        return qscan.shortlist(est, n)


_ARRAYS = ("basis", "rotation", "coords", "coord_scale", "codes", "fac", "ones", "q8", "scale", "rowids")


def fit_basis(sample: np.ndarray, variance: float = VARIANCE, max_dims: int = MAX_DIMS) -> np.ndarray:
    """The fewest top principal directions of sample (rounded up to DIM_STEP, at most
    max_dims) that explain `variance` of it, as (dim, r) columns."""
    centred = sample - sample.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    share = np.cumsum(sv ** 2) / max(float(np.sum(sv ** 2)), np.finfo(np.float32).tiny)
    r = int(np.searchsorted(share, variance)) + 1
    r = min(max_dims, -(-r // DIM_STEP) * DIM_STEP, len(sv))
    return np.ascontiguousarray(vt[:r].T, np.float32)


def random_rotation(dim: int, seed: int) -> np.ndarray:
    """A random orthogonal (dim, dim) matrix (QR of a Gaussian one, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return np.ascontiguousarray(q * np.sign(np.diag(r)), np.float32)


def build_sketch(table: Any, column: str, catalog: Path, seed: int = 0) -> Sketch:
    """Fit the column's mean and principal directions on a sample, then compress every
    row in one streaming pass (one Arrow batch in memory at a time) into a build directory
    under catalog; `save` puts it in place, `discard` removes it."""
    version = table.version  # read first: a write during the pass makes the sketch stale, not wrong
    n = table.count_rows()
    dim = table.schema.field(column).type.list_size
    offsets = np.random.default_rng(seed).choice(n, min(FIT_SAMPLE, n), replace=False)
    sample = vector_matrix(table.take_offsets(sorted(int(o) for o in offsets)).select([column])
                           .to_arrow().column(column), dim)
    mean = sample.mean(axis=0).astype(np.float32)
    basis = fit_basis(sample)
    rotation = random_rotation(dim, seed)
    # `mmrec index` holds the catalog's writer lock: any other build directory is left
    # over from a killed run (1.7 GB at 1M rows), and so is an old sketch not yet removed
    for prefix in (".build", ".old"):
        for stale in _root(catalog).glob(f"{prefix}-{table.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    directory = _root(catalog) / f".build-{table.name}-{os.getpid()}"
    directory.mkdir(parents=True)
    try:
        _compress(table, column, n, mean, basis, rotation, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    info = {"version": version, "rows": n, "dims": basis.shape[1]}
    (directory / "sketch.json").write_text(json.dumps(info))
    return _open(directory, version)


def _compress(table: Any, column: str, n: int, mean: np.ndarray, basis: np.ndarray, rotation: np.ndarray,
              directory: Path) -> None:
    """Write the per-row arrays of the n rows of table.column into directory."""
    dim = len(mean)
    shapes = {"coords_f32": ((n, basis.shape[1]), np.float32), "codes": ((n, qscan.words(dim)), np.uint64),
              "fac": ((n,), np.float32), "ones": ((n,), np.float32), "q8": ((n, dim), np.int8),
              "scale": ((n,), np.float32), "rowids": ((n,), np.int64)}
    out = {name: np.lib.format.open_memmap(directory / f"{name}.npy", "w+", dtype, shape)
           for name, (shape, dtype) in shapes.items()}
    at = 0
    for batch in table.search().select([column]).with_row_id(True).limit(None).to_batches(SCAN_BATCH):
        rows = batch.num_rows
        if at + rows > n:
            break
        x = vector_matrix(batch.column(column), dim)
        centred = x - mean
        coords = centred @ basis
        y = (centred - coords @ basis.T) @ rotation
        out["coords_f32"][at:at + rows] = coords
        out["codes"][at:at + rows] = qscan.pack_signs(y)
        out["fac"][at:at + rows], out["ones"][at:at + rows] = qscan.row_factors(y)
        out["q8"][at:at + rows], out["scale"][at:at + rows] = qscan.quantize_rows(x)
        out["rowids"][at:at + rows] = batch.column("_rowid").to_numpy().astype(np.int64)
        at += rows
    if at != n:  # `mmrec index` holds the writer lock: only a writer that ignores it gets here
        raise MmrecError(f"{table.name} changed while its sketch was built: run `mmrec index` again")
    for a in out.values():
        a.flush()
    coords, coord_scale = qscan.quantize_columns(out.pop("coords_f32"))  # scales known only now
    small = {"basis": basis, "rotation": rotation, "coords": coords, "coord_scale": coord_scale}
    for name, a in small.items():
        np.save(directory / f"{name}.npy", a)
    (directory / "coords_f32.npy").unlink()


def search_rows(table: Any, column: str, sketch: Sketch, query: np.ndarray, limit: int, rerank: int,
                columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The top `limit` rows by query · column, best first: the sketch's best `rerank`
    rows re-scored from their int8 copies, the best of those read and scored exactly.
    Rows carry LanceDB's dot `_distance` (1 - score) like an index search, `_rowid`, the
    vector and `columns` (None: all)."""
    q = np.asarray(query, np.float32)
    pos = sketch.shortlist(q, max(rerank, limit))
    approx = qscan.rescore(sketch.q8, sketch.scale, pos, q)
    keep = qscan.shortlist(approx, limit + EXACT_MARGIN)
    rowids = np.sort(sketch.rowids[pos[keep]])
    wanted = [c for c in (columns or table.schema.names) if c not in (column, "_distance", "_rowid")]
    rows = table.take_row_ids(rowids.tolist()).select([*wanted, column]).with_row_id().to_arrow()
    scores = vector_matrix(rows.column(column), sketch.basis.shape[0]) @ q
    order = np.argsort(-scores, kind="stable")[:limit]  # ties: the smaller row id
    best = rows.take(pa.array(order, pa.int64())).to_pylist()
    for row, s in zip(best, scores[order], strict=True):
        row["_distance"] = 1.0 - float(s)
    return best


# -- kept in the catalog: <catalog>/_sketch/<table>/*.npy -----------------------------

def _root(catalog: Path) -> Path:
    return Path(catalog) / DIRECTORY


def save(catalog: Path, table_name: str, sketch: Sketch) -> Sketch:
    """Put a built sketch in place of the table's (readers of the old one keep their maps)."""
    final = _root(catalog) / table_name
    if sketch.directory != final:
        old = final.with_name(f".old-{table_name}-{os.getpid()}")
        if final.exists():
            final.rename(old)
        sketch.directory.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    with _LOCK:
        _LOADED.pop((str(catalog), table_name), None)
    return _open(final, sketch.version)


def discard(sketch: Sketch) -> None:
    """Remove a built sketch that was not kept."""
    if sketch.directory.name.startswith(".build-"):
        shutil.rmtree(sketch.directory, ignore_errors=True)


def drop(catalog: Path, db: Any, table_name: str) -> None:
    """Remove a table's sketch, if it has one (calibration chose the graph), and the two
    LanceDB tables an older mmrec kept one in."""
    shutil.rmtree(_root(catalog) / table_name, ignore_errors=True)
    existing = set(db.list_tables().tables)
    for legacy in (f"{table_name}_sketch", f"{table_name}_sketch_basis"):
        if legacy in existing:
            db.drop_table(legacy)
    with _LOCK:
        _LOADED.pop((str(catalog), table_name), None)


def exists(catalog: Path, table_name: str) -> bool:
    return (_root(catalog) / table_name / "sketch.json").is_file()


_LOADED: dict[tuple[str, str], Sketch] = {}  # (catalog, table) -> its sketch, mapped
_LOCK = threading.Lock()


def load(catalog: Path, table_name: str, version: int) -> Sketch | None:
    """The saved sketch of table_name built from `version`, mapped once per process;
    None if there is none (or it describes another version)."""
    key = (str(catalog), table_name)
    with _LOCK:
        cached = _LOADED.get(key)
        if cached is not None and cached.version == version:
            return cached
        directory = _root(catalog) / table_name
        try:
            info = json.loads((directory / "sketch.json").read_text())
        except (OSError, ValueError):
            return None
        if info.get("version") != version:
            return None
        try:
            sketch = _open(directory, version)
        except (OSError, ValueError) as e:  # damaged, or written by another mmrec
            log.warning("%s: sketch unreadable (%s); searches use the graph: run `mmrec index`", directory, e)
            return None
        _LOADED[key] = sketch
        return sketch


def _open(directory: Path, version: int) -> Sketch:
    arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    return Sketch(**arrays, version=version, directory=directory)
