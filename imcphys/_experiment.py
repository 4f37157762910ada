r"""Experiments: what a fit compares — a model function of a device, the measured values, and the scale of the
comparison — and the kinds of measurement each device family can be fitted to.

An :class:`Experiment` is *a model function* ``(device, inputs) -> predictions`` together with the measured values
and an :class:`AbstractResidual` that says on which scale to compare them. Ready-made experiments for any family:

- :func:`dc_sweep` — a DC I–V sweep: :func:`imcphys.simulate` under the measured voltage waveform (for a
  triangle sweep, the triangle), currents compared as log10|I| (they span decades);
- :func:`trace` — the same for any drive waveform and observable (a constant-voltage stress, a retention
  trace under a hold bias): ``device.observe(state, drive)`` along the trace;
- :func:`pulse_response` — programming pulses one after another (``device.pulse``), ``device.read`` after each.

A family names the measurements it can be fitted to in its class attribute ``measurement_kinds`` (a mapping of
:class:`MeasurementKind`: the CSV columns of the kind and the builder of its experiment), next to its physics;
:func:`imcphys.fit.measurement` reads them. This module sits below the device families (they import it for their
own kinds) and below :mod:`imcphys.fit` (which re-exports its public names).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree

from .data import Dataset
from .device import AbstractDevice, check_amplitude
from .simulate import simulate
from .stimulus import PiecewiseLinear
from .units import convert

#: Residual given to a point the model cannot predict (NaN/inf, a failed solve): large, so a step there is
#: rejected, and finite, so the solver's arithmetic stays finite.
PENALTY = 1e3


# ------------------------------------------------------------------------------------------- residual scales
class AbstractResidual(eqx.Module):
    """How predictions are compared with measurements: ``residual(predicted, observed)``, elementwise."""

    @abc.abstractmethod
    def __call__(self, predicted: Array, observed: Array) -> Array:
        """The residual of each point (in :attr:`unit`)."""

    @abc.abstractmethod
    def valid(self, observed: np.ndarray) -> np.ndarray:
        """Which measured points take part (e.g. not below the instrument's floor)."""

    @property
    @abc.abstractmethod
    def unit(self) -> str:
        """Unit of the residual (``"decades"``, ``"1"`` for a relative error, or the observable's unit)."""


def _safe_log10_abs(x: Array) -> Array:
    # the double where keeps the gradient finite where x = 0 (log10(0) is never evaluated)
    a = jnp.abs(x)
    ok = a > 0
    return jnp.where(ok, jnp.log10(jnp.where(ok, a, 1.0)), -300.0)


class LogAbs(AbstractResidual):
    """log10|predicted| − log10|observed| [decades]: for currents spanning decades, where a 10 % error matters as
    much at 1 nA as at 1 mA. Points with |observed| <= ``floor`` (the instrument's noise floor, in the
    observable's SI unit) take no part."""

    floor: float = eqx.field(static=True, default=0.0)

    def __call__(self, predicted, observed):
        return _safe_log10_abs(predicted) - _safe_log10_abs(observed)

    def valid(self, observed):
        return np.abs(observed) > self.floor

    @property
    def unit(self) -> str:
        return "decades"


class Relative(AbstractResidual):
    """(predicted − observed)/|observed| [1]: for conductances and other positive observables of one scale.
    Points with |observed| <= ``floor`` take no part."""

    floor: float = eqx.field(static=True, default=0.0)

    def __call__(self, predicted, observed):
        return (predicted - observed) / jnp.where(observed == 0, 1.0, jnp.abs(observed))

    def valid(self, observed):
        return np.abs(observed) > self.floor

    @property
    def unit(self) -> str:
        return "1"


class Absolute(AbstractResidual):
    """predicted − observed, in the observable's SI unit ``observable_unit`` (e.g. a pump's output in ``"V"``);
    give the experiment a ``sigma`` of the order of the measurement noise so that residuals are of order 1."""

    observable_unit: str = eqx.field(static=True, default="1")

    def __call__(self, predicted, observed):
        return predicted - observed

    def valid(self, observed):
        return np.ones(np.shape(observed), dtype=bool)

    @property
    def unit(self) -> str:
        return self.observable_unit


# ----------------------------------------------------------------------------------------------- experiments
class Experiment(eqx.Module):
    """One measurement to fit: ``model(device, inputs)`` must reproduce ``observed`` on the ``residual`` scale.

    ``model`` is any function of a device and the array pytree ``inputs`` returning an array of ``observed``'s
    shape; it must work under ``jax.jit``, ``jax.vmap`` and forward-mode differentiation (``jax.jvp``), and
    may return NaN where it cannot predict (a failed solve): such points get a large residual. ``sigma``
    divides the residuals (to weight experiments against each other). ``x``, ``x_label`` and ``y_label`` (with
    units) are for plots; ``log_x`` plots x on a log axis.
    """

    model: Callable[[AbstractDevice, PyTree], Array]
    inputs: PyTree
    observed: Float[Array, "..."]
    residual: AbstractResidual
    mask: Bool[Array, "..."]
    x: Float[Array, "..."]
    sigma: float = eqx.field(static=True)
    x_label: str = eqx.field(static=True)
    y_label: str = eqx.field(static=True)
    name: str = eqx.field(static=True)
    log_x: bool = eqx.field(static=True)

    def __init__(
        self,
        model: Callable[[AbstractDevice, PyTree], Array],
        inputs: PyTree,
        observed: ArrayLike,
        *,
        residual: AbstractResidual,
        x: ArrayLike | None = None,
        x_label: str = "point",
        y_label: str = "observed",
        name: str = "experiment",
        sigma: float = 1.0,
        log_x: bool = False,
    ):
        obs = np.asarray(observed, dtype=float)
        if not np.all(np.isfinite(obs)):
            k = int(np.flatnonzero(~np.isfinite(obs.ravel()))[0])
            raise ValueError(f"{name}: observed values must be finite; element {k} is {obs.ravel()[k]!r}")
        mask = residual.valid(obs)
        if not mask.any():
            raise ValueError(f"{name}: no observed point is usable with {residual!r}")
        if not sigma > 0:
            raise ValueError(f"{name}: sigma must be > 0; got {sigma!r}")
        self.model, self.inputs, self.residual, self.sigma = model, inputs, residual, float(sigma)
        self.observed, self.mask = jnp.asarray(obs), jnp.asarray(mask)
        self.x = jnp.asarray(np.arange(obs.size) if x is None else np.asarray(x, dtype=float))
        self.x_label, self.y_label, self.name, self.log_x = x_label, y_label, name, log_x

    def predict(self, device: AbstractDevice) -> Array:
        """The model's predictions for ``device`` (checked to have the shape of ``observed``)."""
        return self.core().predict(device, self.name)

    def core(self) -> _Core:
        """What the solver needs, without the labels: fits of experiments that differ only in names and labels
        share one compilation."""
        return _Core(self.model, self.inputs, self.observed, self.residual, self.mask, self.sigma)

    @property
    def points(self) -> int:
        """Number of points taking part."""
        return int(np.sum(np.asarray(self.mask)))


class _Core(eqx.Module):
    model: Callable[[AbstractDevice, PyTree], Array]
    inputs: PyTree
    observed: Array
    residual: AbstractResidual
    mask: Array
    sigma: float = eqx.field(static=True)

    def predict(self, device: AbstractDevice, name: str = "experiment") -> Array:
        out = jnp.asarray(self.model(device, self.inputs))
        if out.shape != self.observed.shape:  # checked while tracing: a silent broadcast would be wrong
            raise ValueError(f"{name}: the model returns shape {out.shape}, the data have shape {self.observed.shape}")
        return out

    def weighted_residuals(self, predicted: Array) -> Array:
        """Residuals r/σ of ``predicted``, 0 at masked points, :data:`PENALTY` where the model gave no number."""
        r = self.residual(predicted, self.observed) / self.sigma
        r = jnp.where(jnp.isfinite(r), r, PENALTY)
        return jnp.where(self.mask, r, 0.0).ravel()


def _initial_state(device: AbstractDevice, initial: str | None, inputs: dict[str, Any]):
    """The start state: ``device.initial_state(initial)`` for a name, the state in ``inputs["state0"]`` if one
    was given, else the family's default ``device.initial_state()``."""
    if initial is not None:
        return device.initial_state(initial)
    return inputs["state0"] if "state0" in inputs else device.initial_state()


def _state_inputs(initial: str | ArrayLike | None) -> dict[str, Any]:
    return {} if initial is None or isinstance(initial, str) else {"state0": jnp.asarray(initial)}


#: Proportional and integral coefficients of the step-size controller of :func:`trace` fits (diffrax's
#: suggestion for stiff problems), and the Newton convergence factor κ of its implicit solver. On the
#: 200-point DC sweep of the Stanford ReRAM (benchmarks/fit.py) against the defaults (PI 0/1, κ = 0.01, a
#: first step estimated per segment): 2.4× fewer solver steps where the gap slides along its field
#: threshold, the gap after each sample still within 1e-7 nm of a 1e-9 solve, and a fit 2× faster whose
#: values move by < 1e-4 standard errors.
PID = (0.3, 0.4)
KAPPA = 0.5
#: First step tried per segment of a :func:`trace` solve, as a fraction of the segment (one step when idle).
FIRST_STEP = 1.0


def _trace_solver() -> diffrax.AbstractSolver:
    return diffrax.Kvaerno5(root_finder=diffrax.with_stepsize_controller_tols(diffrax.VeryChord)(kappa=KAPPA))


class _TraceModel(eqx.Module):
    """``device.observe`` along :func:`imcphys.simulate` under a piecewise-linear drive (adaptive, forward mode)."""

    initial: str | None
    solver: diffrax.AbstractSolver
    rtol: float
    atol: float
    max_steps: int
    pid: tuple[float, float] = PID
    first_step: float | None = FIRST_STEP

    def __call__(self, device: AbstractDevice, inputs: dict[str, Any]) -> Array:
        state0 = _initial_state(device, self.initial, inputs)
        controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol, pcoeff=self.pid[0], icoeff=self.pid[1])
        sol = simulate(
            device,
            state0,
            inputs["stimulus"],
            inputs["ts"],
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            throw=False,
            adjoint=diffrax.ForwardMode(),
            controller=controller,
            first_step=self.first_step,
        )
        return jnp.where(sol.result == diffrax.RESULTS.successful, sol.observed, jnp.nan)


def _corners(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Indices of the corners of a piecewise-linear waveform sampled at t (first, last and slope changes)."""
    slope = np.diff(v) / np.diff(t)
    scale = max(float(np.max(np.abs(slope))), 1e-300)
    turns = np.flatnonzero(np.abs(np.diff(slope)) > 1e-6 * scale) + 1
    return np.unique(np.concatenate([[0], turns, [len(t) - 1]]))


def trace(
    data: Dataset,
    *,
    time: str,
    drive: str,
    observed: str,
    residual: AbstractResidual,
    initial: str | ArrayLike | None = "reset",
    x: str | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    max_steps: int = 4096,
    name: str | None = None,
) -> Experiment:
    """An experiment that drives the device with the measured waveform ``data[drive](data[time])`` (piecewise
    linear through its corners) from the state ``initial`` at the first row (a name for
    ``device.initial_state``, a state, or None for the family's default ``device.initial_state()``) and
    compares ``device.observe(state, drive)`` with ``data[observed]`` at the measured times.

    The solve is adaptive, with an implicit solver by default (``diffrax.Kvaerno5``): the tangents of
    forward-mode differentiation through an explicit solver grew without bound where a ReRAM gap slides along
    its field threshold (measured: 1e257 after four samples of a RESET sweep), the implicit solver keeps them
    exact. Its Newton iteration stops at a convergence factor κ = :data:`KAPPA`, the step size is controlled by
    a PI controller (:data:`PID`) and each sample interval is first tried in one step: several times fewer
    steps than diffrax's defaults at the same accuracy (see :data:`PID`). ``rtol``/``atol`` act on the state in
    units of ``device.state_scale()``.
    """
    data.require(time, drive, observed)
    data.check_units({time: "s"}, what="a trace")
    t, v = data[time], data[drive]
    if len(t) < 2:
        raise ValueError(f"{data.source}: a trace needs at least 2 rows; got {len(t)}")
    k = _corners(t, v)
    inputs: dict[str, Any] = {"stimulus": PiecewiseLinear(t[k], v[k]), "ts": jnp.asarray(t)}
    inputs.update(_state_inputs(initial))
    model = _TraceModel(
        initial if isinstance(initial, str) else None,
        solver or _trace_solver(),
        float(rtol),
        float(atol),
        int(max_steps),
    )
    xname = x or time
    return Experiment(
        model,
        inputs,
        data[observed],
        residual=residual,
        x=data[xname],
        x_label=data.label(xname),
        y_label=data.label(observed),
        name=name or _name(data, "trace"),
    )


def dc_sweep(
    data: Dataset,
    *,
    voltage: str = "V",
    current: str = "I",
    time: str = "t",
    floor: float = 0.0,
    initial: str | ArrayLike | None = "reset",
    rtol: float = 1e-4,
    atol: float = 1e-5,
    name: str | None = None,
) -> Experiment:
    """A DC I–V sweep (columns ``t [s]``, ``V [V]``, ``I [A]`` by default): :func:`trace` with currents compared
    as log10|I| (:class:`LogAbs`, points with |I| <= ``floor`` [A] left out), plotted against V. A column of
    another dimension (a current in volts, V and I swapped) raises a ``ValueError`` naming it."""
    data.require(time, voltage, current)
    data.check_units({time: "s", voltage: "V", current: "A"}, what="a DC sweep")
    return trace(
        data,
        time=time,
        drive=voltage,
        observed=current,
        residual=LogAbs(float(floor)),
        initial=initial,
        x=voltage,
        rtol=rtol,
        atol=atol,
        name=name or _name(data, "DC sweep"),
    )


class _PulseModel(eqx.Module):
    """``device.read`` after each of a sequence of ``device.pulse`` calls (fixed-step, forward-differentiable)."""

    initial: str | None
    fixed_steps: int

    def __call__(self, device: AbstractDevice, inputs: dict[str, Any]) -> Array:
        state0 = _initial_state(device, self.initial, inputs)

        def step(state, pulse):
            amplitude, width = pulse
            state = device.pulse(
                state, amplitude, width, rise=inputs["rise"], fall=inputs["fall"], fixed_steps=self.fixed_steps
            ).state
            return state, device.read(state)

        return jax.lax.scan(step, state0, (inputs["amplitude"], inputs["width"]))[1]


def pulse_response(
    data: Dataset,
    *,
    amplitude: str = "amplitude",
    width: str = "width",
    read: str = "I",
    initial: str | ArrayLike | None = "reset",
    rise: float = 0.0,
    fall: float = 0.0,
    residual: AbstractResidual | None = None,
    fixed_steps: int = 32,
    name: str | None = None,
) -> Experiment:
    """Programming pulses applied one after another to one cell from ``initial`` (as in :func:`trace`), the
    read value after each:
    row k of ``data`` is pulse k (``amplitude`` in the drive unit, ``width`` [s]) and what was read after it.

    The model calls ``device.pulse`` (so a family with its own programming — a gain-cell write, a pump-fed
    flash program — is fitted through it) on the fixed-step path with ``fixed_steps`` graded steps, which
    forward-mode differentiation goes through (for the Stanford ReRAM, 32 steps are within 1e-4 decades of the
    adaptive solve). ``residual`` defaults to :class:`LogAbs` (read currents span decades).
    """
    data.require(amplitude, width, read)
    data.check_units({width: "s"}, what="a pulse response")
    if not (isinstance(fixed_steps, int) and fixed_steps > 0):
        raise ValueError(f"fixed_steps must be a positive integer; got {fixed_steps!r}")
    w = data[width]
    if np.any(w <= 0):
        k = int(np.flatnonzero(w <= 0)[0])
        raise ValueError(f"{data.where(width, k)}: pulse width must be > 0 s; got {w[k]!r} s")
    inputs: dict[str, Any] = {
        "amplitude": jnp.asarray(data[amplitude]),
        "width": jnp.asarray(w),
        "rise": jnp.asarray(float(rise)),
        "fall": jnp.asarray(float(fall)),
    }
    inputs.update(_state_inputs(initial))
    model = _PulseModel(initial if isinstance(initial, str) else None, fixed_steps)
    return Experiment(
        model,
        inputs,
        data[read],
        residual=residual or LogAbs(),
        x=np.arange(1, len(w) + 1),
        x_label="pulse number [1]",
        y_label=data.label(read),
        name=name or _name(data, "pulses"),
    )


def check_column(data: Dataset, column: str, check: Callable[[np.ndarray], Any]) -> None:
    """Run ``check`` (raising ``ValueError``, e.g. :func:`imcphys.device.check_amplitude` for a device) on
    ``data[column]``; on failure raise its message prefixed with the file, row and column of the first value it
    refuses — when the experiment is built, instead of an error inside the fit's compiled solver."""
    values = data[column]
    try:
        check(values)
    except ValueError as err:

        def refused(v: float) -> bool:
            try:
                check(np.asarray(v))
            except ValueError:
                return True
            return False

        k = next((k for k, v in enumerate(values) if refused(v)), 0)
        raise ValueError(f"{data.where(column, k)}: {err}") from None


def _name(data: Dataset, kind: str) -> str:
    return f"{kind}: {data.path.name}" if data.path else kind


def experiment_from(data: Dataset, *, floor: float = 0.0) -> Experiment:
    """The ready-made experiment a dataset's columns call for: :func:`pulse_response` if it has ``amplitude``
    and ``width`` columns, :func:`dc_sweep` if it has ``t``, ``V`` and ``I``; currents at or below ``floor``
    [A] are left out."""
    if "amplitude" in data and "width" in data:
        return pulse_response(data, residual=LogAbs(float(floor)))
    if all(n in data for n in ("t", "V", "I")):
        return dc_sweep(data, floor=floor)
    raise ValueError(
        f"{data.source}: cannot tell the kind of measurement from the columns {data.names}; expected "
        "'t [s], V [V], I [A]' (DC sweep) or 'amplitude [V], width [s], I [A]' (pulse response); "
        "build an Experiment for anything else"
    )


# ------------------------------------------------------------------------------------- kinds of measurement
#: The builder of a kind: ``build(data, device, *, floor, initial, **options) -> (module to fit, experiment)``.
Builder = Callable[..., tuple[eqx.Module, Experiment]]


@dataclasses.dataclass(frozen=True)
class MeasurementKind:
    """A kind of measurement a family can be fitted to (its class attribute ``measurement_kinds`` maps names to
    these): the CSV ``columns`` that identify it (one or more alternative sets, names without units), how to build
    the experiment, the ``options`` its builder accepts (``imcphys fit --set NAME=VALUE``), a one-line
    ``description`` for help texts, and the ``units`` of its columns (name -> a unit of the dimension the column
    must have, e.g. ``{"I": "A"}``: any unit of that dimension is accepted and converted, any other refused).
    The builder returns the module whose parameters are fitted (the device itself, or e.g. the state of one
    programmed device) and the experiment."""

    columns: tuple[tuple[str, ...], ...]
    build: Builder
    options: tuple[str, ...] = ()
    description: str = ""
    units: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        names = {n for names in self.columns for n in names}
        for name, unit in self.units.items():
            convert(1.0, unit, unit, name=f"measurement kind column {name!r}")  # a unit pint knows
        undeclared = sorted(names - set(self.units))
        if undeclared:
            raise ValueError(
                f"measurement kind ({self.description or self.columns}): give the unit of column(s) {undeclared} "
                "in units={...}, so that data in another dimension are refused"
            )

    def matches(self, data: Dataset) -> bool:
        """Whether ``data`` has one of the column sets of this kind."""
        return any(all(n in data for n in names) for names in self.columns)


def _dc(data: Dataset, device: AbstractDevice, *, floor: float = 0.0, initial: str | None = None):
    return device, dc_sweep(data, floor=floor, initial=initial)


def _pulses(
    data: Dataset, device: AbstractDevice, *, floor: float = 0.0, initial: str | None = None, fixed_steps: int = 32
):
    data.require("amplitude")
    check_column(data, "amplitude", lambda a: check_amplitude(device, a))
    return device, pulse_response(data, residual=LogAbs(float(floor)), initial=initial, fixed_steps=int(fixed_steps))


#: The kinds every family driven by a voltage and read as a current can be fitted to (a family's
#: ``measurement_kinds`` starts from these, or replaces them).
GENERIC_KINDS: dict[str, MeasurementKind] = {
    "dc": MeasurementKind(
        (("t", "V", "I"),),
        _dc,
        description="t [s], V [V], I [A]: a DC sweep, log10|I| (adaptive solve)",
        units={"t": "s", "V": "V", "I": "A"},
    ),
    "pulse": MeasurementKind(
        (("amplitude", "width", "I"),),
        _pulses,
        options=("fixed_steps",),
        description="amplitude [V], width [s], I [A]: read current after each pulse, log10|I|",
        units={"amplitude": "V", "width": "s", "I": "A"},
    ),
}
