"""Stimuli: drive waveforms as functions of time.

Every stimulus here is piecewise linear in time — rectangular pulses with finite rise and fall, pulse trains,
triangle sweeps, ramps and holds — and is differentiable in its amplitudes and widths (the corner times are arrays,
not Python floats). Units: time in s, value in the drive unit of the device it feeds (V for a cell voltage).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._checks import check_finite, check_range, runtime_check


class AbstractStimulus(eqx.Module):
    """A drive waveform: ``stimulus(t)`` is the drive value at time t [s]."""

    @abc.abstractmethod
    def __call__(self, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Drive value at ``t`` [s]."""

    @property
    @abc.abstractmethod
    def t_end(self) -> Float[Array, ""]:
        """End of the waveform [s]; it holds its last value afterwards."""

    @property
    @abc.abstractmethod
    def breakpoints(self) -> Float[Array, " n"]:
        """Times of corners and steps [s]; adaptive solvers step onto them."""


class PiecewiseLinear(AbstractStimulus):
    """A waveform through the corners (``times[i]``, ``values[i]``), constant outside them.

    Two corners may share a time (an ideal step); the value right at that time is the later one.
    """

    times: Float[Array, " n"]  #: corner times [s], non-decreasing
    values: Float[Array, " n"]  #: corner values [drive unit]

    def __init__(self, times: ArrayLike, values: ArrayLike):
        self.times = jnp.asarray(times, dtype=float)
        self.values = jnp.asarray(values, dtype=float)
        if self.times.shape != self.values.shape or self.times.ndim != 1 or self.times.shape[0] < 1:
            raise ValueError(
                f"times and values must be 1-D of equal length; got {self.times.shape} and {self.values.shape}"
            )
        check_finite("stimulus values", self.values)
        check_finite("stimulus times", self.times)

    def __call__(self, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        t = jnp.asarray(t, dtype=self.times.dtype)
        if self.times.shape[0] == 1:
            return jnp.broadcast_to(self.values[0], t.shape)
        i = jnp.clip(jnp.searchsorted(self.times, t, side="right") - 1, 0, self.times.shape[0] - 2)
        t0, t1 = self.times[i], self.times[i + 1]
        v0, v1 = self.values[i], self.values[i + 1]
        dt = t1 - t0
        ok = dt > 0
        frac = jnp.where(ok, (jnp.clip(t, t0, t1) - t0) / jnp.where(ok, dt, 1.0), 1.0)
        inside = v0 + frac * (v1 - v0)
        return jnp.where(t < self.times[0], self.values[0], jnp.where(t >= self.times[-1], self.values[-1], inside))

    @property
    def t_end(self) -> Float[Array, ""]:
        """Time of the last corner [s]."""
        return self.times[-1]

    @property
    def breakpoints(self) -> Float[Array, " n"]:
        """Times where the waveform has a corner or a step [s] (adaptive solvers step onto them)."""
        return self.times


def _positive(name: str, x: ArrayLike, unit: str = "s", allow_zero: bool = False) -> Array:
    check_range(name, x, lower=0.0, lower_open=not allow_zero, unit=unit)
    x = jnp.asarray(x, dtype=float)
    bad = (x < 0) if allow_zero else (x <= 0)
    return runtime_check(
        x, bad | ~jnp.isfinite(x), f"{name} must be {'>= 0' if allow_zero else '> 0'} {unit} and finite"
    )


class Pulse(AbstractStimulus):
    """Trapezoidal pulse: ``base`` until ``delay``, a linear ``rise`` to ``amplitude``, a plateau of ``width``
    (as SPICE's PW), a linear ``fall`` back to ``base``. Times in s, values in the drive unit.

    The plateau is closed at both ends, so an ideal rectangular pulse (zero rise and fall) drives its full
    amplitude over [delay, delay + width] inclusive — what a fixed-step or adaptive solver of the pulse needs.
    """

    amplitude: Float[Array, ""]
    width: Float[Array, ""]
    rise: Float[Array, ""]
    fall: Float[Array, ""]
    delay: Float[Array, ""]
    base: Float[Array, ""]

    def __init__(
        self,
        amplitude: ArrayLike,
        width: ArrayLike,
        *,
        rise: ArrayLike = 0.0,
        fall: ArrayLike = 0.0,
        delay: ArrayLike = 0.0,
        base: ArrayLike = 0.0,
    ):
        check_finite("amplitude", amplitude)
        check_finite("base", base)
        self.amplitude = runtime_check(
            jnp.asarray(amplitude, dtype=float),
            ~jnp.isfinite(jnp.asarray(amplitude, dtype=float)),
            "amplitude must be finite",
        )
        self.width = _positive("width", width)
        self.rise, self.fall, self.delay = (
            _positive(n, x, allow_zero=True) for n, x in (("rise", rise), ("fall", fall), ("delay", delay))
        )
        self.base = jnp.asarray(base, dtype=float)

    def envelope(self, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Fraction of the way from ``base`` to ``amplitude`` at ``t`` [s], in [0, 1]."""
        s = jnp.asarray(t, dtype=float) - self.delay
        top = self.rise + self.width
        up = jnp.where(self.rise > 0, s / jnp.where(self.rise > 0, self.rise, 1.0), jnp.where(s >= 0, 1.0, 0.0))
        down = jnp.where(
            self.fall > 0,
            (top + self.fall - s) / jnp.where(self.fall > 0, self.fall, 1.0),
            jnp.where(s <= top, 1.0, 0.0),
        )
        return jnp.clip(jnp.minimum(up, down), 0.0, 1.0)

    def __call__(self, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        return self.base + (self.amplitude - self.base) * self.envelope(t)

    @property
    def duration(self) -> Float[Array, ""]:
        """rise + width + fall [s]."""
        return self.rise + self.width + self.fall

    @property
    def t_end(self) -> Float[Array, ""]:
        return self.delay + self.duration

    @property
    def breakpoints(self) -> Float[Array, " 4"]:
        return self.delay + jnp.stack([self.delay * 0, self.rise, self.rise + self.width, self.duration])


def pulse(amplitude: ArrayLike, width: ArrayLike, **kwargs: ArrayLike) -> Pulse:
    """Shorthand for :class:`Pulse`."""
    return Pulse(amplitude, width, **kwargs)


def pulse_train(
    amplitudes: Float[ArrayLike, " k"],
    width: Float[ArrayLike, ""],
    period: Float[ArrayLike, ""],
    *,
    rise: Float[ArrayLike, ""] = 0.0,
    fall: Float[ArrayLike, ""] = 0.0,
    base: Float[ArrayLike, ""] = 0.0,
) -> PiecewiseLinear:
    """A train of trapezoidal pulses, pulse k of amplitude ``amplitudes[k]`` starting at k·``period`` [s]."""
    amplitudes = jnp.atleast_1d(jnp.asarray(amplitudes, dtype=float))
    check_finite("amplitudes", amplitudes)
    width = _positive("width", width)
    period = _positive("period", period)
    rise, fall = (_positive(n, x, allow_zero=True) for n, x in (("rise", rise), ("fall", fall)))
    period = runtime_check(period, rise + width + fall > period, "period must be at least rise + width + fall")
    starts = jnp.arange(amplitudes.shape[0]) * period
    t = jnp.stack([starts, starts + rise, starts + rise + width, starts + rise + width + fall], axis=1)
    b = jnp.broadcast_to(jnp.asarray(base, dtype=float), amplitudes.shape)
    v = jnp.stack([b, amplitudes, amplitudes, b], axis=1)
    return PiecewiseLinear(t.ravel(), v.ravel())


def triangle_sweep(
    v_max: Float[ArrayLike, ""],
    ramp_time: Float[ArrayLike, ""],
    *,
    v_min: Float[ArrayLike, ""] | None = None,
    cycles: int = 1,
) -> PiecewiseLinear:
    """DC sweep 0 → ``v_max`` → 0 → ``v_min`` → 0, each leg taking ``ramp_time`` [s], repeated ``cycles`` times.

    ``v_min`` defaults to −``v_max``. The Stanford RRAM test is ``triangle_sweep(2.0, 4e-3)``.
    """
    check_finite("v_max", v_max)
    ramp_time = _positive("ramp_time", ramp_time)
    if cycles < 1:
        raise ValueError(f"cycles must be an integer >= 1; got {cycles}")
    vmax = jnp.asarray(v_max, dtype=float)
    vmin = -vmax if v_min is None else jnp.asarray(v_min, dtype=float)
    zero = jnp.zeros_like(vmax)
    values = jnp.concatenate([jnp.stack([zero, vmax, zero, vmin])] * cycles + [zero[None]])
    times = jnp.arange(values.shape[0]) * ramp_time
    return PiecewiseLinear(times, values)


def ramp(
    v_start: Float[ArrayLike, ""], v_stop: Float[ArrayLike, ""], duration: Float[ArrayLike, ""]
) -> PiecewiseLinear:
    """Linear ramp from ``v_start`` to ``v_stop`` over ``duration`` [s]."""
    duration = _positive("duration", duration)
    return PiecewiseLinear(
        jnp.stack([duration * 0, duration]),
        jnp.stack([jnp.asarray(v_start, dtype=float), jnp.asarray(v_stop, dtype=float)]),
    )


def hold(value: Float[ArrayLike, ""], duration: Float[ArrayLike, ""]) -> PiecewiseLinear:
    """Constant ``value`` for ``duration`` [s]."""
    return ramp(value, value, duration)


def concatenate(*stimuli: PiecewiseLinear) -> PiecewiseLinear:
    """Play the stimuli one after another (each shifted to start where the previous one ends)."""
    if not stimuli:
        raise ValueError("concatenate needs at least one stimulus")
    times, values, offset = [], [], 0.0
    for s in stimuli:
        times.append(s.times - s.times[0] + offset)
        values.append(s.values)
        offset = times[-1][-1]
    return PiecewiseLinear(jnp.concatenate(times), jnp.concatenate(values))
