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

Specs also load from a card's ``[variability]`` table (:func:`specs_from_table`), e.g.
``activation_energy = { distribution = "normal", std = 20, unit = "meV" }``. Cycle-to-cycle noise takes one key per
cell (:func:`cell_keys`, again ``fold_in(key, i)``) and one per pulse of that cell (:func:`pulse_keys`).
"""

from __future__ import annotations

import abc
import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._checks import check_finite, check_range, is_concrete
from .device import AbstractDevice, AbstractModel, parameter_units, parameters
from .units import convert


class AbstractSpread(eqx.Module):
    """How one parameter varies from cell to cell, as a transform of a standard normal z."""

    @abc.abstractmethod
    def transform(self, nominal: Array, z: Array) -> Array:
        """The parameter value [SI] for standard-normal draws ``z`` around ``nominal``."""

    @abc.abstractmethod
    def moments(self, nominal: ArrayLike) -> tuple[Array, Array]:
        """Exact (mean, standard deviation) [SI] of the parameter for the nominal value ``nominal``."""


class Normal(AbstractSpread):
    """nominal + std·z (``relative``: nominal·(1 + std·z))."""

    std: float
    relative: bool = False

    def __check_init__(self):
        check_range("Normal.std", self.std, lower=0.0)

    def transform(self, nominal, z):
        return nominal * (1 + self.std * z) if self.relative else nominal + self.std * z

    def moments(self, nominal):
        nominal = jnp.asarray(nominal)
        return nominal, jnp.abs(nominal) * self.std if self.relative else jnp.broadcast_to(self.std, nominal.shape)


class LogNormal(AbstractSpread):
    """nominal·exp(sigma·z): median = nominal, σ of ln(value) = ``sigma``; keeps a positive parameter positive."""

    sigma: float

    def __check_init__(self):
        check_range("LogNormal.sigma", self.sigma, lower=0.0)

    def transform(self, nominal, z):
        return nominal * jnp.exp(self.sigma * z)

    def moments(self, nominal):
        mean = jnp.asarray(nominal) * jnp.exp(0.5 * self.sigma**2)
        return mean, jnp.abs(mean) * jnp.sqrt(jnp.expm1(self.sigma**2))


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

    def moments(self, nominal):
        nominal = jnp.asarray(nominal)
        scale = self.std * nominal if self.relative else self.std
        a, b = (self.lower - nominal) / scale, (self.upper - nominal) / scale
        pdf, cdf = jax.scipy.stats.norm.pdf, jax.scipy.stats.norm.cdf
        mass = cdf(b) - cdf(a)
        # x·φ(x) → 0 at an infinite bound (inf·0 would be NaN)
        xpdf = lambda x: jnp.where(jnp.isfinite(x), x * pdf(jnp.where(jnp.isfinite(x), x, 0.0)), 0.0)  # noqa: E731
        shift = (pdf(a) - pdf(b)) / mass
        var = 1.0 + (xpdf(a) - xpdf(b)) / mass - shift**2
        return nominal + scale * shift, scale * jnp.sqrt(var)


class Uniform(AbstractSpread):
    """Uniform on nominal ± half_width (``relative``: nominal·(1 ± half_width))."""

    half_width: float
    relative: bool = False

    def __check_init__(self):
        check_range("Uniform.half_width", self.half_width, lower=0.0)

    def transform(self, nominal, z):
        u = 2.0 * jax.scipy.stats.norm.cdf(z) - 1.0
        return nominal * (1 + self.half_width * u) if self.relative else nominal + self.half_width * u

    def moments(self, nominal):
        nominal = jnp.asarray(nominal)
        width = (
            self.half_width * jnp.abs(nominal) if self.relative else jnp.broadcast_to(self.half_width, nominal.shape)
        )
        return nominal, width / np.sqrt(3.0)


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


def _parameter_leaves(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, value) of every parameter of ``model`` and of the models it holds (a composite's cell and transistor,
    named ``cell.gap_min`` …), in a fixed order: what a population gives a leading cell axis."""
    out = []
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        if "unit" in f.metadata:
            out.append((prefix + f.name, value))
        elif isinstance(value, AbstractModel):
            out.extend(_parameter_leaves(value, f"{prefix}{f.name}."))
    return out


def _leaves(model: Any) -> list[Any]:
    return [value for _, value in _parameter_leaves(model)]


def sample_cells(device: AbstractDevice, specs: Spec, cells: Int[ArrayLike, " n"], *, key: PRNGKeyArray) -> Any:
    """A population of the cells with global indices ``cells``: cell i depends only on (key, i).

    Every parameter (of a composite too: ``cell.<name>``, ``transistor.<name>``) gets a leading cell axis; those
    without a spec keep their nominal value. Works on traced ``cells`` (inside jit, vmap, shard_map); :func:`sample`
    is the eager front end with checks.
    """
    nominal = dict(_parameter_leaves(device))
    cells = jnp.asarray(cells)
    n = cells.shape[0]
    values: dict[str, Array] = {}
    for group_name, spec in specs.items():
        spreads = spec.spreads if isinstance(spec, Correlated) else {group_name: spec}
        for name in spreads:
            if name not in nominal:
                raise ValueError(
                    f"variability spec for unknown parameter {name!r} of {type(device).__name__}; "
                    f"known: {sorted(nominal)}"
                )
            if name in values:
                raise ValueError(f"parameter {name!r} appears in two variability specs")
        z = _normals(_name_key(key, group_name), cells, len(spreads))
        if isinstance(spec, Correlated):
            # z·Lᵀ written out elementwise: a matmul's summation order may depend on the batch size, and cell i
            # must not depend on how many cells are drawn with it.
            chol = np.linalg.cholesky(spec.corr)
            cols = [z[:, m] for m in range(len(spreads))]
            z = jnp.stack([sum(float(chol[j, m]) * cols[m] for m in range(j + 1)) for j in range(len(spreads))], axis=1)
        for j, (name, spread) in enumerate(spreads.items()):
            values[name] = spread.transform(jnp.asarray(nominal[name]), z[:, j])

    def leaf(name: str) -> Array:
        x = jnp.asarray(nominal[name])
        return values.get(name, jnp.broadcast_to(x, (n, *x.shape)))

    return eqx.tree_at(_leaves, device, [leaf(k) for k in nominal])


def sample(device: AbstractDevice, specs: Spec, n: int, *, key: PRNGKeyArray, first_cell: int = 0) -> Any:
    """A population of ``n`` cells (cells ``first_cell`` … ``first_cell + n − 1``) drawn from ``specs``.

    Every parameter field gets a leading axis of length n; parameters without a spec keep their nominal value.
    Sampled values are checked against the device's own parameter ranges (:func:`check_sampled`) when concrete.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of cells) must be a positive integer; got {n!r}")
    pop = sample_cells(device, specs, jnp.arange(first_cell, first_cell + n), key=key)
    check_sampled(pop, specs=specs, first_cell=first_cell)
    return pop


def _run_checks(device: AbstractDevice) -> None:
    # equinox runs every __check_init__ along the MRO when a module is built; tree_at (which builds
    # populations) does not, so run them here. check_range works elementwise, so a population checks at once.
    for cls in type(device).__mro__:
        check = cls.__dict__.get("__check_init__")
        if check is not None:
            check(device)
    for name, value in parameters(device).items():
        check_finite(f"{type(device).__name__}.{name}", value)


def check_sampled(population: AbstractDevice, *, specs: Spec, first_cell: int) -> None:
    """Raise ``ValueError`` naming the first cell whose sampled parameters the device rejects.

    A spread too wide for a bounded parameter (a normal spread of a positive length, say) draws values the
    model cannot take; this says which parameter, which cell (global index, counting from ``first_cell``), the
    value, and the specs, instead of letting NaNs into the results. Does nothing for traced populations.
    """
    if not is_concrete(population):
        return
    try:
        _run_checks(population)
        return
    except ValueError:
        pass
    lo, hi = 0, population_size(population)
    while hi - lo > 1:  # bisect for the first bad cell: O(log n) checks, only on the failure path
        mid = (lo + hi) // 2
        try:
            _run_checks(take(population, slice(lo, mid)))
            lo = mid
        except ValueError:
            hi = mid
    try:
        _run_checks(take(population, lo))
    except ValueError as err:
        raise ValueError(
            f"sampled parameters of cell {first_cell + lo} are out of range: {err}. The variability "
            f"specs {dict(specs)!r} reach values the model rejects; narrow the spread or use "
            f"TruncatedNormal/LogNormal"
        ) from None


def cell_keys(key: PRNGKeyArray, cells: Int[ArrayLike, " n"]) -> PRNGKeyArray:
    """One noise key per cell, ``fold_in(key, i)`` for global cell index i: independent of chunking."""
    return jax.vmap(lambda i: jr.fold_in(key, i))(jnp.asarray(cells))


def pulse_keys(keys: PRNGKeyArray, pulses: int) -> PRNGKeyArray:
    """Cycle-to-cycle noise keys, shape (cells, pulses): pulse p of cell i gets ``fold_in(keys[i], p)``.

    ``keys`` are per-cell keys (:func:`cell_keys`); a study numbers its pulses so each gets fresh noise.
    """
    if not isinstance(pulses, (int, np.integer)) or pulses < 1:
        raise ValueError(f"pulses must be a positive integer; got {pulses!r}")
    return jax.vmap(lambda k: jax.vmap(lambda p: jr.fold_in(k, p))(jnp.arange(pulses)))(keys)


# ------------------------------------------------------------------------------------ specs from a card
_FIELDS = {
    "normal": ("std", "relative"),
    "lognormal": ("sigma",),
    "truncated_normal": ("std", "lower", "upper", "relative"),
    "uniform": ("half_width", "relative"),
}
_PROVENANCE = ("unit", "status", "source", "distribution")


def _spread_from_entry(entry: Any, name: str, unit: str, where: str) -> AbstractSpread:
    if not isinstance(entry, Mapping) or "distribution" not in entry:
        raise ValueError(
            f'{where}: write it as {{ distribution = "normal", std = ..., unit = "..." }} '
            f'(distributions: {sorted(_FIELDS)} or "correlated")'
        )
    dist = entry["distribution"]
    if dist not in _FIELDS:
        raise ValueError(f'{where}: unknown distribution {dist!r}; known: {sorted(_FIELDS)} or "correlated"')
    unknown = set(entry) - set(_FIELDS[dist]) - set(_PROVENANCE)
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {sorted(unknown)} for a {dist} spread; allowed: {sorted(_FIELDS[dist])}"
        )
    relative = entry.get("relative", False)
    if not isinstance(relative, bool):
        raise ValueError(f"{where}: relative must be true or false; got {relative!r}")
    width_field = {"normal": "std", "truncated_normal": "std", "uniform": "half_width", "lognormal": "sigma"}[dist]
    if width_field not in entry:
        raise ValueError(f"{where}: a {dist} spread needs {width_field} = ...")
    absolute = [
        k
        for k in ("std", "half_width", "lower", "upper")
        if k in entry and not (relative and k in ("std", "half_width"))
    ]
    given_unit = entry.get("unit")
    if absolute and given_unit is None:
        raise ValueError(
            f'{where}: {", ".join(absolute)} need a unit (the parameter is in {unit!r}), e.g. unit = "{unit}"'
        )
    if not absolute and given_unit not in (None, "1", ""):
        raise ValueError(
            f"{where}: {width_field} of a {'relative' if relative else dist} spread is a plain "
            f"fraction; drop unit = {given_unit!r}"
        )

    def number(field: str) -> float:
        value = entry[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: {field} must be a number; got {value!r}")
        return float(value)

    def spread_width(field: str) -> float:
        value = number(field)
        if relative or dist == "lognormal":
            return value
        # a width is a difference: convert it as one (an offset unit such as degC must not add its offset)
        return float(
            convert(value, given_unit, unit, name=f"{where}: {field}")
            - convert(0.0, given_unit, unit, name=f"{where}: {field}")
        )

    def bound(field: str, default: float) -> float:
        return float(convert(number(field), given_unit, unit, name=f"{where}: {field}")) if field in entry else default

    try:
        if dist == "normal":
            return Normal(std=spread_width("std"), relative=relative)
        if dist == "lognormal":
            return LogNormal(sigma=spread_width("sigma"))
        if dist == "uniform":
            return Uniform(half_width=spread_width("half_width"), relative=relative)
        return TruncatedNormal(
            std=spread_width("std"), lower=bound("lower", -np.inf), upper=bound("upper", np.inf), relative=relative
        )
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def specs_from_table(
    device: AbstractDevice, table: Mapping[str, Any], *, where: str = "[variability]"
) -> dict[str, AbstractSpread | Correlated]:
    """Variability specs from a card's ``[variability]`` table, with widths converted to the parameters' SI units.

    One entry per parameter, or a correlated group (the correlation matrix's rows follow the order in which the
    group's parameters are written)::

        [variability]
        activation_energy = { distribution = "normal", std = 20, unit = "meV" }
        gap_decay_length = { distribution = "lognormal", sigma = 0.04 }            # σ of ln(value)
        oxide_thickness = { distribution = "normal", std = 0.03, relative = true } # 3 % of nominal
        gamma0 = { distribution = "truncated_normal", std = 0.5, lower = 15, upper = 17, unit = "1" }

        [variability.switching]
        distribution = "correlated"
        correlation = [[1.0, -0.5], [-0.5, 1.0]]
        parameters.min_field = { distribution = "normal", std = 0.05, unit = "GV/m" }
        parameters.v0 = { distribution = "uniform", half_width = 0.1, relative = true }

    Absolute widths and bounds need a ``unit``; ``status`` and ``source`` are kept as provenance. Errors name
    ``where`` (the card path) and the entry.
    """
    units = parameter_units(device)
    specs: dict[str, AbstractSpread | Correlated] = {}
    for key, entry in table.items():
        here = f"{where} {key!r}"
        if isinstance(entry, Mapping) and entry.get("distribution") == "correlated":
            unknown = set(entry) - {"distribution", "correlation", "parameters", "status", "source"}
            if unknown:
                raise ValueError(
                    f"{here}: unknown field(s) {sorted(unknown)} of a correlated group; "
                    f"allowed: correlation, parameters"
                )
            members = entry.get("parameters")
            if not isinstance(members, Mapping) or len(members) < 2:
                raise ValueError(
                    f"{here}: a correlated group needs a table of at least two parameters "
                    f"(parameters.NAME = {{ distribution = ... }})"
                )
            spreads = {}
            for name, sub in members.items():
                if name not in units:
                    raise ValueError(
                        f"{here}: {type(device).__name__} has no parameter {name!r}; known: {sorted(units)}"
                    )
                spreads[name] = _spread_from_entry(sub, name, units[name], f"{here} parameter {name!r}")
            try:
                specs[key] = Correlated(spreads, np.asarray(entry.get("correlation"), dtype=float))
            except (ValueError, TypeError) as err:
                raise ValueError(f"{here}: {err}") from None
        else:
            if key not in units:
                raise ValueError(f"{here}: {type(device).__name__} has no parameter {key!r}; known: {sorted(units)}")
            specs[key] = _spread_from_entry(entry, key, units[key], here)
    seen: set[str] = set()
    for key, spec in specs.items():
        names = list(spec.spreads) if isinstance(spec, Correlated) else [key]
        twice = seen.intersection(names)
        if twice:
            raise ValueError(f"{where}: parameter(s) {sorted(twice)} appear in two variability entries")
        seen.update(names)
    return specs


# --------------------------------------------------------------------------------------------- statistics
def summary(population: AbstractDevice, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Sample mean and standard deviation (ddof=1) [SI] of the named parameters over the cells."""
    out = {}
    for name in names:
        x = np.asarray(getattr(population, name), dtype=float)
        out[name] = {"mean": float(np.mean(x)), "std": float(np.std(x, ddof=1))}
    return out


def correlation(population: AbstractDevice, names: Sequence[str]) -> np.ndarray:
    """Sample (Pearson) correlation matrix of the named parameters over the cells."""
    return np.corrcoef(np.stack([np.asarray(getattr(population, n), dtype=float) for n in names]))


def population_size(population: AbstractDevice) -> int:
    """Number of cells in a population (the leading axis of its parameter fields)."""
    return int(jnp.shape(_leaves(population)[0])[0])


def take(population: AbstractDevice, index: ArrayLike) -> Any:
    """Cell(s) ``index`` of a population (an int gives a single device); a composite's parts too."""
    return eqx.tree_at(_leaves, population, [jnp.asarray(x)[index] for x in _leaves(population)])


def stack(devices: Sequence[AbstractDevice]) -> Any:
    """A population from a list of single devices of one family (a composite's parts stacked too)."""
    return eqx.tree_at(
        _leaves, devices[0], [jnp.stack([jnp.asarray(x) for x in xs]) for xs in zip(*map(_leaves, devices))]
    )
