r"""Fitting device parameters to measured data, with uncertainties and a report.

A fit is a device, the names of its free parameters, and one or more :class:`Experiment`\ s. An experiment is
*a model function* ``(device, inputs) -> predictions`` together with the measured values and a
:class:`AbstractResidual` that says on which scale to compare them. Nothing here knows a device family:

- :func:`dc_sweep` — a DC I–V sweep: :func:`imcphys.simulate` under the measured voltage waveform (for a
  triangle sweep, the triangle), currents compared as log10|I| (they span decades);
- :func:`trace` — the same for any drive waveform and observable (a constant-voltage stress, a retention
  trace under a hold bias): ``device.observe(state, drive)`` along the trace;
- :func:`pulse_response` — programming pulses one after another (``device.pulse``), ``device.read`` after each;
- ``Experiment(model=my_function, ...)`` — anything else (a closed form, a transfer curve, a pump's output
  versus frequency).

The free parameters are fitted in an unconstrained coordinate θ: a positive parameter on a log scale (u = ln
p), others linearly (u = p/|p_start|); bounds through a sigmoid (both) or a softplus (one), as in jaxley's
``optimize.transforms``. The default solver is Levenberg–Marquardt (``optimistix``), whose Jacobian comes from
forward-mode differentiation through diffrax (``diffrax.ForwardMode``); an ``optax`` optimiser can be passed
instead for problems too large or too rough for it. Multi-start: random candidates around the device's values
are screened by their cost (one vmapped forward pass), and the solver runs from the device itself and the best
candidates, ``batch`` starts per ``vmap``-ed chunk, with a progress bar; the best optimum is kept.

Uncertainty: the covariance of θ is s²(JᵀJ)⁻¹ at the optimum, J the Jacobian of the weighted residuals and s²
= Σr²/(m − n) the residual variance (the noise level is estimated from the fit, as
``scipy.optimize.curve_fit`` does by default), carried to the parameters by the slope of the transform (delta
method). A parameter pinned at a bound (the transform saturated, or the Gauss–Newton step pointing beyond the
bound) is flagged and left out of the covariance; one the data do not determine (relative standard error above
1, or a null direction of J) is flagged ``unconstrained``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, PyTree

from .cards import Card
from .cards import save_card as _save_card
from .data import Dataset
from .device import AbstractDevice, parameter_ranges, parameter_units, replace
from .simulate import simulate
from .stimulus import PiecewiseLinear
from .units import convert

#: Residual given to a point the model cannot predict (NaN/inf, a failed solve): large, so a step there is
#: rejected, and finite, so the solver's arithmetic stays finite.
PENALTY = 1e3
#: A bounded parameter is "at a bound" when its transform is within this fraction of saturation.
PIN_FRACTION = 1e-3


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
    as log10|I| (:class:`LogAbs`, points with |I| <= ``floor`` [A] left out), plotted against V."""
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


# -------------------------------------------------------------------------------------- free parameters
@dataclasses.dataclass(frozen=True)
class Free:
    """A free parameter: its ``name``, optional ``lower``/``upper`` bounds (SI, the parameter's unit) and its
    scale: ``log=True`` fits ln p (p must stay positive), ``False`` fits p linearly, ``None`` chooses log when
    the start value (and any bound) is positive."""

    name: str
    lower: float | None = None
    upper: float | None = None
    log: bool | None = None


def parse_free(spec: str, device: AbstractDevice, unit: str | None = None) -> Free:
    """A :class:`Free` from the command-line form ``NAME``, ``NAME:LO:HI``, ``NAME:LO:`` (lower bound only) or
    ``NAME::HI`` (upper only), bounds in ``unit`` (e.g. the unit a card gives that parameter; default SI).
    Errors name the parameter; bounds outside the parameter's allowed range are caught by :func:`fit`."""
    name, *bounds = spec.split(":")
    name = name.strip()
    if not name:
        raise ValueError(f"--free {spec!r}: expected NAME, NAME:LO:HI, NAME:LO: or NAME::HI")
    if not bounds:
        return Free(name)
    if len(bounds) != 2 or not any(b.strip() for b in bounds):
        raise ValueError(f"--free {spec!r}: {name}: bounds are written NAME:LO:HI, NAME:LO: or NAME::HI")
    units = parameter_units(device)
    if name not in units:
        raise ValueError(f"{type(device).__name__} has no parameter {name!r}; known: {sorted(units)}")
    values: list[float | None] = []
    for which, text in zip(("lower", "upper"), bounds):
        if not text.strip():
            values.append(None)
            continue
        try:
            x = float(text)
        except ValueError:
            raise ValueError(f"{name}: the {which} bound {text!r} is not a number") from None
        if not np.isfinite(x):
            raise ValueError(f"{name}: the {which} bound must be finite; got {text!r}")
        values.append(x)
    if values[0] is not None and values[1] is not None and not values[0] < values[1]:
        raise ValueError(
            f"{name}: the lower bound {values[0]:g} must be below the upper bound {values[1]:g}{_unit_text(unit)}"
        )
    lo, hi = (None if v is None else float(convert(v, unit, units[name], name=name)) if unit else v for v in values)
    return Free(name, lo, hi)


def _unit_text(unit: str | None) -> str:
    return "" if unit in (None, "", "1") else f" {unit}"


def _check_bounds_allowed(device: AbstractDevice, spec: Free, unit: str) -> None:
    """Each bound must be a value the parameter may take: the device is built with it (its own checks), moved
    inwards by a hair, as the fit only approaches a bound (so (0, 1) bounds a ratio that must lie in (0, 1))."""
    lo, hi = spec.lower, spec.upper
    for which, bound, inward in (("lower", lo, 1.0), ("upper", hi, -1.0)):
        if bound is None:
            continue
        hair = 1e-9 * (hi - lo) if lo is not None and hi is not None else (1e-9 * abs(bound) or 1e-300)
        try:
            dataclasses.replace(device, **{spec.name: bound + inward * hair})
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{spec.name}: the {which} bound {bound:g}{_unit_text(unit)} lies outside the "
                f"parameter's allowed range ({err})"
            ) from None


def _declared_bounds(
    device: AbstractDevice, name: str, p0: float, log: bool, lo: float | None, hi: float | None
) -> tuple[float | None, float | None]:
    """The bounds a fit keeps ``name`` within: those given, else the parameter's declared range (``param(...,
    lower=, upper=)``) where it says more than the scale does (a log scale is already positive) and the start
    value lies strictly inside it."""
    r = parameter_ranges(device)[name]
    if lo is None and r["lower"] is not None and p0 > r["lower"] and not (log and r["lower"] <= 0):
        lo = float(r["lower"])
    if hi is None and r["upper"] is not None and p0 < r["upper"]:
        hi = float(r["upper"])
    return lo, hi


_NONE, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3


class _Transform(eqx.Module):
    """θ (unconstrained) <-> parameter values (SI), elementwise over the free parameters."""

    names: tuple[str, ...] = eqx.field(static=True)
    log: tuple[bool, ...] = eqx.field(static=True)
    kind: tuple[int, ...] = eqx.field(static=True)
    scale: Float[Array, " n"]  # u = p/scale on a linear scale (1 for log)
    center: Float[Array, " n"]  # u at θ = 0 for an unbounded parameter
    lower: Float[Array, " n"]  # bounds on u
    upper: Float[Array, " n"]
    p_lower: Float[Array, " n"]  # the same bounds on p [SI] (-inf/inf: none), against round-off in exp(ln p)
    p_upper: Float[Array, " n"]

    def u_of_theta(self, theta: Array) -> Array:
        sp, sig = jax.nn.softplus, jax.nn.sigmoid
        us = []
        for i, kind in enumerate(self.kind):
            th, lo, hi = theta[i], self.lower[i], self.upper[i]
            us.append(
                {
                    _NONE: lambda: self.center[i] + th,
                    _LOWER: lambda: lo + sp(th),
                    _UPPER: lambda: hi - sp(-th),
                    _BOTH: lambda: lo + (hi - lo) * sig(th),
                }[kind]()
            )
        return jnp.stack(us)

    def params(self, theta: Array) -> Array:
        """Parameter values [SI] at θ."""
        u = self.u_of_theta(theta)
        return jnp.clip(jnp.where(jnp.asarray(self.log), jnp.exp(u), u * self.scale), self.p_lower, self.p_upper)

    def theta(self, p: np.ndarray) -> np.ndarray:
        """θ of parameter values ``p`` [SI] (strictly inside any bounds)."""
        p = np.asarray(p, dtype=float)
        u = np.where(self.log, np.log(np.where(self.log, p, 1.0)), p / np.asarray(self.scale))
        lo, hi, c = np.asarray(self.lower), np.asarray(self.upper), np.asarray(self.center)
        out = np.empty_like(u)
        for i, kind in enumerate(self.kind):
            if kind == _NONE:
                out[i] = u[i] - c[i]
            elif kind == _LOWER:
                out[i] = _softplus_inv(u[i] - lo[i])
            elif kind == _UPPER:
                out[i] = -_softplus_inv(hi[i] - u[i])
            else:
                f = (u[i] - lo[i]) / (hi[i] - lo[i])
                out[i] = np.log(f) - np.log1p(-f)
        return out

    def pinned(
        self, theta: np.ndarray, jac: np.ndarray | None = None, residuals: np.ndarray | None = None
    ) -> list[str | None]:
        """``"lower"``/``"upper"`` for each parameter held at that bound, else None.

        Held means the transform is saturated there, or — given the Jacobian (in θ) and the residuals at θ —
        the Gauss–Newton step in the bounded coordinate u would cross the bound: the optimum lies beyond it.
        (The solver only creeps towards a bound, as the transform's slope vanishes there.)
        """
        theta = np.asarray(theta, dtype=float)
        target = np.full(theta.shape, np.nan)
        if jac is not None and residuals is not None:
            u, slope = (np.asarray(x) for x in _transform_at(self, jnp.asarray(theta))[2:])
            live = slope > 0
            step = np.linalg.lstsq(jac[:, live] / slope[live], -residuals, rcond=None)[0]
            target[live] = u[live] + step
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        out: list[str | None] = []
        for i, kind in enumerate(self.kind):
            th = float(theta[i])
            frac_lo = {_LOWER: _softplus(th), _BOTH: _sigmoid(th)}.get(kind, np.inf)
            frac_hi = {_UPPER: _softplus(-th), _BOTH: _sigmoid(-th)}.get(kind, np.inf)
            at_lo = frac_lo < PIN_FRACTION or (kind in (_LOWER, _BOTH) and target[i] <= lo[i])
            at_hi = frac_hi < PIN_FRACTION or (kind in (_UPPER, _BOTH) and target[i] >= hi[i])
            out.append("lower" if at_lo else "upper" if at_hi else None)
        return out


@eqx.filter_jit
def _transform_at(tr: _Transform, theta: Array) -> tuple[Array, Array, Array, Array]:
    """Parameter values, u, and their slopes dp/dθ, du/dθ (elementwise) at θ: jitted, as fits call it per start."""
    ones = jnp.ones_like(theta)
    p, dp = jax.jvp(tr.params, (theta,), (ones,))
    u, du = jax.jvp(tr.u_of_theta, (theta,), (ones,))
    return p, dp, u, du


def _softplus(x: float) -> float:
    return float(np.logaddexp(0.0, x))


def _sigmoid(x: float) -> float:
    return float(0.5 * (1 + np.tanh(0.5 * x)))


def _softplus_inv(y: float) -> float:
    return float(y + np.log(-np.expm1(-y)))


def _make_transform(device: AbstractDevice, free: Sequence[str | Free]) -> _Transform:
    units = parameter_units(device)
    specs = [f if isinstance(f, Free) else Free(f) for f in free]
    names = [s.name for s in specs]
    if not names:
        raise ValueError("free must name at least one parameter")
    if len(set(names)) != len(names):
        raise ValueError(f"free names a parameter twice: {names}")
    cols: dict[str, list] = {k: [] for k in ("log", "kind", "scale", "center", "lower", "upper", "p_lower", "p_upper")}
    for s in specs:
        if s.name not in units:
            raise ValueError(f"{type(device).__name__} has no parameter {s.name!r}; known: {sorted(units)}")
        p0 = np.asarray(getattr(device, s.name), dtype=float)
        if p0.ndim != 0:
            raise ValueError(
                f"{s.name}: fit one cell at a time (the parameter has shape {p0.shape}); "
                "vmap or loop over the cells of a population"
            )
        p0 = float(p0)
        unit = units[s.name]
        lo, hi = s.lower, s.upper
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"{s.name}: lower bound {lo:g} {unit} must be below the upper bound {hi:g} {unit}")
        if (lo is not None and p0 <= lo) or (hi is not None and p0 >= hi):
            raise ValueError(
                f"{s.name}: the start value {p0:g} {unit} must lie strictly inside the bounds "
                f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}] {unit}"
            )
        log = s.log if s.log is not None else p0 > 0 and (lo is None or lo > 0) and (hi is None or hi > 0)
        lo, hi = _declared_bounds(device, s.name, p0, log, lo, hi)
        if log and (p0 <= 0 or (lo is not None and lo <= 0)):
            raise ValueError(
                f"{s.name}: a log scale needs a positive start value and lower bound; got "
                f"{p0:g} {unit}" + (f" and lower = {lo:g} {unit}" if lo is not None else "")
            )
        _check_bounds_allowed(device, s, unit)
        scale = 1.0 if log else (abs(p0) if p0 != 0 else 1.0)
        to_u = (lambda p: np.log(p)) if log else (lambda p: p / scale)  # noqa: E731
        cols["log"].append(bool(log))
        cols["kind"].append(
            {(False, False): _NONE, (True, False): _LOWER, (False, True): _UPPER, (True, True): _BOTH}[
                (lo is not None, hi is not None)
            ]
        )
        cols["scale"].append(scale)
        cols["center"].append(to_u(p0))
        cols["lower"].append(to_u(lo) if lo is not None else -np.inf)
        cols["upper"].append(to_u(hi) if hi is not None else np.inf)
        cols["p_lower"].append(lo if lo is not None else -np.inf)
        cols["p_upper"].append(hi if hi is not None else np.inf)
    arr = lambda k: jnp.asarray(np.asarray(cols[k], dtype=float))  # noqa: E731
    return _Transform(
        tuple(names),
        tuple(cols["log"]),
        tuple(cols["kind"]),
        *(arr(k) for k in ("scale", "center", "lower", "upper", "p_lower", "p_upper")),
    )


# ------------------------------------------------------------------------------------------------- problem
class _Problem(eqx.Module):
    device: AbstractDevice
    experiments: tuple[_Core, ...]
    transform: _Transform

    def device_at(self, theta: Array) -> AbstractDevice:
        values = self.transform.params(theta)
        return replace(self.device, **{n: values[i] for i, n in enumerate(self.transform.names)})

    def evaluate(self, theta: Array) -> tuple[Array, tuple[Array, ...]]:
        """All weighted residuals (one vector) and each experiment's predictions, at θ."""
        device = self.device_at(theta)
        predictions = tuple(e.predict(device) for e in self.experiments)
        r = jnp.concatenate([e.weighted_residuals(p) for e, p in zip(self.experiments, predictions)])
        return r, predictions


def _linearise(problem: _Problem, theta: Array) -> tuple[PyTree, PyTree]:
    """``problem.evaluate(theta)`` and its derivative in θ (a trailing axis of length n on every output), by one
    forward-mode pass per free parameter, vmapped."""
    basis = jnp.eye(theta.shape[0], dtype=theta.dtype)
    return jax.vmap(lambda e: jax.jvp(problem.evaluate, (theta,), (e,)), out_axes=(None, -1))(basis)


def _residual_fn(problem: _Problem) -> Callable[[Array], tuple[Array, tuple[Array, ...]]]:
    """θ -> (residuals, predictions), whose derivative is the Jacobian materialised by :func:`_linearise`.

    optimistix linearises the residual function and then applies the linearisation once per column; the
    linearisation of a ``while_loop`` (every adaptive solve) re-runs the whole forward pass each time.
    Computing J once per point in a custom JVP rule made a 4-parameter DC-sweep fit 3.5× faster here.
    """
    dynamic, static = eqx.partition(problem, eqx.is_array)

    @jax.custom_jvp
    def fn(dyn, theta):
        return eqx.combine(dyn, static).evaluate(theta)

    @fn.defjvp
    def fn_jvp(primals, tangents):
        dyn, theta = primals
        value, jac = _linearise(eqx.combine(dyn, static), theta)
        return value, jax.tree_util.tree_map(lambda j: j @ tangents[1], jac)

    return lambda theta: fn(dynamic, theta)


class _Outcome(eqx.Module):
    theta: Array
    residuals: Array
    jacobian: Array
    predictions: tuple[Array, ...]
    steps: Array
    success: Array


def _solve_one(problem: _Problem, theta0: Array, solver: optx.AbstractLeastSquaresSolver, max_steps: int) -> _Outcome:
    sol = optx.least_squares(
        lambda th, pr: _residual_fn(pr)(th),
        solver,
        theta0,
        args=problem,
        has_aux=True,
        max_steps=max_steps,
        throw=False,
    )
    # the solver's last accepted point is sol.value: its residuals and (linearised) Jacobian are kept in the
    # state, so the Jacobian for the standard errors costs no second compilation of the model's derivative
    info = sol.state.f_info
    return _Outcome(
        sol.value,
        info.residual,
        info.jac.as_matrix(),
        sol.aux,
        sol.stats["num_steps"],
        sol.result == optx.RESULTS.successful,
    )


def _tiled_data(problem: _Problem, rows: int) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """The problem's own data, ``rows`` times (a leading axis): one start's share of a batched solve. The
    single fit runs through the batched solver so that it shares its compilation with :func:`fit_each`
    (same model, data shape and rows per chunk)."""

    def tile(x):  # through numpy: an eager jnp.broadcast_to would compile once per shape
        return jnp.asarray(np.broadcast_to(np.asarray(x), (rows, *x.shape)))

    return tuple(tile(c.observed) for c in problem.experiments), tuple(tile(c.mask) for c in problem.experiments)


def _with_data(problem: _Problem, observed: tuple[Array, ...], masks: tuple[Array, ...]) -> _Problem:
    """``problem`` with other measured values (and masks) of the same shapes."""
    return eqx.tree_at(
        lambda p: [c.observed for c in p.experiments] + [c.mask for c in p.experiments], problem, [*observed, *masks]
    )


@eqx.filter_jit
def _least_squares_each(
    problem: _Problem,
    observed: tuple[Array, ...],
    masks: tuple[Array, ...],
    thetas: Array,
    solver: optx.AbstractLeastSquaresSolver,
    max_steps: int,
) -> _Outcome:
    """One solve per row: the data ``observed[k][i]`` from the start ``thetas[i]``."""
    return jax.vmap(lambda obs, msk, th: _solve_one(_with_data(problem, obs, msk), th, solver, max_steps))(
        observed, masks, thetas
    )


@eqx.filter_jit
def _screen_each(problem: _Problem, observed: tuple[Array, ...], masks: tuple[Array, ...], thetas: Array) -> Array:
    """½Σr² for every data row i and candidate j: ``thetas`` has shape (rows, candidates, n)."""

    def row(obs, msk, ths):
        pr = _with_data(problem, obs, msk)
        return jax.vmap(lambda th: 0.5 * jnp.sum(pr.evaluate(th)[0] ** 2))(ths)

    return jax.vmap(row)(observed, masks, thetas)


@eqx.filter_jit
def _descend(
    problem: _Problem,
    thetas: Array,
    opt_state: PyTree,
    best: tuple[Array, Array],
    optimizer: optax.GradientTransformation,
    steps: int,
):
    """``steps`` optimiser steps on ½Σr² for every start (vmapped), keeping the best θ seen."""

    def loss(theta):
        r = _residual_fn(problem)(theta)[0]
        return 0.5 * jnp.sum(r * r)

    def one(theta, state, best_theta, best_loss):
        def step(carry, _):
            theta, state, best_theta, best_loss = carry
            value, grad = jax.value_and_grad(loss)(theta)
            better = value < best_loss
            best_theta = jnp.where(better, theta, best_theta)
            best_loss = jnp.where(better, value, best_loss)
            updates, state = optimizer.update(grad, state, theta)
            return (optax.apply_updates(theta, updates), state, best_theta, best_loss), None

        return jax.lax.scan(step, (theta, state, best_theta, best_loss), None, length=steps)[0]

    return jax.vmap(one)(thetas, opt_state, *best)


@eqx.filter_jit
def _screen(problem: _Problem, thetas: Array) -> Array:
    """½Σr² at each θ (forward pass only)."""
    return jax.vmap(lambda th: 0.5 * jnp.sum(problem.evaluate(th)[0] ** 2))(thetas)


@eqx.filter_jit
def _evaluate(problem: _Problem, thetas: Array) -> tuple[PyTree, PyTree]:
    return jax.vmap(lambda th: _linearise(problem, th))(thetas)


# ------------------------------------------------------------------------------------------------- results
@dataclasses.dataclass
class Starts:
    """What the multi-start did: per start, its start and final values, final cost ½Σr², whether the solver
    reported success, its steps, and whether it reached the best optimum (within the joint 1-σ region:
    2Δcost/s² < 1)."""

    initial: np.ndarray  #: start parameter values [SI], one row per start
    final: np.ndarray  #: parameter values reached [SI]
    cost: np.ndarray
    success: np.ndarray
    steps: np.ndarray
    reached_best: np.ndarray


@dataclasses.dataclass
class FitSummary:
    """The summary table of a fit; ``str()`` / ``repr()`` give it as text."""

    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


@dataclasses.dataclass
class FitResult:
    """A finished fit: the fitted device, values with standard errors, correlations, residuals, and a report.

    ``values``/``std_errors`` are SI (``units``); ``status`` per parameter is ``"ok"``, ``"unconstrained"``,
    ``"at lower bound"`` or ``"at upper bound"``.
    """

    device: AbstractDevice
    initial_device: AbstractDevice
    names: tuple[str, ...]
    units: tuple[str, ...]
    values: np.ndarray
    std_errors: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    status: tuple[str, ...]
    experiments: tuple[Experiment, ...]
    predictions: tuple[np.ndarray, ...]
    residuals: tuple[np.ndarray, ...]  #: per experiment, in the residual unit (NaN where masked)
    rms: tuple[float, ...]  #: rms residual per experiment, in its residual unit
    cost: float  #: ½Σ(r/σ)² at the optimum
    dof: int  #: points − free parameters (not pinned)
    noise: float  #: s = sqrt(Σ(r/σ)²/dof), the residual scale the standard errors are based on
    starts: Starts
    solver: str
    seconds: float
    card: Card | None = None

    # ---------------------------------------------------------------- display units
    def _display(self, i: int, template: Card | None = None) -> tuple[float, float, str]:
        """Value, standard error and unit of parameter i in the unit of ``template`` (default: the fit's card;
        SI without one)."""
        name, si = self.names[i], self.units[i]
        template = template or self.card
        unit = template.provenance.get(name, {}).get("unit", si) if template is not None else si
        value = float(convert(self.values[i], si, unit, name=name))
        se = float(self.std_errors[i])
        if np.isfinite(se):  # a difference, so that offset units (degC) convert correctly
            se = float(convert(self.values[i] + se, si, unit, name=name)) - value
        return value, se, unit

    @property
    def relative_errors(self) -> np.ndarray:
        """std error / |value|."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.std_errors / np.abs(self.values)

    def summary(self) -> FitSummary:
        """Table: value ± standard error, unit, relative error, status; correlations; rms residuals."""
        rows = [("parameter", "value", "± std error", "unit", "rel. err", "status")]
        for i, name in enumerate(self.names):
            value, se, unit = self._display(i)
            rel = self.relative_errors[i]
            rows.append(
                (
                    name,
                    f"{value:.6g}",
                    f"± {se:.3g}" if np.isfinite(se) else "± n/a",
                    unit,
                    f"{100 * rel:.2g} %" if np.isfinite(rel) else "n/a",
                    self.status[i],
                )
            )
        widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if len(self.names) > 1:
            lines += ["", "correlations:"]
            w = max(len(n) for n in self.names)
            lines.append(" " * (w + 2) + " ".join(f"{k:>6d}" for k in range(len(self.names))))
            for i, n in enumerate(self.names):
                cells = " ".join(f"{c:+6.2f}" if np.isfinite(c) else "   n/a" for c in self.correlation[i])
                lines.append(f"{n:<{w}} {i:d} {cells}")
        lines.append("")
        for e, rms in zip(self.experiments, self.rms):
            lines.append(f"rms residual {_fmt_residual(rms, e.residual.unit)}  ({e.name}, {e.points} points)")
        st = self.starts
        lines.append(
            f"multi-start: {int(st.reached_best.sum())}/{len(st.cost)} starts reached the best optimum; "
            f"solver {self.solver}; {self.seconds:.1f} s"
        )
        return FitSummary("\n".join(lines))

    def report(self) -> dict[str, Any]:
        """The fit as a JSON-ready dictionary (parameters in display units and SI, correlations, rms, starts)."""
        params = []
        for i, name in enumerate(self.names):
            value, se, unit = self._display(i)
            params.append(
                {
                    "name": name,
                    "value": value,
                    "std_error": _finite_or_none(se),
                    "unit": unit,
                    "value_si": float(self.values[i]),
                    "std_error_si": _finite_or_none(self.std_errors[i]),
                    "unit_si": self.units[i],
                    "relative_error": _finite_or_none(self.relative_errors[i]),
                    "status": self.status[i],
                    "start_si": float(getattr(self.initial_device, name)),
                }
            )
        return {
            "parameters": params,
            "correlation": [[_finite_or_none(c) for c in row] for row in self.correlation],
            "experiments": [
                {"name": e.name, "points": e.points, "rms_residual": rms, "residual_unit": e.residual.unit}
                for e, rms in zip(self.experiments, self.rms)
            ],
            "cost": self.cost,
            "dof": self.dof,
            "residual_scale": self.noise,
            "solver": self.solver,
            "seconds": self.seconds,
            "starts": {
                "count": len(self.starts.cost),
                "reached_best": int(self.starts.reached_best.sum()),
                "solver_success": int(self.starts.success.sum()),
                "cost": [_finite_or_none(c) for c in self.starts.cost],
                "steps": [int(s) for s in self.starts.steps],
            },
        }

    def save_report(self, path: str | Path) -> Path:
        """Write :meth:`report` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.report(), indent=2, allow_nan=False))
        return path

    def save_card(self, path: str | Path, *, template: Card | None = None) -> Path:
        """Write the fitted device as a parameter card: the free parameters get ``status = "fitted"``, their
        ``std_error`` (card unit) and ``fit_status``; the others keep the template's provenance."""
        template = template or self.card
        sources = ", ".join(e.name for e in self.experiments)
        extra = {}
        for i, name in enumerate(self.names):
            _, se, _ = self._display(i, template)
            extra[name] = {
                "std_error": float(f"{se:.4g}") if np.isfinite(se) else "n/a",
                "fit_status": self.status[i],
                "source": f"fitted by imcphys.fit to {sources}",
            }
        return _save_card(self.device, path, template=template, status={n: "fitted" for n in self.names}, extra=extra)

    def plot(self, path: str | Path | None = None):
        """Data and model for every experiment, residuals underneath; saved as PNG at ``path`` if given.
        Returns the matplotlib figure."""
        from . import plot as P

        n = len(self.experiments)
        fig, axes = P.subplots(2, n, size=(5.0, 2.6), sharex="col", gridspec_kw={"height_ratios": [2.2, 1.0]})
        for j, (e, pred, res) in enumerate(zip(self.experiments, self.predictions, self.residuals)):
            top, bottom = axes[0, j], axes[1, j]
            x, obs = np.asarray(e.x), np.asarray(e.observed)
            mask = np.asarray(e.mask)
            log_y = isinstance(e.residual, LogAbs)
            yd, ym = (np.abs(obs), np.abs(pred)) if log_y else (obs, pred)
            top.plot(x[mask], yd[mask], ".", ms=4, color="0.35", label="data")
            top.plot(*_broken_at_jumps(x, ym), "-", lw=1.2, color="C3", label="model")
            if log_y:
                top.set_yscale("log")
            P.label(top, "", f"|{e.y_label.split(' [')[0]}| [{_unit_of(e.y_label)}]" if log_y else e.y_label, e.name)
            top.legend(fontsize=8)
            scale, unit = (100.0, "%") if e.residual.unit == "1" else (1.0, e.residual.unit)
            bottom.axhline(0.0, color="0.6", lw=0.8)
            bottom.plot(x[mask], scale * res[mask], ".", ms=3, color="C0")
            P.label(bottom, e.x_label, f"residual [{unit}]")
            if e.log_x:
                bottom.set_xscale("log")
        if path is not None:
            fig.savefig(Path(path), dpi=110)
        return fig


def _broken_at_jumps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with NaN inserted where x jumps by more than 5× its typical step both on a linear and on a log
    scale: curves stacked in one experiment (two sweeps, two temperatures) are drawn apart, while a sweep that
    turns back (a hysteresis loop) or a log-spaced time grid stays whole."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.size < 3:
        return x, y

    def jumps(u):
        du = np.abs(np.diff(u))
        return du > 5 * np.median(du[du > 0]) if np.any(du > 0) else np.zeros(du.shape, bool)

    breaks = np.nonzero(jumps(x) & jumps(np.log10(np.abs(x) + 1e-300)))[0] + 1
    return np.insert(x, breaks, np.nan), np.insert(y, breaks, np.nan)


def _unit_of(label: str) -> str:
    return label.split("[", 1)[1].rstrip("]") if "[" in label else "1"


def _fmt_residual(rms: float, unit: str) -> str:
    return f"{100 * rms:.3g} %" if unit == "1" else f"{rms:.3g} {unit}"


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


# -------------------------------------------------------------------------------------------------- fit
def fit(
    device: AbstractDevice,
    experiments: Experiment | Dataset | Sequence[Experiment | Dataset],
    *,
    free: Sequence[str | Free],
    key: PRNGKeyArray,
    starts: int = 8,
    candidates: int = 64,
    spread: float = 2.0,
    solver: optx.AbstractLeastSquaresSolver | optax.GradientTransformation | None = None,
    max_steps: int = 64,
    batch: int = 4,
    card: Card | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit the parameters ``free`` of ``device`` to ``experiments``.

    ``experiments``: one or more :class:`Experiment` (a :class:`~imcphys.data.Dataset` is turned into one by
    :func:`experiment_from`). ``free``: parameter names or :class:`Free` specs (bounds, scale).

    Multi-start: ``key`` draws ``candidates`` points uniformly within a factor ``spread`` of ``device``'s
    values (log-scale parameters; linear ones within ±(spread − 1)·|value|; clipped into any bounds), their
    cost is evaluated (one vmapped forward pass), and the solver starts from ``device`` itself and the
    ``starts − 1`` best candidates. The screening matters: switching models are flat wherever a pulse does
    nothing or everything (e.g. a ReRAM activation energy 40 % off), and a local solver started there cannot
    move.

    ``solver``: an optimistix least-squares solver (default Levenberg–Marquardt, rtol = atol = 1e-5) run for
    at most ``max_steps`` iterations, or an optax optimiser run for exactly ``max_steps`` steps on ½Σr².
    Starts run ``batch`` at a time as one vmapped solve (a progress bar counts them when ``progress``).
    ``card`` (the card ``device`` came from) gives the units of the summary and the template of
    :meth:`FitResult.save_card`.
    """
    t_start = time.perf_counter()
    exps, transform, problem = _setup(
        device, experiments, free, starts=starts, candidates=candidates, batch=batch, spread=spread
    )
    p0 = np.array([float(getattr(device, n)) for n in transform.names])
    thetas = _draw_starts(transform, p0, max(starts, candidates + 1), spread, key=key)
    if candidates and len(thetas) > starts:
        with _progress(len(thetas) - 1, "screening start candidates", progress) as bar:
            cost = np.asarray(_screen(problem, jnp.asarray(thetas[1:])))
            bar.update(len(thetas) - 1)
        order = np.argsort(np.where(np.isfinite(cost), cost, np.inf), kind="stable")
        thetas = np.concatenate([thetas[:1], thetas[1:][order[: starts - 1]]])
    solver = solver if solver is not None else optx.LevenbergMarquardt(rtol=1e-5, atol=1e-5)
    if isinstance(solver, optax.GradientTransformation):
        outcome = _run_optax(problem, thetas, solver, max_steps, progress)
        solver_name = f"optax ({max_steps} steps)"
    elif isinstance(solver, optx.AbstractLeastSquaresSolver):
        outcome = _run_least_squares(problem, thetas, solver, max_steps, batch, progress)
        solver_name = type(solver).__name__
    else:
        raise TypeError(f"solver must be an optimistix least-squares solver or an optax optimiser; got {solver!r}")
    return _result(problem, exps, thetas, outcome, solver_name, time.perf_counter() - t_start, card)


def _setup(
    device: AbstractDevice, experiments, free: Sequence[str | Free], **counts
) -> tuple[tuple[Experiment, ...], _Transform, _Problem]:
    """Experiments as a tuple, the transform of the free parameters and the problem; checks the settings."""
    exps = tuple(
        experiment_from(e) if isinstance(e, Dataset) else e
        for e in ((experiments,) if isinstance(experiments, (Experiment, Dataset)) else experiments)
    )
    if not exps or not all(isinstance(e, Experiment) for e in exps):
        raise TypeError("experiments must be one or more imcphys.fit.Experiment (or Dataset)")
    spread = counts.pop("spread")
    for label, value in counts.items():
        least = 0 if label == "candidates" else 1
        if not (isinstance(value, int) and value >= least):
            raise ValueError(f"{label} must be an integer >= {least}; got {value!r}")
    if not spread > 1:
        raise ValueError(f"spread must be > 1; got {spread!r}")
    transform = _make_transform(device, free)
    # strong dtypes throughout: a weakly typed leaf (a parameter set from a Python float) would otherwise make
    # the same problem compile again
    problem = jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, dtype=jnp.result_type(x)) if eqx.is_array(x) else x,
        _Problem(device, tuple(e.core() for e in exps), transform),
    )
    return exps, transform, problem


def _draw_starts(transform: _Transform, p0: np.ndarray, starts: int, spread: float, *, key: PRNGKeyArray) -> np.ndarray:
    """θ of the starts: p0 first, then draws within a factor ``spread`` (log) or ±(spread − 1)·|p0| (linear)."""
    z = np.asarray(jr.uniform(key, (starts - 1, len(p0)), minval=-1.0, maxval=1.0))
    return _spread_starts(transform, p0, z, spread)


def _spread_starts(transform: _Transform, p0: np.ndarray, z: np.ndarray, spread: float) -> np.ndarray:
    """θ of p0 followed by the points p0 moved by ``z`` ∈ [−1, 1]ⁿ (one row per point) times the spread."""
    width = np.where(transform.log, np.log(spread), spread - 1.0)
    u0 = np.where(transform.log, np.log(np.abs(p0)), p0 / np.asarray(transform.scale))
    u = u0 + z * width
    lo, hi = np.asarray(transform.lower), np.asarray(transform.upper)
    # keep draws strictly inside bounds: 1e-3 of the range (or of one unit of u) from each edge
    margin = np.where(np.isfinite(hi - lo), 1e-3 * (hi - lo), 1e-3)
    u = np.clip(u, lo + margin, hi - margin)
    p = np.where(transform.log, np.exp(u), u * np.asarray(transform.scale))
    return np.stack([transform.theta(p0)] + [transform.theta(row) for row in p])


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="start" if "start" in desc else "step",
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
    )


def _run_least_squares(problem, thetas, solver, max_steps, batch, progress) -> _Outcome:
    n = thetas.shape[0]
    size = min(batch, n)
    chunks = []
    with _progress(n, "multi-start (Levenberg-Marquardt)", progress) as bar:
        for k in range(0, n, size):
            chunk = thetas[k : k + size]
            # pad the last chunk with its first start so that every chunk has one shape (one compilation)
            padded = np.concatenate([chunk, np.repeat(chunk[:1], size - len(chunk), axis=0)])
            out = _least_squares_each(problem, *_tiled_data(problem, size), jnp.asarray(padded), solver, max_steps)
            chunks.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[: len(chunk)], out))
            bar.update(len(chunk))
            bar.set_postfix(best_cost=f"{min(_cost(c.residuals).min() for c in chunks):.4g}")
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *chunks)


def _run_optax(problem, thetas, optimizer, steps, progress) -> _Outcome:
    theta = jnp.asarray(thetas)
    state = jax.vmap(optimizer.init)(theta)
    best = (theta, jnp.full(theta.shape[0], jnp.inf))
    chunk = max(1, steps // 20)
    done = 0
    with _progress(steps, "optax", progress) as bar:
        while done < steps:
            k = min(chunk, steps - done)
            theta, state, *best = _descend(problem, theta, state, tuple(best), optimizer, k)
            done += k
            bar.update(k)
            bar.set_postfix(best_cost=f"{float(jnp.min(best[1])):.4g}")
    (f, predictions), (jac, _) = _evaluate(problem, best[0])
    return jax.tree_util.tree_map(
        np.asarray, _Outcome(best[0], f, jac, predictions, jnp.full(theta.shape[0], steps), jnp.isfinite(best[1]))
    )


def _cost(residuals: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # a start far off may overflow: its cost is inf, ranked last
        return 0.5 * np.sum(np.asarray(residuals) ** 2, axis=-1)


class _Uncertainty(NamedTuple):
    values: np.ndarray
    std_errors: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    status: tuple[str, ...]
    dof: int
    s2: float


def _uncertainty(tr: _Transform, theta: np.ndarray, jac: np.ndarray, f: np.ndarray, points: int) -> _Uncertainty:
    """Values, standard errors, covariance, correlations and flags at the optimum θ (module docstring)."""
    pinned = tr.pinned(theta, jac, f)
    active = np.array([p is None for p in pinned])
    dof = points - int(active.sum())
    if dof <= 0:
        raise ValueError(f"{points} data points cannot determine {int(active.sum())} free parameters")
    s2 = float(np.sum(f**2)) / dof
    n = len(theta)
    cov_theta = np.full((n, n), np.nan)
    unconstrained = np.zeros(n, dtype=bool)
    if active.any():
        ja = jac[:, active]
        # scale columns so that the conditioning test compares directions, not parameter units
        norms = np.linalg.norm(ja, axis=0)
        safe = np.where(norms > 0, norms, 1.0)
        u, sv, vt = np.linalg.svd(ja / safe, full_matrices=False)
        null = sv <= 1e-10 * sv.max() if sv.size and sv.max() > 0 else np.ones_like(sv, dtype=bool)
        inv = np.where(null, 0.0, 1.0 / np.where(null, 1.0, sv) ** 2)
        cov_a = (vt.T * inv) @ vt / np.outer(safe, safe) * s2
        # a parameter with a component along a null direction (or a zero column) is not determined at all
        undetermined = (np.abs(vt[null]).max(axis=0) > 1e-6 if null.any() else np.zeros(len(safe), bool)) | (norms == 0)
        cov_a[undetermined, :] = np.nan
        cov_a[:, undetermined] = np.nan
        idx = np.flatnonzero(active)
        cov_theta[np.ix_(idx, idx)] = cov_a
        unconstrained[idx[undetermined]] = True
    values, slope = (np.asarray(x) for x in _transform_at(tr, jnp.asarray(theta))[:2])
    cov = cov_theta * np.outer(slope, slope)
    se = np.sqrt(np.diag(cov))
    se = np.where(unconstrained, np.inf, se)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov_theta / np.sqrt(np.outer(np.diag(cov_theta), np.diag(cov_theta)))
        rel = se / np.abs(values)
    status = tuple(
        "at lower bound"
        if p == "lower"
        else "at upper bound"
        if p == "upper"
        else "unconstrained"
        if (unconstrained[i] or not rel[i] <= 1.0)
        else "ok"
        for i, p in enumerate(pinned)
    )
    return _Uncertainty(values, se, cov, corr, status, dof, s2)


def _result(
    problem: _Problem,
    experiments: tuple[Experiment, ...],
    thetas: np.ndarray,
    out: _Outcome,
    solver: str,
    seconds: float,
    card: Card | None,
) -> FitResult:
    tr = problem.transform
    cost = _cost(out.residuals)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    best = int(np.argmin(cost))
    theta, f, jac = np.asarray(out.theta[best]), np.asarray(out.residuals[best]), np.asarray(out.jacobian[best])
    unc = _uncertainty(tr, theta, jac, f, sum(e.points for e in experiments))
    values, se, cov, corr, status, dof, s2 = unc
    device = replace(problem.device, **{n: values[i] for i, n in enumerate(tr.names)})
    predictions, residuals, rms = [], [], []
    for e, pred in zip(experiments, out.predictions):
        pred = np.asarray(pred[best])
        r = np.asarray(e.residual(jnp.asarray(pred), e.observed))
        mask = np.asarray(e.mask)
        predictions.append(pred)
        residuals.append(np.where(mask, r, np.nan))
        rms.append(float(np.sqrt(np.mean(r[mask] ** 2))))
    with np.errstate(invalid="ignore"):
        reached = 2.0 * (cost - cost[best]) / s2 < 1.0 if s2 > 0 else cost <= cost[best]
    p_start = np.stack([np.asarray(_transform_at(tr, jnp.asarray(t))[0]) for t in thetas])
    p_final = np.stack([np.asarray(_transform_at(tr, jnp.asarray(t))[0]) for t in out.theta])
    starts = Starts(p_start, p_final, cost, np.asarray(out.success), np.asarray(out.steps), reached)
    units = parameter_units(problem.device)
    return FitResult(
        device=device,
        initial_device=problem.device,
        names=tr.names,
        units=tuple(units[n] for n in tr.names),
        values=values,
        std_errors=se,
        covariance=cov,
        correlation=corr,
        status=status,
        experiments=experiments,
        predictions=tuple(predictions),
        residuals=tuple(residuals),
        rms=tuple(rms),
        cost=float(cost[best]),
        dof=dof,
        noise=float(np.sqrt(s2)),
        starts=starts,
        solver=solver,
        seconds=seconds,
        card=card,
    )


# ------------------------------------------------------------------------------- many measurements at once
@dataclasses.dataclass
class BatchFitResult:
    """Fits of one model to many measurements of the same shape (:func:`fit_each`): row i of every array is
    measurement i. Values and standard errors are SI (``units``); ``status[i]`` as in :class:`FitResult`."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    values: np.ndarray  #: (measurements, parameters) [SI]
    std_errors: np.ndarray  #: (measurements, parameters) [SI]
    correlation: np.ndarray  #: (measurements, parameters, parameters)
    status: tuple[tuple[str, ...], ...]
    initial: np.ndarray  #: start values of each measurement's fit [SI]
    cost: np.ndarray  #: ½Σ(r/σ)² at each optimum
    noise: np.ndarray  #: residual scale s of each fit
    dof: np.ndarray
    reached_best: np.ndarray  #: per measurement, how many starts reached its best optimum (2Δcost/s² < 1)
    starts: int  #: solver starts per measurement
    predictions: tuple[np.ndarray, ...]  #: per experiment, (measurements, *observed shape)
    seconds: float

    def __len__(self) -> int:
        return len(self.values)

    @property
    def relative_errors(self) -> np.ndarray:
        """std error / |value|, (measurements, parameters)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.std_errors / np.abs(self.values)

    @property
    def ok(self) -> np.ndarray:
        """Measurements whose every parameter has status ``"ok"``."""
        return np.array([all(st == "ok" for st in row) for row in self.status])

    def population(self) -> dict[str, dict[str, float]]:
        """Per parameter, over the fits whose status is ok: ``mean``, ``std`` (of the fitted values, ddof 1),
        ``mean_std_error`` (rms of the reported standard errors) and ``intrinsic_std`` = sqrt(max(std² −
        mean se², 0)), the spread of the devices themselves once the fitting error is taken out (the fitted
        values scatter by both)."""
        v, se = self.values[self.ok], self.std_errors[self.ok]
        out = {}
        for j, name in enumerate(self.names):
            std = float(np.std(v[:, j], ddof=1)) if len(v) > 1 else float("nan")
            mse = float(np.sqrt(np.mean(se[:, j] ** 2))) if len(v) else float("nan")
            out[name] = {
                "mean": float(np.mean(v[:, j])) if len(v) else float("nan"),
                "std": std,
                "mean_std_error": mse,
                "intrinsic_std": float(np.sqrt(max(std**2 - mse**2, 0.0))),
                "fits": int(len(v)),
            }
        return out

    def summary(self) -> FitSummary:
        """Table over the measurements: mean, spread, mean standard error and intrinsic spread per parameter."""
        rows = [("parameter", "mean", "std", "rms std error", "intrinsic std", "unit")]
        for name, unit in zip(self.names, self.units):
            st = self.population()[name]
            rows.append((name, *(f"{st[k]:.4g}" for k in ("mean", "std", "mean_std_error", "intrinsic_std")), unit))
        widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(
            f"{int(self.ok.sum())}/{len(self)} fits ok; {int((self.reached_best >= 1).sum())} reached their "
            f"best optimum from {self.starts} start(s) each; {self.seconds:.1f} s"
        )
        return FitSummary("\n".join(lines))

    def report(self) -> dict[str, Any]:
        """JSON-ready: every fit's values, standard errors and status, and the population statistics."""
        return {
            "names": list(self.names),
            "units": list(self.units),
            "values": [[float(x) for x in row] for row in self.values],
            "std_errors": [[_finite_or_none(x) for x in row] for row in self.std_errors],
            "status": [list(row) for row in self.status],
            "residual_scale": [float(x) for x in self.noise],
            "population": {
                n: {k: _finite_or_none(v) if k != "fits" else v for k, v in st.items()}
                for n, st in self.population().items()
            },
            "seconds": self.seconds,
        }

    def save_report(self, path: str | Path) -> Path:
        """Write :meth:`report` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.report(), indent=2, allow_nan=False))
        return path


def _chunked(fn: Callable[..., PyTree], size: int, *arrays: np.ndarray) -> PyTree:
    """``fn`` over the rows of ``arrays`` in chunks of ``size`` rows (the last one padded with copies of its
    first row, so that every chunk has one shape: one compilation), outputs concatenated as numpy."""
    total = len(arrays[0])
    size = min(size, total)
    outs = []
    for k in range(0, total, size):
        rows = [a[k : k + size] for a in arrays]
        pad = size - len(rows[0])
        rows = [np.concatenate([r, np.repeat(r[:1], pad, axis=0)]) if pad else r for r in rows]
        outs.append(jax.tree_util.tree_map(lambda x: np.asarray(x)[: size - pad], fn(*rows)))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)


def fit_each(
    device: AbstractDevice,
    experiments: Experiment | Sequence[Experiment],
    observed: ArrayLike | Sequence[ArrayLike],
    *,
    free: Sequence[str | Free],
    key: PRNGKeyArray,
    initial: ArrayLike | None = None,
    starts: int = 1,
    candidates: int = 0,
    spread: float = 2.0,
    solver: optx.AbstractLeastSquaresSolver | None = None,
    max_steps: int = 64,
    batch: int | None = None,
    progress: bool = True,
) -> BatchFitResult:
    """Fit the same model to many measurements of the same shape — the cells of a wafer, the devices of an
    array, noise realisations of one measurement — as one vmapped solve (one compilation for all of them).

    ``experiments`` are the template (model, inputs, residual scale); ``observed`` gives, per experiment, the
    measured values with a leading axis over the measurements (shape (m, *experiment.observed.shape)).
    ``initial``: start values [SI] of the free parameters, shape (m, n) or (n,) (default: ``device``'s). Per
    measurement, multi-start as in :func:`fit`: ``candidates`` random points around its start are screened by
    cost and the solver runs from the start and the ``starts − 1`` best; the best optimum is kept. ``batch``
    measurements per vmapped chunk (default: all at once); each fit gets standard errors as in :func:`fit`.
    """
    t_start = time.perf_counter()
    exps, tr, problem = _setup(
        device, experiments, free, starts=starts, candidates=candidates, batch=batch or 1, spread=spread
    )
    obs_list = [observed] if len(exps) == 1 and not isinstance(observed, (list, tuple)) else list(observed)
    if len(obs_list) != len(exps):
        raise ValueError(f"observed must hold one array per experiment ({len(exps)}); got {len(obs_list)}")
    obs = []
    for e, o in zip(exps, obs_list):
        o = np.asarray(o, dtype=float)
        if o.shape[1:] != e.observed.shape:
            raise ValueError(f"{e.name}: observed must have shape (measurements, *{e.observed.shape}); got {o.shape}")
        if not np.all(np.isfinite(o)):
            k = np.argwhere(~np.isfinite(o))[0]
            raise ValueError(
                f"{e.name}: observed values must be finite; measurement {k[0]}, element "
                f"{tuple(int(x) for x in k[1:])} is {o[tuple(k)]!r}"
            )
        obs.append(o)
    m = obs[0].shape[0]
    if any(o.shape[0] != m for o in obs) or m < 1:
        raise ValueError(
            f"every experiment needs the same number (>= 1) of measurements; got {[o.shape[0] for o in obs]}"
        )
    masks = [np.broadcast_to(e.residual.valid(o), o.shape) for e, o in zip(exps, obs)]
    points = sum(mk.reshape(m, -1).sum(axis=1) for mk in masks)
    n = len(tr.names)
    p_start = np.broadcast_to(
        np.asarray(initial if initial is not None else [float(getattr(device, nm)) for nm in tr.names], dtype=float),
        (m, n),
    )
    count = max(starts, candidates + 1)
    z = np.asarray(jr.uniform(key, (m, count - 1, n), minval=-1.0, maxval=1.0))
    thetas = np.stack([_spread_starts(tr, p_start[i], z[i], spread) for i in range(m)])  # (m, count, n)
    per_chunk = batch or m
    data_rows = (*obs, *masks)
    k_exp = len(exps)

    def run(fn, *rows):
        data, th = rows[:-1], jnp.asarray(rows[-1])
        return fn(tuple(jnp.asarray(r) for r in data[:k_exp]), tuple(jnp.asarray(r) for r in data[k_exp:]), th)

    if candidates and count > starts:
        with _progress(m * (count - 1), "screening start candidates", progress) as bar:
            cost = _chunked(
                lambda *r: run(lambda o, mk, th: _screen_each(problem, o, mk, th), *r),
                per_chunk,
                *data_rows,
                thetas[:, 1:],
            )
            bar.update(m * (count - 1))
        order = np.argsort(np.where(np.isfinite(cost), cost, np.inf), axis=1, kind="stable")[:, : starts - 1]
        thetas = np.concatenate([thetas[:, :1], np.take_along_axis(thetas[:, 1:], order[..., None], axis=1)], axis=1)
    else:
        thetas = thetas[:, :starts]
    solver = solver if solver is not None else optx.LevenbergMarquardt(rtol=1e-5, atol=1e-5)
    if not isinstance(solver, optx.AbstractLeastSquaresSolver):
        raise TypeError(f"solver must be an optimistix least-squares solver; got {solver!r}")
    # one solve per (measurement, start)
    flat = [np.repeat(r, starts, axis=0) for r in data_rows] + [thetas.reshape(m * starts, n)]
    with _progress(m * starts, "multi-start (Levenberg-Marquardt)", progress) as bar:
        out = _chunked(
            lambda *r: run(lambda o, mk, th: _least_squares_each(problem, o, mk, th, solver, max_steps), *r),
            per_chunk * starts,
            *flat,
        )
        bar.update(m * starts)
    cost = _cost(out.residuals).reshape(m, starts)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    best = np.argmin(cost, axis=1)
    pick = np.arange(m) * starts + best
    rows = [
        _uncertainty(tr, out.theta[i], out.jacobian[i], out.residuals[i], int(points[j])) for j, i in enumerate(pick)
    ]
    s2 = np.array([r.s2 for r in rows])
    with np.errstate(invalid="ignore"):
        reached = (2.0 * (cost - cost[np.arange(m), best][:, None]) / s2[:, None] < 1.0).sum(axis=1)
    units = parameter_units(problem.device)
    return BatchFitResult(
        names=tr.names,
        units=tuple(units[nm] for nm in tr.names),
        values=np.stack([r.values for r in rows]),
        std_errors=np.stack([r.std_errors for r in rows]),
        correlation=np.stack([r.correlation for r in rows]),
        status=tuple(r.status for r in rows),
        initial=np.array(p_start),
        cost=cost[np.arange(m), best],
        noise=np.sqrt(s2),
        dof=np.array([r.dof for r in rows]),
        reached_best=reached,
        starts=starts,
        predictions=tuple(np.asarray(pr)[pick] for pr in out.predictions),
        seconds=time.perf_counter() - t_start,
    )


__all__ = [
    "AbstractResidual",
    "Absolute",
    "BatchFitResult",
    "Experiment",
    "FitResult",
    "FitSummary",
    "Free",
    "LogAbs",
    "Relative",
    "Starts",
    "dc_sweep",
    "experiment_from",
    "fit",
    "fit_each",
    "parse_free",
    "pulse_response",
    "trace",
]
