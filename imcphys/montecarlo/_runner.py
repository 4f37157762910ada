"""The runner: chunks to a memory budget, keys per cell, chunk files, resume, progress, sharding over devices."""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray

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
        "code": {
            "imcphys": __version__,
            "source_sha256": _source_digest(),
            "jax": jax.__version__,
            "x64": bool(jax.config.jax_enable_x64),
        },
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
    """The jitted kernel of one block of cells: (cell indices, end of the chunk) -> (per-cell, counts, sampled)."""
    return _cached_chunk_function(study, tuple(_key_data(key)), str(jr.key_impl(key)))


@functools.lru_cache(maxsize=8)  # a resumed or repeated run in the same process reuses the compiled kernel
def _cached_chunk_function(study: Study, key_data: tuple[int, ...], impl: str) -> Callable:
    key = jr.wrap_key_data(np.asarray(key_data, dtype=np.uint32), impl=impl)
    k_pop, k_noise = population_key(key), noise_key(key)
    varied = _varied(study.specs)
    per_cell = [k for k, o in study.outputs.items() if o.per_cell]
    counted = [k for k, o in study.outputs.items() if not o.per_cell]

    def block(cells, stop):
        pop = sample_cells(study.device, study.specs, cells, key=k_pop)
        raw = study.run(pop, cell_keys(k_noise, cells))
        valid = cells < stop  # padding cells (beyond the chunk) are computed, never counted or kept
        counts = {}
        for name in counted:
            x = jnp.asarray(raw[name]).astype(_int())
            mask = valid.reshape(valid.shape + (1,) * (x.ndim - 1))
            counts[name] = jnp.sum(jnp.where(mask, x, 0), axis=0)
        return ({k: raw[k] for k in per_cell}, counts, {k: getattr(pop, k) for k in varied})

    return jax.jit(block)


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
    if len(shards) == 1 or pool is None:  # dispatch is asynchronous: a loop launches them side by side too
        outs = [fn(shard.data, stop_arr) for shard in shards]
    else:
        outs = list(pool.map(lambda shard: fn(shard.data, stop_arr), shards))
    return sorted(((shard.index[0].start or 0, out) for shard, out in zip(shards, outs)), key=lambda t: t[0])


def _gather(launched: list[tuple[int, tuple]]) -> tuple[dict, dict, dict]:
    """Per-cell outputs concatenated in cell order, counts summed (exact integers), sampled values."""
    parts = [jax.device_get(out) for _, out in launched]
    cat = lambda i: {k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]}  # noqa: E731
    counts = {k: np.sum([p[1][k] for p in parts], axis=0) for k in parts[0][1]}
    return cat(0), counts, cat(2)


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
    out_bytes = sum(
        np.dtype(x.dtype).itemsize * math.prod(x.shape[1:])
        for x in jax.tree_util.tree_leaves((compiled.out_info[0], compiled.out_info[2]))
    )
    return device_bytes / probe_cells + 2.0 * out_bytes


# ------------------------------------------------------------------------------------------- the runner
#: Largest default chunk per device [cells]. Beyond ~1e5 cells a device computes no faster per cell (measured on
#: CPU: the same cells/CPU-second at 1e5 and 4e5 cells per device), while a smaller chunk loses less to a kill
#: and shows progress sooner.
MAX_CELLS_PER_DEVICE = 2**18


def _choose_chunk(study: Study, key: PRNGKeyArray, cells: int, memory_budget: float, mesh: Mesh) -> int:
    # two chunks are alive at once (the next computes while the last is written)
    per_cell = 2.0 * bytes_per_cell(study, key)
    chunk = min(int(memory_budget // per_cell), MAX_CELLS_PER_DEVICE * mesh.size)
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
    **options: Any,
) -> MonteCarloResult:
    """Run ``study`` over ``cells`` cells in chunks, saving each to ``out``; return the labelled results.

    ``study`` is a :class:`Study`, or a registered name built from ``card`` with ``options`` (e.g.
    ``temperatures=[298.15, 358.15]``). ``chunk_cells`` fixes the chunk size; otherwise it is the largest that
    fits ``memory_budget`` [bytes] by XLA's memory count (the process's fixed ~0.3 GB of JAX runtime is extra).
    Chunks are sharded over ``devices`` (default: every local JAX device). ``resume=True`` continues a run
    in ``out`` made with the same settings (a finished run is just reopened); without it, ``out`` must not
    hold a run already. ``progress`` shows a bar with cells/s and the time left. Results do not depend on
    ``chunk_cells`` or on the devices; see the module docstring.
    """
    from tqdm import tqdm

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
    out = Path(out)
    manifest_path = out / "run.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    if previous is not None and not resume:
        raise FileExistsError(
            f"{out} already holds a Monte Carlo run; pass resume=True (--resume) to continue "
            f"it, or choose another out directory"
        )

    mesh = _mesh(devices)
    if chunk_cells is None:
        chunk_cells = (
            previous["identity"]["chunk_cells"]
            if previous is not None
            else _choose_chunk(study, key, cells, memory_budget, mesh)
        )
    chunk_cells = min(chunk_cells, cells)
    identity = _identity(study, cells, chunk_cells, key)
    if previous is not None and previous["identity"] != identity:
        differs = sorted(k for k in identity if previous["identity"].get(k) != identity[k])
        raise ValueError(
            f"{out} holds a different run (differs in: {', '.join(differs)}); resume with the same "
            f"study, card, key, cells and code, or choose another out directory"
        )
    fingerprint = _digest(identity)
    n_chunks = -(-cells // chunk_cells)
    if jax.process_index() == 0 and previous is None:
        (out / "chunks").mkdir(parents=True, exist_ok=True)
        manifest = {
            "identity": identity,
            "fingerprint": fingerprint,
            "chunks": n_chunks,
            "ber": study.ber,
            "bits_per_cell": study.bits_per_cell,
        }
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, manifest_path)
    (out / "chunks").mkdir(parents=True, exist_ok=True)

    fn = _chunk_function(study, key)
    width = _padded(chunk_cells, mesh.size)  # one shape for every chunk: one compilation
    sharding = NamedSharding(mesh, PartitionSpec("cell"))
    mine = [c for c in range(n_chunks) if c % jax.process_count() == jax.process_index()]
    counted = [k for k, o in study.outputs.items() if not o.per_cell]
    totals: dict[str, np.ndarray] = {}

    def bounds(c: int) -> tuple[int, int]:
        return c * chunk_cells, min((c + 1) * chunk_cells, cells)

    def add(data: dict[str, np.ndarray]) -> None:
        for name in counted:
            totals[name] = totals[name] + data[name] if name in totals else np.array(data[name])

    def finish(c: int, pending: list) -> dict[str, np.ndarray]:
        """Gather, check and write chunk c (in the writer thread); its data."""
        start, stop = bounds(c)
        per_cell, counts, sampled = _gather(pending)
        n = stop - start
        values = {k: v[:n] for k, v in sampled.items()}
        if values:
            _check_chunk(study, values, first_cell=start)
        data = {**{k: np.asarray(v[:n]) for k, v in per_cell.items()}, **{k: np.asarray(v) for k, v in counts.items()}}
        _write_chunk(_chunk_path(out, c), study, data, first_cell=start, fingerprint=fingerprint, index=c)
        return data

    bar = tqdm(total=cells, unit="cell", unit_scale=True, desc=study.name, disable=not progress, dynamic_ncols=True)
    # one pool for the run (not one per chunk): it launches the kernel on several devices at once
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=mesh.size) if mesh.size > 1 else None
    # one writer, so chunks are checked and written in order; at most two chunks are alive (one computing, one
    # being written), as the memory budget assumes
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="imcphys-mc-writer")
    try:
        todo = []
        for c in mine:
            start, stop = bounds(c)
            data = _read_chunk(
                _chunk_path(out, c), study, fingerprint=fingerprint, index=c, first_cell=start, n_cells=stop - start
            )
            if data is None:
                todo.append(c)
            else:
                add(data)
                bar.update(stop - start)
        writing: tuple[int, concurrent.futures.Future] | None = None

        def collect() -> None:
            done, future = writing
            add(future.result())  # a bad sample in that chunk raises here, before any later chunk is written
            bar.update(bounds(done)[1] - bounds(done)[0])

        for c in todo:
            start, stop = bounds(c)
            cell_ids = jax.device_put(np.arange(start, start + width, dtype=_int()), sharding)
            # computes chunk c (on the CPU the call returns when it is done, having released the GIL) while the
            # writer thread checks and writes chunk c - 1: the files cost no time unless they cost more than a chunk
            launched = _launch(fn, cell_ids, stop, pool)
            if writing is not None:
                collect()
            writing = (c, writer.submit(finish, c, launched))
        if writing is not None:
            collect()
    except BaseException as err:
        err.add_note(f"finished chunks are kept in {out / 'chunks'}; rerun with resume=True (--resume) to continue")
        raise
    finally:
        writer.shutdown(wait=True)  # a chunk being written is finished (atomically) before the run stops
        bar.close()
        if pool is not None:
            pool.shutdown(wait=False)

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("imcphys.montecarlo: chunks done")
        if jax.process_index() == 0:  # other processes' counts are read back from their files
            totals = {}
            for c in range(n_chunks):
                start, stop = bounds(c)
                data = _read_chunk(
                    _chunk_path(out, c), study, fingerprint=fingerprint, index=c, first_cell=start, n_cells=stop - start
                )
                if data is None:
                    raise RuntimeError(f"chunk {c} of {out} is missing after every process finished")
                add(data)
    if jax.process_index() == 0:
        coords = {name: (np.asarray(v), {"units": u}) for name, (v, u) in study.coords.items()}
        variables = {
            name: (
                study.outputs[name].dims,
                totals[name],
                {"units": study.outputs[name].unit, "description": study.outputs[name].description},
            )
            for name in counted
        }
        _write_netcdf(
            out / "result.nc",
            variables,
            coords,
            {"fingerprint": fingerprint, "cells": cells, "identity": json.dumps(identity)},
        )
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("imcphys.montecarlo: summary written")
    return MonteCarloResult(out)
