"""CPU threads of one worker: numpy's BLAS and torch told how many cores are theirs.

Local runs start several workers (threads or processes) on one machine; each worker's BLAS
(OpenBLAS, via threadpoolctl) and torch would otherwise start a thread per core, so the
workers oversubscribe the cores: `colorize` on 2 worker threads ran 1.28x one thread's rate
with the default BLAS threads and 1.76x with one BLAS thread each (`finish` of 60 ImageNet
samples, 2 cores).
"""

from __future__ import annotations

import sys


def limit_threads(n: int | None) -> None:
    """Use at most n CPU threads in this process for BLAS and (if it is loaded) torch; None
    keeps the libraries' defaults (remote runners size their workers themselves)."""
    if not n:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
