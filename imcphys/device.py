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
- ``pulse(state, amplitude, width, ...)`` — one programming pulse, returning the state and its energy; an amplitude
  outside ``amplitude_range()`` is refused (every family's ``pulse``, also one a family overrides: the check is
  added to it when the class is created);
- ``amplitude_range()`` — the allowed programming amplitudes per polarity, in ``amplitude_unit``;
- ``drive_range()`` — the drive values ``rhs`` accepts, in ``drive_unit`` (default: any), checked by
  :func:`imcphys.simulate` on the stimulus;
- ``reference_pulse()`` — a representative (amplitude, width) of the family;
- ``smoothed(temperature)`` — a copy whose hard thresholds are smoothed, for gradient-based optimisation.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ._checks import _fmt_range, check_range, is_concrete, runtime_check
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


def check_value(model: Any, name: str, value: ArrayLike, *, label: str | None = None) -> Array:
    """``value`` (an array, SI) checked against the declared range of parameter ``name`` of ``model`` (a module or
    its class): a ``ValueError`` naming ``label`` (default ``"Class.name"``), the range and the unit when concrete,
    the runtime error of ``eqx.error_if`` under jit/vmap. For inputs that stand for a parameter, e.g. the
    temperatures of a study or of :meth:`Cell2T0C.at_temperature <imcphys.Cell2T0C.at_temperature>`."""
    cls = model if isinstance(model, type) else type(model)
    field = next((f for f in _param_fields(cls) if f.name == name), None)
    if field is None:
        raise ValueError(f"{cls.__name__} has no parameter {name!r}")
    m = field.metadata
    bounds = {k: m.get(k) for k in ("lower", "upper")}
    opens = {k: bool(m.get(k)) for k in ("lower_open", "upper_open")}
    label = label or f"{cls.__name__}.{name}"
    check_range(label, value, **bounds, **opens, unit=m["unit"])
    x = jnp.asarray(value, dtype=float)
    bad = ~jnp.isfinite(x)
    if bounds["lower"] is not None:
        bad |= (x <= bounds["lower"]) if opens["lower_open"] else (x < bounds["lower"])
    if bounds["upper"] is not None:
        bad |= (x >= bounds["upper"]) if opens["upper_open"] else (x > bounds["upper"])
    allowed = _fmt_range(bounds["lower"], bounds["upper"], opens["lower_open"], opens["upper_open"])
    return runtime_check(x, bad, f"{label} must be finite and in {allowed} {m['unit']}")


def with_values(model: eqx.Module, **values: ArrayLike) -> Any:
    """A copy of ``model`` with the named parameters replaced, **unchecked**: for code whose values are in range
    by construction (a fit's transforms keep each free parameter inside its declared range). Use
    :func:`replace` everywhere else."""
    names = list(values)
    known = parameter_units(model)
    unknown = set(names) - set(known)
    if unknown:
        raise ValueError(f"{type(model).__name__} has no parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    return eqx.tree_at(lambda d: [getattr(d, n) for n in names], model, [jnp.asarray(values[n]) for n in names])


def replace(model: eqx.Module, **values: ArrayLike) -> Any:
    """A copy of ``model`` with the named parameters replaced (values in SI; traced values allowed).

    The copy passes the constructor's checks (:func:`check`): a value outside its declared range, or one that
    breaks a relation of the family (e.g. ``gap_min < gap_max``), raises a ``ValueError`` naming it. Under
    jit/vmap the declared ranges of the traced values are checked when the computation runs
    (:func:`check_value`: the runtime error of ``eqx.error_if``); relations are checked on concrete values only.
    """
    traced = {n: v for n, v in values.items() if not is_concrete(v)}
    checked = {n: check_value(model, n, v) for n, v in traced.items() if n in parameter_units(model)}
    return check(with_values(model, **{**values, **checked}))


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


def check_amplitude(device: AbstractDevice, amplitude: ArrayLike) -> Array:
    """``amplitude`` (an array) if it lies within ``device.amplitude_range()`` (SET and RESET ranges and 0); else a
    ``ValueError`` naming the amplitude, the range and its unit (concrete values), or the runtime error of
    ``eqx.error_if`` (under jit/vmap). Never clipped: a pulse beyond a device's limit is not that device's
    physics (the Stanford cell at 8 V reports joules for 100 ns and does not switch)."""
    ranges = device.amplitude_range()
    (s_lo, s_hi), (r_lo, r_hi) = ranges
    x = jnp.asarray(amplitude, dtype=float)
    unit = type(device).amplitude_unit
    where = f"{type(device).__name__}.pulse: amplitude"
    if is_concrete(ranges):  # numbers (as a family's static limits are): the message can show them
        s_lo, r_lo = float(np.min(s_lo)), float(np.min(r_lo))
        s_hi, r_hi = float(np.max(s_hi)), float(np.max(r_hi))
        lo, hi = min(s_lo, r_lo, 0.0), max(s_hi, r_hi, 0.0)
        allowed = f"[{lo:g}, {hi:g}] {unit} (amplitude_range(): SET/program {s_lo:g} to {s_hi:g} {unit}"
        allowed += f", RESET/erase {r_lo:g} to {r_hi:g} {unit})" if r_lo != r_hi else ", no RESET polarity)"
        if is_concrete(x):
            arr = np.asarray(x)
            bad = ~np.isfinite(arr) | (arr < lo) | (arr > hi)
            if np.any(bad):
                shown = float(arr[bad].ravel()[0])
                raise ValueError(f"{where} {shown:g} {unit} is outside {allowed}; it is refused, not clipped")
            return x
    else:
        lo = jnp.minimum(jnp.minimum(s_lo, r_lo), 0.0)
        hi = jnp.maximum(jnp.maximum(s_hi, r_hi), 0.0)
        allowed = f"amplitude_range() [{unit}]"
    bad = ~jnp.isfinite(x) | (x < lo) | (x > hi)
    return runtime_check(x, bad, f"{where} outside {allowed}; refused, not clipped")


def check_drive(device: AbstractDevice, values: ArrayLike, *, name: str = "drive", attach: Any = None) -> Any:
    """Check drive ``values`` (e.g. a stimulus at its breakpoints) against ``device.drive_range()``: a
    ``ValueError`` naming ``name``, the range and ``drive_unit`` when concrete, else the runtime error of
    ``eqx.error_if`` attached to ``attach`` (returned; default the values themselves). Nothing to check when the
    family has no drive range."""
    x = jnp.asarray(values, dtype=float)
    attach = x if attach is None else attach
    limits = device.drive_range()
    if limits is None:
        return attach
    lo, hi = limits
    unit = f"{type(device).drive_unit} ({type(device).__name__}.drive_range())"
    if is_concrete((x, lo, hi)):
        check_range(
            name, x, lower=float(np.max(lo)), upper=float(np.min(hi)), lower_open=True, upper_open=True, unit=unit
        )
        return attach
    bad = ~((x > lo) & (x < hi))
    return runtime_check(
        attach, bad, f"{name} must be finite and within {type(device).__name__}.drive_range() [{unit}]"
    )


def _checks_amplitude(pulse: Callable[..., PulseResult]) -> Callable[..., PulseResult]:
    """``pulse`` with :func:`check_amplitude` applied to its amplitude first."""

    @functools.wraps(pulse)
    def checked(self, state, amplitude, *args, **kwargs):
        return pulse(self, state, check_amplitude(self, amplitude), *args, **kwargs)

    checked._checks_amplitude = True  # type: ignore[attr-defined]
    return checked


class AbstractDevice(AbstractModel):
    """One memory cell: physical parameters (fields, SI units) and its state dynamics.

    Subclasses are final and implement :meth:`rhs`, :meth:`read`, :meth:`initial_state` and
    :meth:`amplitude_range`; the other methods have sensible defaults. ``amplitude_unit`` and ``drive_unit`` (class
    attributes, default ``"V"``) name the units of pulse amplitudes and of the drive of :meth:`rhs`.

    Every ``pulse`` refuses an amplitude outside :meth:`amplitude_range` (:func:`check_amplitude`): a family that
    overrides :meth:`pulse` gets the check too, added to its method when the class is created, so that no family
    (and no generic code calling ``device.pulse``) can skip it.
    """

    amplitude_unit: ClassVar[str] = "V"
    drive_unit: ClassVar[str] = "V"

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("pulse")
        if own is not None and not getattr(own, "_checks_amplitude", False):
            cls.pulse = _checks_amplitude(own)

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

    def drive_range(self) -> tuple[ArrayLike, ArrayLike] | None:
        """(lowest, highest) drive value that :meth:`rhs` accepts, both excluded, in ``drive_unit`` — e.g. a
        temperature below the melting point — or ``None`` (default): any value. :func:`imcphys.simulate` checks the
        stimulus against it."""
        return None

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
        word-line kickback of a gain cell, the charge pump of a flash array) overrides this method. An amplitude
        outside :meth:`amplitude_range` raises (:func:`check_amplitude`), here and in every override.
        """
        amplitude = check_amplitude(self, amplitude)
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
