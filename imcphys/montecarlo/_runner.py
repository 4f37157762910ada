"""The runner: chunks to a memory budget, keys per cell, chunk files, resume, progress, sharding over devices,
and the three ways of running the chunks: in this process, in every process of a ``jax.distributed`` job, or as
tasks on a Dask cluster (:mod:`._dask`)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray

from .._checks import checked_jit, raise_failed
from .._version import __version__
from ..cards import Card
from ..device import parameters
from ..population import Correlated, Spec, _run_checks, cell_keys, check_sampled, sample_cells
from ._files import FORMAT_VERSION, _chunk_path, _read_chunk, _write_chunk, _write_netcdf
from ._registry import get_study
from ._result import MonteCarloResult
from ._study import Study, noise_key, population_key


def _int() -> np.dtype:
    """int64 with float64 on, else int32 (read at call time: entry points switch x64 on after import)."""
    return jax.dtypes.canonicalize_dtype(np.int64)


# ------------------------------------------------------------------------------------------ fingerprint
@functools.lru_cache(maxsize=1)  # a Dask worker checks it before every chunk
def _source_digest() -> str:
    """sha256 of the library's own source files: a resumed run must be computed by the same code."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]  # the imcphys package
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _key_data(key: PRNGKeyArray) -> list[int]:
    return np.asarray(jr.key_data(key)).ravel().tolist()


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return np.asarray(x).tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x


def _code() -> dict[str, Any]:
    """The code that computes a run: a resumed run, and every Dask worker, must run the same."""
    return {"imcphys": __version__, "source_sha256": _source_digest(), "jax": jax.__version__}


def _identity(study: Study, cells: int, chunk_cells: int, key: PRNGKeyArray) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "study": study.name,
        "settings": _jsonable(study.settings),
        "cells": cells,
        "chunk_cells": chunk_cells,
        "key": _key_data(key),
        "family": type(study.device).__name__,
        "parameters": _jsonable({k: v for k, v in parameters(study.device).items()}),
        "specs": repr(dict(study.specs)),
        "code": {**_code(), "x64": bool(jax.config.jax_enable_x64)},
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# -------------------------------------------------------------------------------------- the chunk kernel
def _varied(specs: Spec) -> list[str]:
    names: list[str] = []
    for group, spec in specs.items():
        names.extend(spec.spreads if isinstance(spec, Correlated) else [group])
    return names


def _chunk_function(study: Study, key: PRNGKeyArray) -> Callable[[Array, Array], tuple]:
    """The compiled kernel of one block of cells: (cell indices, end of the chunk) -> (per-cell, counts, sampled).

    Its runtime checks come back as data (:func:`imcphys._checks.checked_jit`; call ``.unchecked``), so that the
    executable holds no host callback and JAX's persistent compilation cache can keep it between processes.
    """
    return _cached_chunk_function(study, tuple(_key_data(key)), str(jr.key_impl(key)))


def _kernels_built() -> int:
    """How many chunk kernels this process has built (a Dask worker builds one per study and key)."""
    return _cached_chunk_function.cache_info().misses


@functools.lru_cache(maxsize=8)  # a resumed or repeated run in the same process reuses the compiled kernel
def _cached_chunk_function(study: Study, key_data: tuple[int, ...], impl: str) -> Callable:
    key = jr.wrap_key_data(np.asarray(key_data, dtype=np.uint32), impl=impl)
    k_pop, k_noise = population_key(key), noise_key(key)
    varied = _varied(study.specs)
    per_cell = [k for k, o in study.outputs.items() if o.per_cell]
    counted = [k for k, o in study.outputs.items() if not o.per_cell]

    def imcphys_chunk(cells, stop):  # the name JAX's compilation logs show
        pop = sample_cells(study.device, study.specs, cells, key=k_pop)
        raw = study.run(pop, cell_keys(k_noise, cells))
        valid = cells < stop  # padding cells (beyond the chunk) are computed, never counted or kept
        counts = {}
        for name in counted:
            x = jnp.asarray(raw[name]).astype(_int())
            mask = valid.reshape(valid.shape + (1,) * (x.ndim - 1))
            counts[name] = jnp.sum(jnp.where(mask, x, 0), axis=0)
        return ({k: raw[k] for k in per_cell}, counts, {k: getattr(pop, k) for k in varied})

    return checked_jit(imcphys_chunk, arrays_only=True)


def _check_chunk(study: Study, values: dict[str, np.ndarray], *, first_cell: int) -> None:
    """Check a chunk's sampled parameters against the device's ranges; raise naming the first bad cell.

    Fast path: the unvaried parameters stay scalars (the checks are elementwise and broadcast), so a chunk costs
    O(varied parameters × cells). Only when that fails is the population rebuilt in full to find the cell.
    """
    nominal = parameters(study.device)
    light = {k: values.get(k, np.asarray(v)) for k, v in nominal.items()}
    try:
        _run_checks(eqx.tree_at(lambda d: [getattr(d, k) for k in light], study.device, list(light.values())))
        return
    except ValueError:
        pass
    n = next(iter(values.values())).shape[0]
    # the rest broadcast as views: checking costs no copy of the unvaried parameters
    full = {k: values.get(k, np.broadcast_to(np.asarray(v), (n, *np.shape(v)))) for k, v in nominal.items()}
    check_sampled(
        eqx.tree_at(lambda d: [getattr(d, k) for k in full], study.device, list(full.values())),
        specs=study.specs,
        first_cell=first_cell,
    )


def _mesh(devices: Sequence[jax.Device] | None) -> Mesh:
    devs = list(devices) if devices is not None else jax.local_devices()
    return Mesh(np.asarray(devs), ("cell",))


def _padded(n: int, ndev: int) -> int:
    return -(-n // ndev) * ndev


def _launch(
    fn: Callable, cells: jax.Array, stop: int, pool: concurrent.futures.Executor | None = None
) -> list[tuple[int, tuple]]:
    """Run ``fn`` on every addressable shard of the sharded ``cells``, each on its own device (asynchronously).

    Why not shard_map (SPMD): XLA optimises the partitioned program differently from the single-device one
    (measured: 4-device results differed from 1-device ones by 2e-16 relative; pmap too), which would break
    bit-identity across device counts. The same single-device kernel on every shard cannot differ. Its price:
    one compilation per device; threads let those compilations (the first chunk) run side by side.
    """
    stop_arr = np.asarray(stop, dtype=_int())
    shards = cells.addressable_shards
    call = fn.unchecked  # type: ignore[attr-defined]
    if len(shards) == 1 or pool is None:  # dispatch is asynchronous: a loop launches them side by side too
        outs = [call(shard.data, stop_arr) for shard in shards]
    else:
        outs = list(pool.map(lambda shard: call(shard.data, stop_arr), shards))
    return sorted(((shard.index[0].start or 0, out) for shard, out in zip(shards, outs)), key=lambda t: t[0])


def _gather(launched: list[tuple[int, tuple]]) -> tuple[dict, dict, dict, list]:
    """Per-cell outputs concatenated in cell order, counts summed (exact integers), sampled values, and the
    kernel's failed-check records (one per shard)."""
    parts = [jax.device_get(out) for _, (_, out) in launched]
    cat = lambda i: {k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]}  # noqa: E731
    counts = {k: np.sum([p[1][k] for p in parts], axis=0) for k in parts[0][1]}
    return cat(0), counts, cat(2), [error for _, (error, _) in launched]


def bytes_per_cell(study: Study, key: PRNGKeyArray, *, probe_cells: int = 1024) -> float:
    """Peak memory per cell of a chunk [bytes]: XLA's own count (arguments, outputs, temporaries) for a probe
    block, plus the host copies of the outputs made while a chunk is written (about two)."""
    return _cached_bytes_per_cell(study, tuple(_key_data(key)), str(jr.key_impl(key)), probe_cells)


@functools.lru_cache(maxsize=8)  # compiling the probe costs seconds: once per study and key in a process
def _cached_bytes_per_cell(study: Study, key_data: tuple[int, ...], impl: str, probe_cells: int) -> float:
    fn = _cached_chunk_function(study, key_data, impl)
    compiled = fn.lower(jax.ShapeDtypeStruct((probe_cells,), _int()), jax.ShapeDtypeStruct((), _int())).compile()
    stats = compiled.memory_analysis()
    device_bytes = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    per_cell, _, sampled = compiled.out_info[1]  # (failed checks, kernel outputs)
    out_bytes = sum(
        np.dtype(x.dtype).itemsize * math.prod(x.shape[1:]) for x in jax.tree_util.tree_leaves((per_cell, sampled))
    )
    return device_bytes / probe_cells + 2.0 * out_bytes


# ------------------------------------------------------------------------------------------- a run
#: Largest default chunk per device [cells]. Beyond ~1e5 cells a device computes no faster per cell (measured on
#: CPU: the same cells/CPU-second at 1e5 and 4e5 cells per device), while a smaller chunk loses less to a kill
#: and shows progress sooner.
MAX_CELLS_PER_DEVICE = 2**18


def _choose_chunk(study: Study, key: PRNGKeyArray, cells: int, memory_budget: float, mesh: Mesh, parts: int = 1) -> int:
    """Cells per chunk: the most that fit ``memory_budget``, in at least ``parts`` chunks (one per Dask worker and
    more, so that every worker has work and a lost one costs little)."""
    # two chunks are alive at once (the next computes while the last is written)
    per_cell = 2.0 * bytes_per_cell(study, key)
    chunk = min(int(memory_budget // per_cell), MAX_CELLS_PER_DEVICE * mesh.size, -(-cells // parts))
    if chunk < mesh.size:
        raise ValueError(
            f"memory_budget = {memory_budget:.3g} bytes holds fewer than {mesh.size} cells "
            f"({per_cell:.3g} bytes per cell); raise it"
        )
    if chunk >= cells:
        return cells
    # balanced: every chunk computes a full block of the one compiled shape, so the last chunk should not be a
    # sliver of padding (1e6 cells in chunks of 8.2e5 would compute 1.6e6)
    n_chunks = -(-cells // chunk)
    return min(_padded(-(-cells // n_chunks), mesh.size), chunk)


@dataclasses.dataclass(frozen=True, eq=False)
class _Run:
    """What computing and saving a chunk needs (pickled to Dask workers whole)."""

    study: Study
    key_data: tuple[int, ...]
    impl: str
    cells: int
    chunk_cells: int
    fingerprint: str
    code: dict[str, Any]  #: ``identity["code"]``: every process computing chunks must run the same
    out: Path
    #: what the chunk kernel depends on (the identity without the cell count and chunk size): runs with the same
    #: one share a kernel
    kernel_key: str

    @property
    def key(self) -> PRNGKeyArray:
        return jr.wrap_key_data(np.asarray(self.key_data, dtype=np.uint32), impl=self.impl)

    @property
    def n_chunks(self) -> int:
        return -(-self.cells // self.chunk_cells)

    @property
    def counted(self) -> list[str]:
        return [k for k, o in self.study.outputs.items() if not o.per_cell]

    def bounds(self, c: int) -> tuple[int, int]:
        return c * self.chunk_cells, min((c + 1) * self.chunk_cells, self.cells)

    def read(self, c: int) -> dict[str, np.ndarray] | None:
        """Chunk c's data from its file, or None if it must be computed."""
        start, stop = self.bounds(c)
        return _read_chunk(
            _chunk_path(self.out, c),
            self.study,
            fingerprint=self.fingerprint,
            index=c,
            first_cell=start,
            n_cells=stop - start,
        )

    def finish(self, c: int, launched: list[tuple[int, tuple]]) -> dict[str, np.ndarray]:
        """Gather, check and write chunk c; its data. A bad sampled parameter raises naming its cell (before the
        kernel's own checks, whose messages cannot name one), and nothing of the chunk is written."""
        start, stop = self.bounds(c)
        per_cell, counts, sampled, errors = _gather(launched)
        n = stop - start
        values = {k: v[:n] for k, v in sampled.items()}
        if values:
            _check_chunk(self.study, values, first_cell=start)
        for error in errors:
            raise_failed(error)
        data = {**{k: np.asarray(v[:n]) for k, v in per_cell.items()}, **{k: np.asarray(v) for k, v in counts.items()}}
        _write_chunk(
            _chunk_path(self.out, c), self.study, data, first_cell=start, fingerprint=self.fingerprint, index=c
        )
        return data


def _manifest(out: Path) -> dict[str, Any] | None:
    path = out / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def _start(
    study: Study,
    key: PRNGKeyArray,
    cells: int,
    chunk_cells: int | None,
    memory_budget: float,
    resume: bool,
    out: Path,
    mesh: Mesh,
    parts: int,
) -> tuple[_Run, dict[str, Any]]:
    """Decide the run (chunk size, fingerprint), check it against a run already in ``out``, write ``run.json``."""
    previous = _manifest(out)
    if previous is not None and not resume:
        raise FileExistsError(
            f"{out} already holds a Monte Carlo run; pass resume=True (--resume) to continue "
            f"it, or choose another out directory"
        )
    if chunk_cells is None:
        chunk_cells = (
            previous["identity"]["chunk_cells"]
            if previous is not None
            else _choose_chunk(study, key, cells, memory_budget, mesh, parts)
        )
    identity = _identity(study, cells, min(chunk_cells, cells), key)
    _check_same(out, previous, identity)
    run = _run_of(study, key, identity, out)
    if previous is None:
        (out / "chunks").mkdir(parents=True, exist_ok=True)
        manifest = {
            "identity": identity,
            "fingerprint": run.fingerprint,
            "chunks": run.n_chunks,
            "ber": study.ber,
            "bits_per_cell": study.bits_per_cell,
        }
        tmp = out / f"run.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, out / "run.json")
    return run, identity


def _check_same(out: Path, previous: dict[str, Any] | None, identity: dict[str, Any]) -> None:
    if previous is not None and previous["identity"] != identity:
        differs = sorted(k for k in identity if previous["identity"].get(k) != identity[k])
        raise ValueError(
            f"{out} holds a different run (differs in: {', '.join(differs)}); resume with the same "
            f"study, card, key, cells and code, or choose another out directory"
        )


def _run_of(study: Study, key: PRNGKeyArray, identity: dict[str, Any], out: Path) -> _Run:
    return _Run(
        study,
        tuple(_key_data(key)),
        str(jr.key_impl(key)),
        identity["cells"],
        identity["chunk_cells"],
        _digest(identity),
        identity["code"],
        out,
        _digest({k: v for k, v in identity.items() if k not in ("cells", "chunk_cells")}),
    )


# ---------------------------------------------------------------------------------- in this process
@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[threading.Event]:
    """While running: the first SIGINT (Ctrl-C) only sets the event, so that the chunk in flight is finished and
    saved before the run stops; a second one stops at once (chunks already written are kept either way)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread: elsewhere Ctrl-C keeps its usual effect
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(run: _Run) -> KeyboardInterrupt:
    done = sum(_chunk_path(run.out, c).exists() for c in range(run.n_chunks))
    return KeyboardInterrupt(f"interrupted: {done} of {run.n_chunks} chunks saved in {run.out / 'chunks'}")


def _compute_here(
    run: _Run, todo: list[int], mesh: Mesh, add: Callable[[int, dict], None], stop: threading.Event
) -> None:
    """Compute the chunks ``todo`` on this process's devices, each checked and written while the next computes."""
    fn = _chunk_function(run.study, run.key)
    width = _padded(run.chunk_cells, mesh.size)  # one shape for every chunk: one compilation
    sharding = NamedSharding(mesh, PartitionSpec("cell"))
    # one pool for the run (not one per chunk): it launches the kernel on several devices at once
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=mesh.size) if mesh.size > 1 else None
    # one writer, so chunks are checked and written in order; at most two chunks are alive (one computing, one
    # being written), as the memory budget assumes
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="imcphys-mc-writer")
    writing: tuple[int, concurrent.futures.Future] | None = None
    try:
        for c in todo:
            start, _ = run.bounds(c)
            cell_ids = jax.device_put(np.arange(start, start + width, dtype=_int()), sharding)
            # computes chunk c (on the CPU the call returns when it is done, having released the GIL) while the
            # writer thread checks and writes chunk c - 1: the files cost no time unless they cost more than a chunk
            launched = _launch(fn, cell_ids, run.bounds(c)[1], pool)
            if writing is not None:
                add(writing[0], writing[1].result())  # a bad sample raises here, before any later chunk is written
            writing = (c, writer.submit(run.finish, c, launched))
            if stop.is_set():
                break
        if writing is not None:
            add(writing[0], writing[1].result())
    finally:
        writer.shutdown(wait=True)  # a chunk being written is finished (atomically) before the run stops
        if pool is not None:
            pool.shutdown(wait=False)
    if stop.is_set() and c != todo[-1]:
        raise _interrupted(run)


# ------------------------------------------------------------------------- every process of jax.distributed
def _all_ok(ok: bool) -> bool:
    """True in every process when ``ok`` is true in every process (a collective: all must call it)."""
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _start_multihost(args: tuple, out: Path) -> tuple[_Run, dict[str, Any]]:
    """Process 0 decides the run and writes ``run.json`` before any other process reads it; the others take the
    chunk size from it and check that they would compute the same run (same code, card, key …)."""
    study, key, cells, chunk_cells, memory_budget, resume, _, mesh, parts = args
    error: BaseException | None = None
    started = None
    if jax.process_index() == 0:
        try:
            started = _start(*args)
        except Exception as err:  # noqa: BLE001  (raised below, after every process has heard of it)
            error = err
    if not _all_ok(error is None):
        raise error or RuntimeError("process 0 could not start the Monte Carlo run (its error says why)")
    if started is None:
        try:
            manifest = _manifest(out)
            if manifest is None:
                raise FileNotFoundError(f"{out / 'run.json'} is not visible here: out must be a shared file system")
            identity = _identity(study, cells, manifest["identity"]["chunk_cells"], key)
            _check_same(out, manifest, identity)
            started = (_run_of(study, key, identity, out), identity)
        except Exception as err:  # noqa: BLE001
            error = err
    if not _all_ok(error is None):
        raise error or RuntimeError(
            "another process computes a different Monte Carlo run (its error says why); every process must run "
            "the same code, card, key and cells"
        )
    assert started is not None
    return started


# ----------------------------------------------------------------------------------------------- the runner
def _check_int(name: str, value: Any, lower: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lower:
        raise ValueError(f"{name} must be an integer >= {lower}; got {value!r}")


def montecarlo(
    study: Study | str,
    *,
    cells: int,
    key: PRNGKeyArray,
    out: str | Path,
    card: Card | str | Path | None = None,
    chunk_cells: int | None = None,
    memory_budget: float = 1e9,
    resume: bool = False,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    client: Any = None,
    **options: Any,
) -> MonteCarloResult:
    """Run ``study`` over ``cells`` cells in chunks, saving each to ``out``; return the labelled results.

    ``study`` is a :class:`Study`, or a registered name built from ``card`` with ``options`` (e.g.
    ``temperatures=[298.15, 358.15]``). ``chunk_cells`` fixes the chunk size; otherwise it is the largest that
    fits ``memory_budget`` [bytes] by XLA's memory count (the process's fixed ~0.3 GB of JAX runtime is extra).
    Chunks are sharded over ``devices`` (default: every local JAX device). ``resume=True`` continues a run
    in ``out`` made with the same settings (a finished run is just reopened); without it, ``out`` must not
    hold a run already. ``progress`` shows a bar with cells/s and the time left (of the cells still to compute).
    Results do not depend on ``chunk_cells`` or on the devices; see the module docstring.

    ``client``: run the chunks as tasks on a Dask cluster (``pip install imcphys[cluster]``) — a
    ``distributed.Client``, a scheduler address (``"tcp://host:8786"``) or the path of a scheduler file. The
    workers write the chunk files to ``out``, which they must all see (a shared file system), and return only the
    counts; results are the same bits as in one process, and a run can be resumed by either engine.

    A first Ctrl-C (SIGINT) lets the chunk in flight finish and be saved, then stops the run with
    ``KeyboardInterrupt`` (a second one stops at once); ``resume=True`` continues it.
    """
    from . import _dask

    if isinstance(study, str):
        if card is None:
            raise ValueError("card is required to build a registered study by name")
        study = get_study(study, card=card, **options)
    elif options or card is not None:
        raise ValueError(f"options {sorted(options)} and card apply only to a study given by name")
    _check_int("cells", cells, 1)
    if chunk_cells is not None:
        _check_int("chunk_cells", chunk_cells, 1)
    if not (isinstance(memory_budget, (int, float)) and memory_budget > 0):
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}")
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()):
        raise ValueError(f"key must be a single typed PRNG key (jax.random.key(seed)); got {key!r}")
    multihost = jax.process_count() > 1
    if client is not None and (devices is not None or multihost):
        raise ValueError("client (Dask) excludes devices and jax.distributed: the workers use their own devices")
    dask_client, owned = _dask.connect(client) if client is not None else (None, False)
    try:
        return _montecarlo(
            study, key, cells, Path(out), chunk_cells, memory_budget, resume, progress, devices, dask_client
        )
    finally:
        if owned:
            dask_client.close()


def _montecarlo(
    study: Study,
    key: PRNGKeyArray,
    cells: int,
    out: Path,
    chunk_cells: int | None,
    memory_budget: float,
    resume: bool,
    progress: bool,
    devices: Sequence[jax.Device] | None,
    dask_client: Any,
) -> MonteCarloResult:
    from tqdm import tqdm

    from . import _dask

    multihost = jax.process_count() > 1
    mesh = _mesh(devices)
    parts = 1 if dask_client is None else 4 * max(1, len(dask_client.scheduler_info()["workers"]))
    args = (study, key, cells, chunk_cells, memory_budget, resume, out, mesh, parts)
    run, identity = _start_multihost(args, out) if multihost else _start(*args)
    (out / "chunks").mkdir(parents=True, exist_ok=True)

    mine = [c for c in range(run.n_chunks) if c % jax.process_count() == jax.process_index()]
    totals: dict[str, np.ndarray] = {}
    bar = None

    def add(c: int, data: dict[str, np.ndarray]) -> None:
        for name in run.counted:
            totals[name] = totals[name] + data[name] if name in totals else np.array(data[name])
        if bar is not None:
            bar.update(run.bounds(c)[1] - run.bounds(c)[0])

    error: BaseException | None = None
    try:
        todo, on_disk = [], 0
        for c in mine:
            data = run.read(c)
            if data is None:
                todo.append(c)
            else:
                add(c, data)
                on_disk += run.bounds(c)[1] - run.bounds(c)[0]
        mine_cells = sum(run.bounds(c)[1] - run.bounds(c)[0] for c in mine)
        # the bar starts at the cells already on disk: its rate and time left count only the new work
        bar = tqdm(
            total=mine_cells,
            initial=on_disk,
            unit="cell",
            unit_scale=True,
            desc=study.name,
            disable=not progress or not todo,
            dynamic_ncols=True,
        )
        with _deferred_interrupt() as stop:
            if not todo:
                pass
            elif dask_client is not None:
                _dask.compute(dask_client, run, todo, add, stop)
            else:
                _compute_here(run, todo, mesh, add, stop)
    except BaseException as err:
        if not multihost or isinstance(err, KeyboardInterrupt):
            err.add_note(f"finished chunks are kept in {out / 'chunks'}; rerun with resume=True (--resume) to continue")
            raise
        error = err  # the other processes hear of it at the barrier below, rather than waiting there forever
    finally:
        if bar is not None:
            bar.close()
        bar = None

    if multihost and not _all_ok(error is None):
        if error is None:
            raise RuntimeError(f"another process failed computing its chunks; finished chunks are kept in {out}")
        error.add_note(f"finished chunks are kept in {out / 'chunks'}; rerun with resume=True (--resume) to continue")
        raise error
    if multihost and jax.process_index() == 0:  # other processes' counts are read back from their files
        totals = {}
        for c in range(run.n_chunks):
            data = run.read(c)
            if data is None:
                raise RuntimeError(f"chunk {c} of {out} is missing after every process finished")
            add(c, data)
    if jax.process_index() == 0:
        _write_result(run, identity, totals)
    if multihost:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("imcphys.montecarlo: summary written")
    return MonteCarloResult(out)


def _write_result(run: _Run, identity: dict[str, Any], totals: dict[str, np.ndarray]) -> None:
    study = run.study
    coords = {name: (np.asarray(v), {"units": u}) for name, (v, u) in study.coords.items()}
    variables = {
        name: (
            study.outputs[name].dims,
            totals[name],
            {"units": study.outputs[name].unit, "description": study.outputs[name].description},
        )
        for name in run.counted
    }
    _write_netcdf(
        run.out / "result.nc",
        variables,
        coords,
        {"fingerprint": run.fingerprint, "cells": run.cells, "identity": json.dumps(identity)},
    )
