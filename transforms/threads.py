"""CPU threads of one worker: numpy's BLAS and torch told how many cores are theirs; and its
garbage collector told which objects are there to stay (freeze_long_lived).

Local runs start several workers (threads or processes) on one machine; each worker's BLAS
(OpenBLAS, via threadpoolctl) and torch would otherwise start a thread per core, so the
workers oversubscribe the cores: `colorize` on 2 worker threads ran 1.28x one thread's rate
with the default BLAS threads and 1.76x with one BLAS thread each (`finish` of 60 ImageNet
samples, 2 cores).
"""

from __future__ import annotations

import gc
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


SDK_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"  # what a Beam worker process runs


def in_sdk_worker() -> bool:
    """Whether this process is a Beam SDK worker (`python -m` SDK_WORKER_MAIN: the DirectRunner's
    multi_processing workers, Dataflow's, Flink's and Spark's), not a process that runs a
    pipeline among other work (the CLI in-process, a notebook, the tests)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == SDK_WORKER_MAIN


def freeze_long_lived() -> bool:
    """In a Beam SDK worker process (a DoFn's set-up): tell the garbage collector that what the
    worker holds now (Beam, the job's modules, a DoFn's model) is there to stay: one
    collection, then the objects alive after it frozen (gc.freeze), so that later full
    collections skip them (170,000-210,000 objects per `stage` worker, whose 2-3 full
    collections cost it 0.08-0.28 s over a 4,000-input run; a second call collects only
    what came since the first). Frozen objects are never collected, so other processes are
    left alone: their pipelines' objects die when a run ends. Whether it froze."""
    if not in_sdk_worker():
        return False
    gc.collect()
    gc.freeze()
    return True
