"""A finished Monte Carlo run, read back from its directory as labelled arrays."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._files import _ENGINE, _chunk_path


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
        from .. import plot

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
