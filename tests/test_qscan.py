"""The compressed-scan kernels: sign codes, the residual estimator, the query's bit planes,
int8 re-scoring and the shortlist, each against a plain NumPy statement of what it computes."""

from __future__ import annotations

import numpy as np
import pytest
from mmrec.kernels import qscan


def _signs(codes: np.ndarray, dim: int) -> np.ndarray:
    bits = np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little")
    return bits[:, :dim].astype(bool)


@pytest.mark.parametrize("dim", [1, 63, 64, 100, 1408])
def test_codes_hold_one_sign_per_dimension_and_zero_padding(dim):
    y = np.random.default_rng(dim).standard_normal((7, dim)).astype(np.float32)
    y[0, 0] = 0.0  # zero is not positive
    codes = qscan.pack_signs(y)
    assert codes.shape == (7, qscan.words(dim)) and codes.dtype == np.uint64
    np.testing.assert_array_equal(_signs(codes, dim), y > 0)
    assert not np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little")[:, dim:].any()


def test_the_factor_makes_a_residual_score_itself_exactly():
    """fac · <sign(y), y> = |y|²: the estimator is exact for a query equal to the residual."""
    y = np.random.default_rng(1).standard_normal((50, 200)).astype(np.float32)
    y[3] = 0.0
    fac, ones = qscan.row_factors(y)
    np.testing.assert_allclose(fac * np.sum(np.where(y > 0, 1, -1) * y, axis=1), np.sum(y * y, axis=1),
                               rtol=1e-5)
    assert fac[3] == 0.0 and ones.tolist() == (y > 0).sum(axis=1).tolist()


def _estimate(coords, coord_scale, y, q_c, qy):
    fac, ones = qscan.row_factors(y)
    return qscan.estimate(coords, coord_scale, qscan.pack_signs(y), fac, ones, q_c, qscan.QueryBits(qy))


def _reference(coords, y, q_c, qy):
    """The estimator in floats: coords · qc + fac · <sign(y), qy>."""
    fac, _ = qscan.row_factors(y)
    return coords @ q_c + fac * (np.where(y > 0, 1.0, -1.0) @ qy)


@pytest.mark.parametrize("dim", [64, 130, 1408])
def test_estimate_equals_the_float_estimator_when_the_query_is_on_its_grid(dim):
    rng = np.random.default_rng(dim)
    n, r = 500, 16
    spread = np.arange(1, r + 1, dtype=np.float32)  # each direction its own scale
    coords, coord_scale = qscan.quantize_columns(rng.standard_normal((n, r)).astype(np.float32) * spread)
    y = rng.standard_normal((n, dim)).astype(np.float32)
    # 16 levels exactly: the bit planes lose nothing
    levels = rng.integers(0, 2**qscan.QUERY_BITS, dim)
    levels[:2] = [0, 2**qscan.QUERY_BITS - 1]
    qy = (-0.3 + 0.04 * levels).astype(np.float32)
    q_c = rng.standard_normal(r).astype(np.float32)
    got = _estimate(coords, coord_scale, y, q_c, qy)
    np.testing.assert_allclose(got, _reference(coords * coord_scale, y, q_c, qy), rtol=1e-4, atol=1e-3)


def test_query_bits_cost_little_against_the_float_estimator():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((2000, 512)).astype(np.float32)
    qy = rng.standard_normal(512).astype(np.float32)
    no_coords, none = np.zeros((2000, 0), np.int8), np.zeros(0, np.float32)
    got = _estimate(no_coords, none, y, none, qy)
    want = _reference(no_coords, y, none, qy)
    assert np.corrcoef(got, want)[0, 1] > 0.99
    # and the 1-bit estimate tracks the true residual score (theory: correlation ~0.8)
    assert np.corrcoef(got, y @ qy)[0, 1] > 0.7


def test_a_constant_query_is_not_a_division_by_zero():
    y = np.random.default_rng(4).standard_normal((10, 70)).astype(np.float32)
    no_coords, none, flat = np.zeros((10, 0), np.int8), np.zeros(0, np.float32), np.full(70, 0.5, np.float32)
    got = _estimate(no_coords, none, y, none, flat)
    np.testing.assert_allclose(got, _reference(no_coords, y, none, flat), rtol=1e-5)


def test_int8_rescoring_ranks_as_float32():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 384)).astype(np.float32)
    x[7] = 0.0  # a zero row gets scale 1, score 0
    q = rng.standard_normal(384).astype(np.float32)
    q8, scale = qscan.quantize_rows(x)
    np.testing.assert_allclose(q8 * scale[:, None], x, atol=np.abs(x).max() / 254 + 1e-7)
    rows = np.append(rng.permutation(np.delete(np.arange(3000), 7))[:999], 7)  # the zero row among them
    got = qscan.rescore(q8, scale, rows, q)
    want = x[rows] @ q
    bound = np.linalg.norm(x[rows], axis=1) * np.linalg.norm(q) * 1e-2
    assert np.all(np.abs(got - want) <= bound)
    assert got[rows.tolist().index(7)] == 0.0
    assert len(set(np.argsort(-got)[:10]) & set(np.argsort(-want)[:10])) >= 9


def test_principal_coordinates_keep_a_scale_per_direction():
    x = np.random.default_rng(7).standard_normal((500, 8)).astype(np.float32) * np.logspace(-3, 1, 8)
    x[:, 3] = 0.0
    q8, scale = qscan.quantize_columns(x)
    assert q8.dtype == np.int8 and np.abs(q8).max() == 127 and scale[3] == 1.0
    assert np.all(np.abs(q8 * scale - x) <= scale / 2 + 1e-9)  # half a step, in every direction's units


@pytest.mark.parametrize("n", [1, 10, 300, 8000, 20_000])
def test_shortlist_is_the_top_n_set(n):
    rng = np.random.default_rng(n)
    scores = rng.permutation(100_000).astype(np.float32)
    assert set(qscan.shortlist(scores, n).tolist()) == set(np.argsort(-scores)[:n].tolist())
    # sorted scores put the sample's threshold guess at its worst; ties at the cut still give n
    assert len(qscan.shortlist(np.sort(scores), n)) == n
    assert set(qscan.shortlist(np.sort(scores), n).tolist()) == set(range(100_000 - n, 100_000))
    tied = np.repeat(np.arange(1000, dtype=np.float32), 100)
    got = qscan.shortlist(tied, n)
    assert len(got) == n and tied[got].min() >= np.sort(tied)[-n]
    assert sorted(qscan.shortlist(scores[:1000], 5000).tolist()) == list(range(1000))


def test_project_is_the_principal_part_of_the_estimate():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1000, 48)).astype(np.float32)
    coords, scale = qscan.quantize_columns(x)
    qc = rng.standard_normal(48).astype(np.float32)
    want = (coords.astype(np.float64) * scale) @ qc
    np.testing.assert_allclose(qscan.project(coords, scale, qc), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(coords * scale, x, atol=float(np.abs(x).max(axis=0).max()) / 127)


def test_a_thread_limited_to_one_numba_thread_takes_the_serial_gil_free_build():
    """(kernels.twin) The service's request threads: same numbers, no pool, the GIL released."""
    import threading

    import numba

    rng = np.random.default_rng(6)
    coords, scale = qscan.quantize_columns(rng.standard_normal((5000, 32)).astype(np.float32))
    qc = rng.standard_normal(32).astype(np.float32)
    here = qscan.project(coords, scale, qc)
    got = {}

    def one_thread() -> None:
        numba.set_num_threads(1)  # thread-local, as limit_threads leaves every thread of a service
        got["scores"] = qscan.project(coords, scale, qc)

    t = threading.Thread(target=one_thread)
    t.start()
    t.join()
    np.testing.assert_allclose(got["scores"], here, rtol=1e-5, atol=1e-5)
    serial, parallel = qscan._project.serial, qscan._project.parallel
    assert serial.signatures and serial.targetoptions.get("nogil") is True
    assert not serial.targetoptions.get("parallel") and parallel.targetoptions.get("parallel") is True
    if numba.get_num_threads() > 1:  # this thread: the parallel build
        assert parallel.signatures
