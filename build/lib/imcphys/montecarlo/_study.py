"""What a Monte Carlo study is: a device, its variability, and a pure function of (population, per-cell keys)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ..device import AbstractDevice
from ..population import Spec


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


def population_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key a run with ``key`` samples its population from: the run's cells are exactly
    ``population.sample(study.device, study.specs, cells, key=population_key(key))``."""
    return jr.fold_in(key, 0)


def noise_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key of a run's noise: cell i's key is ``fold_in(noise_key(key), i)`` (``population.cell_keys``)."""
    return jr.fold_in(key, 1)
