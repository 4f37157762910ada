"""Free parameters and their transforms: a fit works in an unconstrained coordinate θ (log scale for positive
parameters, sigmoid/softplus for bounds, as in jaxley's ``optimize.transforms``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..device import AbstractDevice, parameter_ranges, parameter_units
from ..units import convert

#: A bounded parameter is "at a bound" when its transform is within this fraction of saturation.
PIN_FRACTION = 1e-3


# -------------------------------------------------------------------------------------- free parameters
@dataclasses.dataclass(frozen=True)
class Free:
    """A free parameter: its ``name``, optional ``lower``/``upper`` bounds (SI, the parameter's unit) and its
    scale: ``log=True`` fits ln p (p must stay positive), ``False`` fits p linearly, ``None`` chooses log when
    the parameter is declared non-negative (``param(..., lower=0)`` or above) and the start value (and any bound)
    is positive."""

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
    value lies inside it (a start on a closed bound starts a hair inside it: :meth:`_Transform.theta`)."""
    r = parameter_ranges(device)[name]
    if lo is None and r["lower"] is not None and p0 >= r["lower"] and not (log and r["lower"] <= 0):
        lo = float(r["lower"])
    if hi is None and r["upper"] is not None and p0 <= r["upper"]:
        hi = float(r["upper"])
    return lo, hi


_NONE, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3
#: How far inside a closed bound a start value on it begins (relative).
_HAIR = 1e-9


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
            elif kind == _LOWER:  # a value on its (declared, closed) bound maps a hair inside it
                out[i] = _softplus_inv(max(u[i] - lo[i], _HAIR * max(abs(lo[i]), abs(u[i]), 1e-300)))
            elif kind == _UPPER:
                out[i] = -_softplus_inv(max(hi[i] - u[i], _HAIR * max(abs(hi[i]), abs(u[i]), 1e-300)))
            else:
                f = min(max((u[i] - lo[i]) / (hi[i] - lo[i]), _HAIR), 1.0 - _HAIR)
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
        # log only for a parameter declared non-negative: a threshold voltage that starts positive may be negative
        declared = parameter_ranges(device)[s.name]["lower"]
        positive = declared is not None and declared >= 0
        log = s.log if s.log is not None else positive and p0 > 0 and (lo is None or lo > 0) and (hi is None or hi > 0)
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
