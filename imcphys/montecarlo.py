"""Monte Carlo over millions of cells: chunked to a memory budget, resumable, with progress, sharded over devices.

How a run is laid out::

    key ─┬─ fold_in(key, 0): parameters of cell i from fold_in(·, i)      (population.sample_cells)
         └─ fold_in(key, 1): noise key of cell i, fold_in(·, i)            (population.cell_keys)
    chunk c = cells [c·C, (c+1)·C), laid out with NamedSharding over a 1-D mesh "cell" of every local device
    ──▶ on each device, its shard:  study.run(population, keys) → per-cell outputs and integer counts
    ──▶ sampled parameters checked ──▶ OUT/chunks/chunk_000c.nc written atomically (checksum, run fingerprint)
        (in a writer thread, while chunk c + 1 computes)
    ──▶ OUT/result.nc: counts summed over chunks, coordinates, the run's settings

Throughput: the chunk files are netCDF-4 written with h5py directly (milliseconds each), and checking and writing
chunk c overlaps computing chunk c + 1, so the runner runs at the speed of its kernel once a chunk takes longer
to compute than to write (measured: 0.67 of a fused-kernel ceiling in chunks of 5e4 cells, as fast as the bare
study kernel; 0.42 in chunks of 5e3 cells, where the files cost about as much as the cells).

Every random number of cell i comes from (key, i) alone, and every per-cell output is computed elementwise over
cells; integer counts add exactly. So the results are bit-identical whatever the chunk size or the number of
devices, and a run killed at any point resumes (``resume=True``) to the numbers an uninterrupted run gives.
A chunk file whose checksum, fingerprint or cell range does not match is recomputed, never used.

A study is a pure function of (population, per-cell keys) plus labels for its outputs (:class:`Study`); studies
are registered by name (:func:`register_study`) so the CLI can run them from a card:
``imcphys mc --card CARD.toml --study NAME --cells N --out DIR [--resume]``.

Multi-host: call ``jax.distributed.initialize()`` in every process, then the same ``montecarlo(...)`` call in each,
with ``out`` on a file system all processes share. Process p computes chunks c ≡ p (mod process count) on its
own devices (no traffic between hosts: chunks are independent); all meet at a barrier and process 0 writes
``result.nc``. (This path is not exercised by the test suite, which has one host.)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import math
import os
import warnings
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

from .cards import Card, read_card
from .device import AbstractDevice, parameters
from .population import Correlated, Spec, _run_checks, cell_keys, check_sampled, sample_cells

FORMAT_VERSION = 1
_ENGINE = "h5netcdf"


def _int() -> np.dtype:
    """int64 with float64 on, else int32 (read at call time: entry points switch x64 on after import)."""
    return jax.dtypes.canonicalize_dtype(np.int64)


class ChunkRecomputed(RuntimeWarning):
    """A chunk file on disk was unreadable, corrupted or from another run, and was computed again."""


@dataclasses.dataclass(frozen=True)
class Output:
    """One output of a study. ``dims`` are the non-cell dimensions (coordinates of the study).

    ``per_cell=True``: the study returns shape (cell, *dims) and every cell's value is kept.
    ``per_cell=False``: a count — the study returns per-cell integers (or booleans) of shape (cell, *dims) and
    only their sum over cells is kept (exact, so chunking cannot change it; memory does not grow with cells).
    """

    dims: tuple[str, ...]
    unit: str
    description: str
    per_cell: bool = True


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: compiled chunk kernels are cached per study
class Study:
    """A Monte Carlo study: a device, its variability, and a pure function of (population, keys).

    ``run(population, keys)`` gets a population of n cells (a device with a leading cell axis on its parameters)
    and one PRNG key per cell, and returns ``{output name: array of shape (n, *dims)}``. Cell i's randomness
    must come from ``keys[i]`` only (split it per pulse with :func:`imcphys.population.pulse_keys`), and
    outputs must not mix cells: that is what makes results independent of chunking and devices.
    ``settings`` (JSON-ready) enters the run fingerprint; ``ber`` names a count output of bit errors, with
    ``bits_per_cell`` bits read per cell at each coordinate, for :meth:`MonteCarloResult.ber`.
    """

    name: str
    device: AbstractDevice
    specs: Spec
    run: Callable[[Any, PRNGKeyArray], dict[str, Array]]
    outputs: dict[str, Output]
    coords: dict[str, tuple[np.ndarray, str]]  #: name -> (values, unit)
    settings: dict[str, Any]
    ber: str | None = None
    bits_per_cell: int = 1

    def __post_init__(self):
        for name, out in self.outputs.items():
            missing = [d for d in out.dims if d not in self.coords]
            if missing:
                raise ValueError(f"study {self.name!r}: output {name!r} has dims {missing} without coordinates")
        if self.ber is not None and (self.ber not in self.outputs or self.outputs[self.ber].per_cell):
            raise ValueError(f"study {self.name!r}: ber={self.ber!r} must name a count output (per_cell=False)")


# ------------------------------------------------------------------------------------------------ registry
StudyFactory = Callable[..., Study]
_STUDIES: dict[str, StudyFactory] = {}


def register_study(name: str) -> Callable[[StudyFactory], StudyFactory]:
    """Decorator: register ``factory(card: Card, **options) -> Study`` under ``name`` (for ``imcphys mc``)."""

    def deco(factory: StudyFactory) -> StudyFactory:
        if name in _STUDIES and _STUDIES[name] is not factory:
            raise ValueError(f"a Monte Carlo study named {name!r} is already registered")
        _STUDIES[name] = factory
        return factory

    return deco


def study_names() -> list[str]:
    """Names of the registered studies."""
    from . import mcstudies  # noqa: F401  (registers the built-in studies)

    return sorted(_STUDIES)


def get_study(name: str, *, card: Card | str | Path, **options: Any) -> Study:
    """The registered study ``name`` built from ``card`` (a path or a parsed :class:`Card`) and its options."""
    if name not in study_names():
        raise ValueError(f"unknown Monte Carlo study {name!r}; registered: {study_names()}")
    card = card if isinstance(card, Card) else read_card(card)
    try:
        return _STUDIES[name](card, **options)
    except TypeError as err:
        raise ValueError(f"study {name!r}: bad options {sorted(options)} ({err})") from None


def population_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key a run with ``key`` samples its population from: the run's cells are exactly
    ``population.sample(study.device, study.specs, cells, key=population_key(key))``."""
    return jr.fold_in(key, 0)


def noise_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key of a run's noise: cell i's key is ``fold_in(noise_key(key), i)`` (``population.cell_keys``)."""
    return jr.fold_in(key, 1)


# ------------------------------------------------------------------------------------------ fingerprint
def _source_digest() -> str:
    """sha256 of the library's own source files: a resumed run must be computed by the same code."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
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
    from . import __version__

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


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ chunk files
def _chunk_path(out: Path, index: int) -> Path:
    return out / "chunks" / f"chunk_{index:06d}.nc"


def _write_netcdf(
    path: Path,
    variables: Mapping[str, tuple[tuple[str, ...], np.ndarray, dict[str, str]]],
    coords: Mapping[str, tuple[np.ndarray, dict[str, str]]],
    attrs: Mapping[str, Any],
) -> None:
    """Write a netCDF-4 file (HDF5 with dimension scales, as netCDF-C and ``xarray.open_dataset`` read it) with
    h5py directly, atomically (a temporary file renamed into place).

    Why not ``xarray.Dataset.to_netcdf``: through h5netcdf it costs ~0.1 s of Python per file whatever its size
    (dimension bookkeeping), more than computing a chunk of 1e4 cells; this costs a few milliseconds. Every
    dimension has a coordinate variable (the cell index and the study's coordinates).
    """
    import h5py

    from . import __version__

    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["_NCProperties"] = np.bytes_(
                f"version=2,imcphys={__version__},hdf5={h5py.version.hdf5_version},h5py={h5py.__version__}"
            )
            scales = {}
            for i, (name, (values, at)) in enumerate(coords.items()):
                d = f.create_dataset(name, data=np.asarray(values))
                d.make_scale(name)
                d.attrs["_Netcdf4Dimid"] = np.int32(i)
                for k, v in at.items():
                    d.attrs[k] = v
                scales[name] = d
            for name, (dims, value, at) in variables.items():
                d = f.create_dataset(name, data=np.asarray(value))
                for axis, dim in enumerate(dims):
                    d.dims[axis].attach_scale(scales[dim])
                for k, v in at.items():
                    d.attrs[k] = v
            for k, v in attrs.items():
                f.attrs[k] = v
        # os.replace is atomic: a kill leaves either no file or a complete one (the checksum still guards
        # against a disk that lied)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_chunk(
    path: Path, study: Study, data: dict[str, np.ndarray], *, first_cell: int, fingerprint: str, index: int
) -> None:
    n = (
        next(v.shape[0] for k, v in data.items() if study.outputs[k].per_cell)
        if any(o.per_cell for o in study.outputs.values())
        else 0
    )
    variables = {}
    for name, value in data.items():
        out = study.outputs[name]
        dims = ("cell", *out.dims) if out.per_cell else out.dims
        variables[name] = (dims, value, {"units": out.unit, "description": out.description})
    coords = {name: (np.asarray(values), {"units": unit}) for name, (values, unit) in study.coords.items()}
    coords["cell"] = (np.arange(first_cell, first_cell + n, dtype=np.int64), {})
    _write_netcdf(
        path,
        variables,
        coords,
        {"fingerprint": fingerprint, "chunk": index, "first_cell": first_cell, "checksum": _checksum(data)},
    )


def _read_chunk(
    path: Path, study: Study, *, fingerprint: str, index: int, first_cell: int, n_cells: int
) -> dict[str, np.ndarray] | None:
    """The data of a valid chunk file, or None (with a warning saying why) if it must be recomputed."""
    import h5py

    if not path.exists():
        return None
    try:  # h5py directly: xarray's per-file overhead would dominate resuming a run of many small chunks
        with h5py.File(path, "r") as f:
            data = {name: f[name][()] for name in study.outputs}
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except Exception as err:  # noqa: BLE001  (any unreadable file is recomputed, whatever the reason)
        warnings.warn(
            f"{path}: unreadable ({type(err).__name__}: {err}); recomputing chunk {index}",
            ChunkRecomputed,
            stacklevel=3,
        )
        return None
    problem = None
    if attrs.get("fingerprint") != fingerprint:
        problem = "it belongs to another run (fingerprint differs)"
    elif int(attrs.get("chunk", -1)) != index or int(attrs.get("first_cell", -1)) != first_cell:
        problem = "its cell range differs"
    elif any(study.outputs[k].per_cell and v.shape[0] != n_cells for k, v in data.items()):
        problem = "its cell count differs"
    elif attrs.get("checksum") != _checksum(data):
        problem = "its checksum does not match its data (corrupted)"
    if problem:
        warnings.warn(f"{path}: {problem}; recomputing chunk {index}", ChunkRecomputed, stacklevel=3)
        return None
    return data


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


# -------------------------------------------------------------------------------------------- the result
class MonteCarloResult:
    """A finished (or partly finished) run in a directory: labelled arrays read from its files.

    ``counts`` (summed over all cells) are read on first use and then held in memory; per-cell outputs are read
    from the chunk files on demand (:meth:`dataset` loads them all, :meth:`iter_chunks` streams them).
    """

    def __init__(self, out: str | Path):
        self.path = Path(out)
        manifest = self.path / "run.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{self.path} holds no Monte Carlo run (no run.json)")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        self.cells: int = self.manifest["identity"]["cells"]
        if not (self.path / "result.nc").exists():
            raise FileNotFoundError(f"{self.path}: the run has not finished (no result.nc); resume it first")

    @functools.cached_property
    def counts(self) -> Any:
        """The count outputs (summed over all cells) as an ``xarray.Dataset``, read from ``result.nc``."""
        import xarray as xr

        with xr.open_dataset(self.path / "result.nc", engine=_ENGINE) as ds:
            return ds.load()

    def chunk_files(self) -> list[Path]:
        return [_chunk_path(self.path, i) for i in range(self.manifest["chunks"])]

    def iter_chunks(self) -> Iterator[Any]:
        """Each chunk's per-cell outputs as an ``xarray.Dataset`` (cell coordinate = global cell index)."""
        import xarray as xr

        for path in self.chunk_files():
            with xr.open_dataset(path, engine=_ENGINE) as ds:
                yield ds.load()

    def dataset(self) -> Any:
        """Every per-cell output over all cells, plus the counts, as one ``xarray.Dataset`` (in memory)."""
        import xarray as xr

        per_cell = xr.concat(
            list(self.iter_chunks()),
            dim="cell",
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="override",
        )
        per_cell = per_cell.drop_vars(list(self.counts.data_vars), errors="ignore")
        per_cell.attrs = {}  # the first chunk's attributes, not the run's
        return xr.merge([per_cell, self.counts], compat="override", join="override")

    def ber(self) -> Any:
        """Bit-error rate (errors per bit read) over the study's coordinates, e.g. vs temperature and time."""
        name = self.manifest["ber"]
        if name is None:
            raise ValueError(f"study {self.manifest['identity']['study']!r} does not define a bit-error rate")
        ber = self.counts[name] / (self.cells * self.manifest["bits_per_cell"])
        ber.attrs = {"units": "1", "long_name": "bit-error rate"}
        return ber.rename("ber")

    def plot_ber(self, ax: Any = None) -> Any:
        """BER against the last coordinate (log axes where it is time), one line per value of the others."""
        from . import plot

        ber = self.ber()
        if ax is None:
            _, axes = plot.subplots()
            ax = axes[0, 0]
        x = ber.dims[-1]
        rows = ber.stack(line=ber.dims[:-1]) if ber.ndim > 1 else ber.expand_dims(line=[""])
        for label in rows["line"].values:
            ax.plot(ber[x].values, rows.sel(line=label).values, marker="o", label=str(label))
        if x == "time":
            ax.set_xscale("log")
        ax.set_yscale("log")
        unit = self.counts[x].attrs.get("units", "")
        plot.label(ax, f"{x} [{unit}]", "bit-error rate", f"{self.manifest['identity']['study']}, {self.cells} cells")
        if ber.ndim > 1:
            ax.legend(fontsize=8)
        return ax


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
