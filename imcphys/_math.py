"""Overflow-safe elementary functions.

exp and sinh of large arguments overflow to inf, and ``jnp.where`` does not protect gradients from the branch not
taken. These helpers clip the argument *before* the function, so value and gradient stay finite at any bias.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike


def _max_arg(x: Array) -> float:
    # exp(200) = 7e86 leaves ~1e220 of float64 headroom for the prefactors and derivatives that multiply it (a
    # current times a voltage times a thermal resistance, and their gradients); float32 gets exp(40) = 2e17.
    return 200.0 if np.finfo(x.dtype).bits >= 64 else 40.0


def safe_exp(x: ArrayLike) -> Array:
    """exp(x) with the argument clipped so that neither value nor gradient overflows."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    return jnp.exp(jnp.minimum(x, _max_arg(x)))


def safe_sinh(x: ArrayLike) -> Array:
    """sinh(x) with the argument clipped to ±200 (float64; ±40 in float32)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    m = _max_arg(x)
    # (e^|x| − e^−|x|)/2 = (u + u/(u + 1))/2 with u = expm1(|x|): accurate to a few ulp for every x (no
    # cancellation near 0), and one expm1 instead of XLA's sinh (on CPU about 3x the cost: it evaluates several
    # exponentials per element). Its derivative is cosh(x) everywhere, including x = 0.
    sign = jnp.where(x < 0, -1.0, 1.0).astype(x.dtype)
    u = jnp.expm1(jnp.minimum(sign * x, m))
    return sign * 0.5 * (u + u / (u + 1.0))


def safe_div(num: ArrayLike, den: ArrayLike) -> Array:
    """num/den, and 0 where den == 0 (gradient-safe double where)."""
    den = jnp.asarray(den)
    nz = den != 0
    return jnp.where(nz, jnp.asarray(num) / jnp.where(nz, den, 1.0), 0.0)


def softplus(x: ArrayLike, sharpness: ArrayLike = 1.0) -> Array:
    """Smooth max(x, 0): log(1 + exp(s x))/s, exact as s → ∞; overflow-free."""
    s = jnp.asarray(sharpness)
    return jnp.logaddexp(0.0, s * jnp.asarray(x)) / s


def relu(x: ArrayLike) -> Array:
    """max(x, 0)."""
    return jnp.maximum(x, 0.0)
