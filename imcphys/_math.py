"""Overflow-safe elementary functions.

exp and sinh of large arguments overflow to inf, and ``jnp.where`` does not protect gradients from the branch not
taken. These helpers clip the argument *before* the function, so value and gradient stay finite at any bias.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike


def _max_arg(x: Array) -> float:
    # Largest argument whose exp stays below max/1e6, leaving room for prefactors.
    return float(np.log(np.finfo(x.dtype).max)) - 14.0


def safe_exp(x: ArrayLike) -> Array:
    """exp(x) with the argument clipped so that neither value nor gradient overflows."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    return jnp.exp(jnp.minimum(x, _max_arg(x)))


def safe_sinh(x: ArrayLike) -> Array:
    """sinh(x) with the argument clipped to ±(log(max float) − 14)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    m = _max_arg(x)
    return jnp.sinh(jnp.clip(x, -m, m))


def safe_div(num: ArrayLike, den: ArrayLike) -> Array:
    """num/den, and 0 where den == 0 (gradient-safe double where)."""
    den = jnp.asarray(den)
    nz = den != 0
    return jnp.where(nz, jnp.asarray(num) / jnp.where(nz, den, 1.0), 0.0)


def softplus(x: ArrayLike, sharpness: ArrayLike = 1.0) -> Array:
    """Smooth max(x, 0): log(1 + exp(s x))/s, exact as s → ∞; overflow-free."""
    s = jnp.asarray(sharpness)
    return jnp.logaddexp(0.0, s * jnp.asarray(x)) / s
