"""Clear errors for bad input.

Checks run on concrete values (when a device is built, a card or data file is loaded, or a function is called
eagerly) and raise ``ValueError`` naming the parameter, the allowed range, its unit and the value received. Under
``jit``/``vmap`` values are traced; there ``runtime_check`` raises through ``eqx.error_if`` instead.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds concrete numbers (not a tracer inside jit/vmap/grad)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _fmt_range(lower: float | None, upper: float | None, lower_open: bool, upper_open: bool) -> str:
    lo = "-inf" if lower is None else f"{lower:g}"
    hi = "inf" if upper is None else f"{upper:g}"
    return f"{'(' if lower_open or lower is None else '['}{lo}, {hi}{')' if upper_open or upper is None else ']'}"


def check_range(
    name: str,
    value: Any,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
    unit: str = "",
) -> None:
    """Raise ``ValueError`` unless every element of ``value`` is finite and inside the range.

    Does nothing for traced values (see ``runtime_check`` for those).
    """
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=float)
    allowed = _fmt_range(lower, upper, lower_open, upper_open) + (f" {unit}" if unit else "")
    bad = ~np.isfinite(arr)
    if lower is not None:
        bad |= (arr <= lower) if lower_open else (arr < lower)
    if upper is not None:
        bad |= (arr >= upper) if upper_open else (arr > upper)
    if np.any(bad):
        shown = float(arr[bad].ravel()[0]) if arr.ndim else arr.item()
        where = "" if arr.ndim == 0 else f" (first bad element at index {tuple(int(i) for i in np.argwhere(bad)[0])})"
        raise ValueError(f"{name} must be finite and in {allowed}; got {shown!r}{where}")


def check_less(name_a: str, a: Any, name_b: str, b: Any, unit: str = "") -> None:
    """Raise ``ValueError`` unless a < b elementwise (concrete values only)."""
    if not (is_concrete(a) and is_concrete(b)):
        return
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.any(~(a_ < b_)):
        u = f" {unit}" if unit else ""
        raise ValueError(
            f"{name_a} must be smaller than {name_b}; got {name_a} = {np.ravel(a_)[0]:g}{u}, "
            f"{name_b} = {np.ravel(b_)[0]:g}{u}"
        )


def runtime_check(x: Any, bad: Any, message: str) -> Any:
    """Return ``x``, raising ``message`` where ``bad`` is true — eagerly or under jit/vmap (``eqx.error_if``).

    Under jit the check is made on a scalar token added to a floating ``x`` rather than on ``x`` itself:
    ``eqx.error_if`` runs on one device, and attached to a large sharded array it gathers the whole array there.
    """
    if is_concrete(bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(message)
        return x
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact):
        return x + eqx.error_if(jnp.zeros((), x.dtype), jnp.any(bad), message)
    return eqx.error_if(x, jnp.any(bad), message)


def check_finite(name: str, value: Any) -> None:
    """Raise ``ValueError`` if a concrete ``value`` holds NaN or inf."""
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
        raise ValueError(f"{name} must be finite; got {arr[idx] if arr.ndim else arr.item()!r} at index {idx}")
