r"""Fixed-step pulses integrated in the state instead of in time (private: use ``device.pulse``).

A filamentary cell under a constant drive moves along one coordinate x (the SkyWater filament thickness, the
Stanford gap) at a rate ẋ(x) that spans twenty decades: an incubation of microseconds, then an explosive runaway
(the SkyWater SET crosses its last nanometre in picoseconds), then — behind an access transistor — a stall where
the compliance current pulls the cell voltage down and ẋ collapses. A time stepper with a fixed number of steps
cannot follow that: it jumps over the stall (measured: 512 Heun steps per µs still set a 1T1R cell fully where the
adaptive solve stops it at a third of its conductance). The time it takes to move is smooth in x, though:

.. math::

    t(x) = \int_{x_0}^{x} \frac{dx'}{|\dot x(x')|},

evaluated on ``nodes`` equal intervals between x_0 and the bound the motion heads for, with ln(1/|ẋ|) linear in x on
each interval (exact for a rate exponential in x, as these rates are locally), and inverted at the pulse width: the
state is where t(x) reaches the width, or the bound if it is reached earlier. A point where ẋ changes sign (or
vanishes, below a field threshold) is never crossed. Faster states (the cell temperature) sit at their steady state
for the drive at each x: exact once the pulse is much longer than their time constant (τ_th = 0.23 ns for the
SkyWater cell). Energy: ∫ P dt = ∫ P/|ẋ| dx along the path (trapezoid in P on each interval), plus P at the bound
for the time spent there. Ramps (``rise``, ``fall``) are taken as ``pieces`` constant levels each. Cycle-to-cycle
noise (a Wiener process of intensity σ(x)) adds one Gaussian displacement of variance ∫ σ² dt along the path, then
clipped to the range (small-noise approximation).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .stimulus import Pulse

#: Longest time an interval may take [s] (beyond: never crossed within any pulse); keeps cumulative sums finite.
_NEVER = 1e30


def _log_phi1(z: Array) -> Array:
    """ln((e^z − 1)/z), finite for every z (0 at z = 0)."""
    small = jnp.abs(z) < 1e-6
    zs = jnp.where(small, 1.0, z)
    big = jnp.where(zs > 0, zs + jnp.log(-jnp.expm1(-zs) / zs), jnp.log(jnp.expm1(zs) / zs))
    return jnp.where(small, z / 2.0, big)


def _log1p_over(z: Array) -> Array:
    """ln(1 + z)/z, 1 at z = 0 (z > −1)."""
    small = jnp.abs(z) < 1e-6
    zs = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 - z / 2.0, jnp.log1p(zs) / zs)


#: rate(x) -> (ẋ [x units/s], power [W], σ² [x units²/s]) at a scalar coordinate x.
RateFn = Callable[[Array], tuple[Array, Array, Array]]


def traverse(
    rate: RateFn,
    x0: Float[ArrayLike, ""],
    lower: Float[ArrayLike, ""],
    upper: Float[ArrayLike, ""],
    duration: Float[ArrayLike, ""],
    nodes: int,
) -> tuple[Array, Array, Array]:
    """Where x ends after ``duration`` [s] at a constant drive: (x, energy [J], noise variance [x units²]).

    ``rate(x)`` returns (ẋ, power [W], σ² [x units²/s]) at a scalar x. The motion heads for ``upper`` if
    ẋ(x0) >= 0, else for ``lower``.
    """
    x0 = jnp.asarray(x0, dtype=float)
    r0, _, _ = rate(x0)
    forward = r0 >= 0
    end = jnp.where(forward, upper, lower)
    grid = x0 + (end - x0) * (jnp.arange(nodes + 1) / nodes)
    r, p, s2 = jax.vmap(rate)(grid)
    step = jnp.abs(end - x0) / nodes
    tiny = jnp.finfo(r.dtype).tiny  # a rate below it (or of the other sign) is a point never crossed
    ln_q = -jnp.log(jnp.maximum(jnp.where(forward, r, -r), tiny))
    ln_dt = jnp.log(jnp.maximum(step, tiny)) + ln_q[:-1] + _log_phi1(ln_q[1:] - ln_q[:-1])
    dt = jnp.where(step > 0, jnp.exp(jnp.minimum(ln_dt, jnp.log(_NEVER))), 0.0)
    t = jnp.concatenate([jnp.zeros(1), jnp.cumsum(dt)])
    duration = jnp.asarray(duration, dtype=float)
    reached = t[-1] <= duration
    k = jnp.clip(jnp.searchsorted(t, duration, side="right") - 1, 0, nodes - 1)
    left = jnp.maximum(duration - t[k], 0.0)  # time spent in interval k
    q_k = jnp.exp(jnp.minimum(ln_q[k], jnp.log(_NEVER)))
    slope = (ln_q[k + 1] - ln_q[k]) / jnp.where(step > 0, step, 1.0)  # d ln(1/|ẋ|)/dx on interval k
    eps = jnp.finfo(r.dtype).eps
    moved = (left / q_k) * _log1p_over(jnp.maximum(slope * left / q_k, -1.0 + eps))
    x_stop = grid[k] + jnp.where(forward, 1.0, -1.0) * jnp.minimum(moved, step)
    x = jnp.where(reached, end, x_stop)
    # energy and noise: whole intervals before k, the part of k, and the dwell at the bound
    whole = jnp.arange(nodes) < k
    mean_p, mean_s2 = 0.5 * (p[:-1] + p[1:]), 0.5 * (s2[:-1] + s2[1:])
    dwell = jnp.maximum(duration - t[-1], 0.0)
    energy = jnp.where(
        reached,
        jnp.sum(dt * mean_p) + dwell * p[-1],
        jnp.sum(jnp.where(whole, dt * mean_p, 0.0)) + left * p[k],
    )
    variance = jnp.where(
        reached,
        jnp.sum(dt * mean_s2) + dwell * s2[-1],
        jnp.sum(jnp.where(whole, dt * mean_s2, 0.0)) + left * s2[k],
    )
    return x, energy, variance


def drive_levels(
    amplitude: Float[ArrayLike, ""],
    width: Float[ArrayLike, ""],
    rise: Float[ArrayLike, ""],
    fall: Float[ArrayLike, ""],
    pieces: int,
    ramps: bool,
) -> tuple[Array, Array]:
    """(levels, durations) of a trapezoidal pulse as constant pieces: ``pieces`` midpoint levels per ramp (when
    ``ramps``), then the plateau."""
    amplitude = jnp.asarray(amplitude, dtype=float)
    width = jnp.asarray(width, dtype=float)
    if not ramps:
        return amplitude[None], width[None]
    mid = (jnp.arange(pieces) + 0.5) / pieces
    levels = jnp.concatenate([amplitude * mid, amplitude[None], amplitude * mid[::-1]])
    durations = jnp.concatenate(
        [jnp.full(pieces, jnp.asarray(rise) / pieces), width[None], jnp.full(pieces, jnp.asarray(fall) / pieces)]
    )
    return levels, durations


def pulse_in_state(
    rate_at: Callable[[Array], RateFn],
    x0: Float[ArrayLike, ""],
    lower: Float[ArrayLike, ""],
    upper: Float[ArrayLike, ""],
    amplitude: Float[ArrayLike, ""],
    width: Float[ArrayLike, ""],
    *,
    rise: Float[ArrayLike, ""],
    fall: Float[ArrayLike, ""],
    nodes: int,
    key: PRNGKeyArray | None,
    pieces: int = 4,
) -> tuple[Array, Array]:
    """The coordinate after a trapezoidal pulse and its energy [J]: :func:`traverse` over each constant piece
    (:func:`drive_levels`), ``rate_at(level)`` giving the rate function at a drive level. With ``key``, the
    accumulated noise displacement is added (and clipped to [lower, upper])."""
    ramps = not all(isinstance(v, (int, float)) and v == 0 for v in (rise, fall))
    stim = Pulse(amplitude, width, rise=rise, fall=fall)  # checks the amplitude and the times
    levels, durations = drive_levels(stim.amplitude, stim.width, stim.rise, stim.fall, pieces, ramps)

    def piece(carry, inp):
        x, energy, variance = carry
        level, duration = inp
        x, e, v = traverse(rate_at(level), x, lower, upper, duration, nodes)
        return (x, energy + e, variance + v), None

    zero = jnp.zeros(())
    (x, energy, variance), _ = jax.lax.scan(piece, (jnp.asarray(x0, dtype=float), zero, zero), (levels, durations))
    if key is not None:
        x = jnp.clip(x + jnp.sqrt(variance) * jr.normal(key, (), dtype=x.dtype), lower, upper)
    return x, energy
