"""Device-to-device variability: specs over device parameters by name, sampled into populations.

A *population* is a device module whose parameter fields carry a leading cell axis; ``eqx.filter_vmap`` maps
single-cell code over it. Cell ``i`` of a population drawn with ``key`` always gets the same parameters, whatever
the population size or the chunk it is drawn in (its random numbers come from ``fold_in(key, i)``), so chunked Monte
Carlo runs reproduce unchunked ones bit for bit.

Spreads are written relative to the device's nominal value where that is natural::

    specs = {"activation_energy": Normal(std=0.02),              # absolute, in the parameter's SI unit
             "gap_decay_length": LogNormal(sigma=0.05),         # median = nominal, σ of ln(value)
             "oxide_thickness": Normal(std=0.03, relative=True)} # 3 % of nominal
    pop = sample(device, specs, n=10_000, key=key)
"""

from __future__ import annotations

import abc
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._checks import check_range
from .device import AbstractDevice, parameter_units


class AbstractSpread(eqx.Module):
    """How one parameter varies from cell to cell, as a transform of a standard normal z."""

    @abc.abstractmethod
    def transform(self, nominal: Array, z: Array) -> Array:
        """The parameter value [SI] for standard-normal draws ``z`` around ``nominal``."""


class Normal(AbstractSpread):
    """nominal + std·z (``relative``: nominal·(1 + std·z))."""

    std: float
    relative: bool = False

    def __check_init__(self):
        check_range("Normal.std", self.std, lower=0.0)

    def transform(self, nominal, z):
        return nominal * (1 + self.std * z) if self.relative else nominal + self.std * z


class LogNormal(AbstractSpread):
    """nominal·exp(sigma·z): median = nominal, σ of ln(value) = ``sigma``; keeps a positive parameter positive."""

    sigma: float

    def __check_init__(self):
        check_range("LogNormal.sigma", self.sigma, lower=0.0)

    def transform(self, nominal, z):
        return nominal * jnp.exp(self.sigma * z)


class TruncatedNormal(AbstractSpread):
    """Normal (absolute or ``relative``) truncated to [lower, upper] (absolute SI bounds), by inverse CDF."""

    std: float
    lower: float = -np.inf
    upper: float = np.inf
    relative: bool = False

    def __check_init__(self):
        check_range("TruncatedNormal.std", self.std, lower=0.0, lower_open=True)
        if not self.lower < self.upper:
            raise ValueError(f"TruncatedNormal needs lower < upper; got [{self.lower}, {self.upper}]")

    def transform(self, nominal, z):
        scale = self.std * nominal if self.relative else self.std
        a = (self.lower - nominal) / scale
        b = (self.upper - nominal) / scale
        cdf = jax.scipy.stats.norm.cdf
        u = cdf(a) + jax.scipy.stats.norm.cdf(z) * (cdf(b) - cdf(a))
        return nominal + scale * jax.scipy.special.ndtri(jnp.clip(u, 1e-300, 1 - 1e-16))


class Uniform(AbstractSpread):
    """Uniform on nominal ± half_width (``relative``: nominal·(1 ± half_width))."""

    half_width: float
    relative: bool = False

    def __check_init__(self):
        check_range("Uniform.half_width", self.half_width, lower=0.0)

    def transform(self, nominal, z):
        u = 2.0 * jax.scipy.stats.norm.cdf(z) - 1.0
        return nominal * (1 + self.half_width * u) if self.relative else nominal + self.half_width * u


class Correlated(eqx.Module):
    """Several parameters whose standard-normal draws share the correlation matrix ``corr``."""

    spreads: dict[str, AbstractSpread]
    corr: np.ndarray = eqx.field(converter=np.asarray)

    def __check_init__(self):
        n = len(self.spreads)
        if self.corr.shape != (n, n):
            raise ValueError(f"Correlated: corr must be {n}x{n} for {list(self.spreads)}; got {self.corr.shape}")
        if not np.allclose(self.corr, self.corr.T) or np.any(np.linalg.eigvalsh(self.corr) <= 0):
            raise ValueError("Correlated: corr must be symmetric positive definite")
        if not np.allclose(np.diag(self.corr), 1.0):
            raise ValueError("Correlated: corr must have ones on its diagonal")


Spec = Mapping[str, "AbstractSpread | Correlated"]


def _name_key(key: PRNGKeyArray, name: str) -> PRNGKeyArray:
    return jr.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _normals(key: PRNGKeyArray, cells: Array, dim: int) -> Float[Array, "n dim"]:
    """Standard normals for cell indices ``cells``: row i depends only on (key, cells[i])."""
    return jax.vmap(lambda i: jr.normal(jr.fold_in(key, i), (dim,)))(cells)


def sample(device: AbstractDevice, specs: Spec, n: int, *, key: PRNGKeyArray, first_cell: int = 0) -> Any:
    """A population of ``n`` cells (cells ``first_cell`` … ``first_cell + n − 1``) drawn from ``specs``.

    Every parameter field gets a leading axis of length n; parameters without a spec keep their nominal value.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of cells) must be a positive integer; got {n!r}")
    units = parameter_units(device)
    cells = jnp.arange(first_cell, first_cell + n)
    values: dict[str, Array] = {}
    for group_name, spec in specs.items():
        spreads = spec.spreads if isinstance(spec, Correlated) else {group_name: spec}
        for name in spreads:
            if name not in units:
                raise ValueError(f"variability spec for unknown parameter {name!r} of {type(device).__name__}; "
                                 f"known: {sorted(units)}")
            if name in values:
                raise ValueError(f"parameter {name!r} appears in two variability specs")
        z = _normals(_name_key(key, group_name), cells, len(spreads))
        if isinstance(spec, Correlated):
            z = z @ jnp.asarray(np.linalg.cholesky(spec.corr)).T
        for j, (name, spread) in enumerate(spreads.items()):
            values[name] = spread.transform(jnp.asarray(getattr(device, name)), z[:, j])

    def leaf(name: str) -> Array:
        nominal = jnp.asarray(getattr(device, name))
        return values.get(name, jnp.broadcast_to(nominal, (n, *nominal.shape)))

    names = list(units)
    return eqx.tree_at(lambda d: [getattr(d, k) for k in names], device, [leaf(k) for k in names])


def population_size(population: AbstractDevice) -> int:
    """Number of cells in a population (the leading axis of its parameter fields)."""
    name = next(iter(parameter_units(population)))
    return int(jnp.shape(getattr(population, name))[0])


def take(population: AbstractDevice, index: ArrayLike) -> Any:
    """Cell(s) ``index`` of a population (an int gives a single device)."""
    names = list(parameter_units(population))
    return eqx.tree_at(lambda d: [getattr(d, k) for k in names], population,
                       [getattr(population, k)[index] for k in names])


def stack(devices: Sequence[AbstractDevice]) -> Any:
    """A population from a list of single devices of one family."""
    names = list(parameter_units(devices[0]))
    return eqx.tree_at(lambda d: [getattr(d, k) for k in names], devices[0],
                       [jnp.stack([jnp.asarray(getattr(d, k)) for d in devices]) for k in names])
