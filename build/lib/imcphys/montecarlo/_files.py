"""Chunk files of a Monte Carlo run: netCDF-4 written with h5py, atomically, with a checksum and the run's
fingerprint; read back only when all of them match."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ._study import Study

FORMAT_VERSION = 1
_ENGINE = "h5netcdf"


class ChunkRecomputed(RuntimeWarning):
    """A chunk file on disk was unreadable, corrupted or from another run, and was computed again."""


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
