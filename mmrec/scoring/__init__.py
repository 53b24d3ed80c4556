"""Scoring: which top-k implementation serves a batch of users against the item matrix:
the kernels of `mmrec.kernels` (NumPy, Numba CPU, Numba CUDA) or the torch GEMM route on GPUs.
"""

from .dispatch import BACKENDS, prepare, topk, torch_cuda_available

__all__ = ["BACKENDS", "prepare", "topk", "torch_cuda_available"]
