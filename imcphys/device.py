r"""The one device abstraction every memory-cell family implements.

A device is a final ``eqx.Module`` subclass of :class:`AbstractDevice`. Its array fields are the physical
parameters of **one cell** in SI units (declared with :func:`param`, which records the unit and the allowed range,
checked by the base class when the device is built or changed by :func:`replace`); a population is the
same module with a leading cell axis on its fields, mapped with ``eqx.filter_vmap``. Structural choices are static
fields.

What generic code (``simulate``, ``apply_pulse``, program-and-verify, fitting, Monte Carlo) sees of a family:

- ``rhs(t, state, drive)`` — d(state)/dt under the drive value ``drive`` (e.g. the cell voltage in V) at time t;
- ``read(state)`` — the verified observable (a read current, a conductance, a threshold voltage);
- ``observe(state, drive)`` — what a trace shows while driven (default: ``read``);
- ``power(state, drive)`` — electrical power drawn [W], integrated into pulse energies;
- ``diffusion(state, drive)`` — noise intensity for cycle-to-cycle variation (``None``: deterministic);
- ``project(state)`` — the physical range of the state (e.g. a clipped filament gap);
- ``pulse(state, amplitude, width, ...)`` — one programming pulse, returning the state and its energy;
- ``amplitude_range()`` — the allowed programming amplitudes per polarity;
- ``reference_pulse()`` — a representative (amplitude, width) of the family;
- ``smoothed(temperature)`` — a copy whose hard thresholds are smoothed, for gradient-based optimisation.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ._checks import check_range
from ._integrate import PulseResult as PulseResult, solve_pulse as _solve_pulse


def param(
    default: Any,
    unit: str,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
    **kwargs: Any,
) -> Any:
    """Declare a physical parameter field: converted to a JAX array, with its SI ``unit`` and allowed range.

    ``unit`` is written as pint understands it (``"m"``, ``"V"``, ``"A"``, ``"K/W"``, ``"eV"``, ``"1"`` for
    dimensionless); cards convert to it, fits and reports print it. ``lower``/``upper`` bound the value (inclusive
    unless ``lower_open``/``upper_open``); every parameter must also be finite. The checks run once, in
    :class:`AbstractModel`, whenever a model is built or changed by :func:`replace` with concrete values, and raise a
    ``ValueError`` that names the parameter, its allowed range and unit.
    """
    bounds = {"lower": lower, "upper": upper, "lower_open": lower_open, "upper_open": upper_open}
    return eqx.field(default=default, converter=jnp.asarray, metadata={"unit": unit, **bounds}, **kwargs)


def _param_fields(model: Any) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(model) if "unit" in f.metadata]


def parameter_units(model: Any) -> dict[str, str]:
    """Map of parameter name -> SI unit for every field declared with :func:`param` (a module or its class)."""
    return {f.name: f.metadata["unit"] for f in _param_fields(model)}


def parameter_ranges(model: Any) -> dict[str, dict[str, Any]]:
    """Map of parameter name -> ``{"lower", "upper", "lower_open", "upper_open"}`` (None: unbounded), as declared
    with :func:`param` (a module or its class)."""
    keys = ("lower", "upper", "lower_open", "upper_open")
    return {f.name: {k: f.metadata.get(k) for k in keys} for f in _param_fields(model)}


def unit_of(model: Any, name: str) -> str:
    """The SI unit of parameter ``name`` of ``model`` (a module or its class)."""
    return parameter_units(model)[name]


def parameters(model: Any) -> dict[str, Array]:
    """Map of parameter name -> value (SI) for every field declared with :func:`param`."""
    return {name: getattr(model, name) for name in parameter_units(model)}


def check(model: eqx.Module) -> Any:
    """Run every ``__check_init__`` of ``model``'s classes (declared ranges, then the family's
    :meth:`AbstractModel.check_relations`), as the constructor does, and return ``model``. Traced values are not
    checked here (see :mod:`imcphys._checks`)."""
    for cls in type(model).__mro__:
        fn = cls.__dict__.get("__check_init__")
        if fn is not None:
            fn(model)
    return model


def replace(model: eqx.Module, **values: ArrayLike) -> Any:
    """A copy of ``model`` with the named parameters replaced (values in SI; traced values allowed).

    The copy passes the constructor's checks (:func:`check`): a value outside its declared range, or one that
    breaks a relation of the family (e.g. ``gap_min < gap_max``), raises a ``ValueError`` naming it.
    """
    names = list(values)
    known = parameter_units(model)
    unknown = set(names) - set(known)
    if unknown:
        raise ValueError(f"{type(model).__name__} has no parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    new = eqx.tree_at(lambda d: [getattr(d, n) for n in names], model, [jnp.asarray(values[n]) for n in names])
    return check(new)


class AbstractModel(eqx.Module):
    """A module of physical parameters declared with :func:`param` (SI units), whose declared ranges are checked
    when it is built. Devices (:class:`AbstractDevice`) and their parts (a transistor, a pump) derive from it.

    A family checks what a range cannot say — relations between parameters (``gap_min < gap_max``), static fields —
    in :meth:`check_relations`, which runs after every declared range has passed (so it sees finite values).
    """

    def __check_init__(self):
        name = type(self).__name__
        for f in _param_fields(self):
            m = f.metadata
            check_range(
                f"{name}.{f.name}",
                getattr(self, f.name),
                lower=m.get("lower"),
                upper=m.get("upper"),
                lower_open=bool(m.get("lower_open")),
                upper_open=bool(m.get("upper_open")),
                unit=m["unit"],
            )
        self.check_relations()

    def check_relations(self) -> None:
        """Raise ``ValueError`` naming the parameters when a relation between them (or a static field) is broken;
        concrete values only (use :func:`imcphys._checks.check_less`). Default: nothing to check."""


class AbstractDevice(AbstractModel):
    """One memory cell: physical parameters (fields, SI units) and its state dynamics.

    Subclasses are final and implement :meth:`rhs`, :meth:`read`, :meth:`initial_state` and
    :meth:`amplitude_range`; the other methods have sensible defaults.
    """

    @abc.abstractmethod
    def rhs(self, t: Float[ArrayLike, ""], state: PyTree, drive: PyTree) -> PyTree:
        """d(state)/dt at time ``t`` [s] under the drive value ``drive``. Pure; usable by ``diffrax.ODETerm``."""

    @abc.abstractmethod
    def read(self, state: PyTree) -> Float[Array, "..."]:
        """The verified observable of ``state`` (family-specific unit, see the subclass)."""

    @abc.abstractmethod
    def initial_state(self, which: str = "reset") -> PyTree:
        """A named initial state of one cell (e.g. ``"set"``, ``"reset"``)."""

    @abc.abstractmethod
    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((min, max) SET/program amplitudes, (min, max) RESET/erase amplitudes), signed, in the drive unit."""

    def reference_pulse(self) -> tuple[float, float]:
        """A representative programming pulse of the family, (amplitude [drive unit], width [s]): one that moves
        the state from ``initial_state()`` part of the way (used by examples and the device contract tests).
        Default: the middle of the SET/program amplitude range, 100 ns."""
        (lo, hi), _ = self.amplitude_range()
        return 0.5 * (lo + hi), 100e-9

    def observe(self, state: PyTree, drive: PyTree) -> Float[Array, "..."]:
        """What a trace records while driven with ``drive`` (default: :meth:`read`)."""
        del drive
        return self.read(state)

    def power(self, state: PyTree, drive: PyTree) -> Float[Array, "..."]:
        """Electrical power drawn by the cell [W] (default: none)."""
        del drive
        return jnp.zeros(jnp.shape(jax.tree_util.tree_leaves(state)[0]))

    def diffusion(self, state: PyTree, drive: PyTree) -> PyTree | None:
        """Noise intensity σ (state units per √s) of d(state) = rhs dt + σ dW, or ``None`` when deterministic."""
        del state, drive
        return None

    def project(self, state: PyTree) -> PyTree:
        """Map a state onto its physical range (default: unchanged)."""
        return state

    def default_solver(self) -> diffrax.AbstractSolver:
        """The diffrax solver of the adaptive path (default Tsit5; a stiff family returns e.g. Kvaerno5)."""
        return diffrax.Tsit5()

    def state_scale(self) -> PyTree:
        """Typical magnitude of each state component, used to scale solver tolerances (default: 1)."""
        return jax.tree_util.tree_map(lambda _: 1.0, self.initial_state())

    def smoothed(self, temperature: Float[ArrayLike, ""]) -> AbstractDevice:
        """A copy of the device whose hard thresholds (e.g. a field threshold) are smoothed over a relative width
        ``temperature`` (dimensionless, >= 0), for gradients through programming. ``smoothed(0)`` is the device
        itself. Default: no threshold to smooth, returns ``self``.
        """
        del temperature
        return self

    def pulse(
        self,
        state: PyTree,
        amplitude: Float[ArrayLike, ""],
        width: Float[ArrayLike, ""],
        *,
        rise: Float[ArrayLike, ""] = 0.0,
        fall: Float[ArrayLike, ""] = 0.0,
        fixed_steps: int | None = None,
        key: PRNGKeyArray | None = None,
    ) -> PulseResult:
        """Apply one programming pulse of signed ``amplitude`` (drive unit) and plateau ``width`` [s].

        The default drives :meth:`rhs` with a trapezoidal pulse; a family whose programming needs more (the
        word-line kickback of a gain cell, the charge pump of a flash array) overrides this method.
        """
        return _solve_pulse(self, state, amplitude, width, rise=rise, fall=fall, fixed_steps=fixed_steps, key=key)

    def plateau(
        self, state: PyTree, drive: Float[ArrayLike, ""], duration: Float[ArrayLike, ""], resolution: int
    ) -> tuple[PyTree, Float[Array, ""]] | None:
        """The state after holding the constant ``drive`` for ``duration`` [s] and the energy drawn [J], at a cost
        set by ``resolution`` alone — or ``None`` (the default) to let the fixed-step path take Heun steps.

        The fixed-step path of the generic :meth:`pulse` uses it for rectangular pulses without noise: a family
        whose ODE under a constant drive has a better fixed-cost solution than time steps (the ReRAM gap, whose
        SET runaway defeats any fixed time mesh, as a quadrature over the state) returns it here.
        """
        del state, drive, duration, resolution
        return None
