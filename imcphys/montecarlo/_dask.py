"""Chunks as tasks on a Dask cluster (``pip install imcphys[cluster]``).

Each chunk is one task. A worker checks that it runs the code the run was started with (imcphys version and
source, JAX version) before it touches ``out``, reuses the chunk's file if a valid one is there (a chunk
rescheduled after its worker was lost, a resumed run), or else computes the chunk on its own JAX devices, checks
it, writes its file atomically and returns only the counts. The kernel is built once per worker and study (the
worker keeps the first copy of each study it receives, so the kernel cache of :mod:`._runner` finds it).

Failure semantics: a task whose worker dies is rescheduled by the scheduler (and a chunk that worker had already
written is read, not computed again); a task that raises (a bad sample, a version mismatch) is not retried — the
run stops with that error and cancels the rest.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._compilation import enable_compilation_cache
from ._runner import _code, _compute_here, _interrupted, _mesh, _Run
from ._study import Study


class VersionMismatch(RuntimeError):
    """A Dask worker runs other code (imcphys, its source, or JAX) than the process that started the run."""


def connect(client: Any) -> tuple[Any, bool]:
    """A ``distributed.Client`` from a client, a scheduler address or the path of a scheduler file, and whether it
    was made here (then the caller closes it)."""
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "running Monte Carlo on a Dask cluster needs the distributed package: pip install 'imcphys[cluster]'"
        ) from None
    if isinstance(client, distributed.Client):
        return client, False
    if isinstance(client, (str, Path)):
        if Path(client).is_file():
            return distributed.Client(scheduler_file=str(client)), True
        if isinstance(client, str) and ":" in client:
            return distributed.Client(client), True
        raise ValueError(
            f"client must be a distributed.Client, a scheduler address (tcp://host:port) or an existing "
            f"scheduler file; got {client!r}"
        )
    raise ValueError(f"client must be a distributed.Client, a scheduler address or a scheduler file; got {client!r}")


def compute(client: Any, run: _Run, todo: list[int], add: Callable[[int, dict], None], stop: threading.Event) -> None:
    """Run chunks ``todo`` as tasks on ``client``'s workers; ``add`` each chunk's counts as it comes back."""
    import cloudpickle  # installed with distributed: pickles the study's functions by value
    import distributed

    payload = cloudpickle.dumps(run)  # unpickled on the worker only after it has matched the run's precision (x64)
    tag = uuid.uuid4().hex[:8]  # fresh task keys: a failed earlier run's tasks are never taken for these
    futures = [
        client.submit(
            _chunk_task,
            run.code,
            payload,
            c,
            key=f"imcphys-chunk-{tag}-{c:06d}",
            pure=False,
            retries=0,
        )
        for c in todo
    ]
    try:
        for future in distributed.as_completed(futures):
            c, counts = future.result()  # a task's error is raised here, once
            add(c, counts)
            if stop.is_set() and len(todo) > 1:
                raise _interrupted(run)
    finally:
        client.cancel(futures)


#: The studies this worker has computed, by kernel key: a run's study is replaced by the first copy of an equal
#: one, so that the kernel cache of :mod:`._runner` (by study object) builds its kernel once per worker.
_STUDIES: collections.OrderedDict[str, Study] = collections.OrderedDict()
_KEEP = 4


def _worker_run(payload: bytes) -> _Run:
    import cloudpickle

    run = cloudpickle.loads(payload)
    study = _STUDIES.setdefault(run.kernel_key, run.study)
    while len(_STUDIES) > _KEEP:
        _STUDIES.popitem(last=False)
    return dataclasses.replace(run, study=study)


def _chunk_task(code: dict[str, Any], payload: bytes, c: int) -> tuple[int, dict[str, np.ndarray]]:
    """One chunk on a worker: the version check, then the chunk file (read or computed); its counts."""
    here = _code()
    differs = sorted(k for k in here if here[k] != code.get(k))
    if differs:
        raise VersionMismatch(
            f"this Dask worker runs other code than the process that started the run (differs in: "
            f"{', '.join(differs)}; worker: {', '.join(f'{k}={here[k]}' for k in differs)}); install the same "
            f"imcphys and JAX on every worker. No chunk was written."
        )
    # a worker process is an entry point: it computes in the precision the run was started in, and keeps its
    # compiled kernels in the per-user cache (a restarted worker loads the kernel instead of compiling it)
    jax.config.update("jax_enable_x64", bool(code["x64"]))
    if jax.config.jax_compilation_cache_dir is None:
        enable_compilation_cache()
    run = _worker_run(payload)
    data = run.read(c)
    if data is None:
        got: dict[str, dict[str, np.ndarray]] = {}
        _compute_here(run, [c], _mesh(None), lambda _, d: got.setdefault("data", d), threading.Event())
        data = got["data"]
    return c, {name: data[name] for name in run.counted}
