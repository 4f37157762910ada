"""Clear errors for bad input.

Checks run on concrete values (when a device is built, a card or data file is loaded, or a function is called
eagerly) and raise ``ValueError`` naming the parameter, the allowed range, its unit and the value received. Under
``jit``/``vmap`` values are traced; there ``runtime_check`` raises through ``eqx.error_if`` instead.

Hot kernels (Monte Carlo chunks, fits, program-and-verify) are compiled through :func:`checked_jit` instead: there
``runtime_check`` records its check with ``jax.experimental.checkify``, the kernel returns the failed check as data
and the host raises ``ValueError``. Why: ``eqx.error_if`` is a host callback, and JAX's persistent compilation
cache refuses every executable that holds one, so a kernel with a single ``eqx.error_if`` in it is compiled again
by every new process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify


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


#: True while a :func:`checked_jit` kernel is traced or called. A jit-cache key (``jax.make_user_context``): a
#: function jitted inside both kinds of kernel (``eqx.filter_jit`` of a pulse solve, say) is traced once per kind,
#: never reusing a trace with callbacks in a checkified kernel or the reverse.
_FUNCTIONAL = jax.make_user_context(default_value=False)
_SUFFIX = " (`check` failed)"


def raise_failed(error: checkify.Error) -> None:
    """Raise ``ValueError`` with the message of the first failed check in ``error`` (from a :func:`checked_jit`
    kernel), if any."""
    message = error.get()
    if message is not None:
        raise ValueError(message.split(_SUFFIX)[0])


def checked_jit(fn: Callable[..., Any], *, arrays_only: bool = False) -> Callable[..., Any]:
    """``eqx.filter_jit(fn)`` whose ``runtime_check``s are returned as data and raised on the host (``ValueError``).

    The compiled executable holds no host callback, so JAX's persistent compilation cache can store it. Calls
    return ``fn``'s result and raise after it if a check failed; ``.unchecked(*args)`` returns ``(error, result)``
    without raising (for a caller that raises later, after its own checks: :func:`raise_failed`), and
    ``.lower(*args)`` lowers that pair. ``arrays_only=True`` compiles with ``jax.jit`` (every argument an array):
    its ``.lower`` takes ``jax.ShapeDtypeStruct`` and gives JAX's own lowered stage (``memory_analysis`` …).

    Limitation (``checkify``'s): a check inside a while loop under ``vmap`` cannot be carried out; tracing such a
    function raises ``ValueError`` (keep ``eqx.filter_jit`` there).
    """
    # under fn's own name, which JAX's compilation logs and cache keys show
    checked = functools.wraps(fn)(checkify.checkify(fn, errors=checkify.user_checks))
    jitted = jax.jit(checked) if arrays_only else eqx.filter_jit(checked)

    @functools.wraps(fn)
    def unchecked(*args: Any, **kwargs: Any) -> tuple[checkify.Error, Any]:
        with _FUNCTIONAL(True):
            return jitted(*args, **kwargs)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        error, out = unchecked(*args, **kwargs)
        raise_failed(error)
        return out

    def lower(*args: Any, **kwargs: Any) -> Any:
        with _FUNCTIONAL(True):
            return jitted.lower(*args, **kwargs)

    call.unchecked = unchecked  # type: ignore[attr-defined]
    call.lower = lower  # type: ignore[attr-defined]
    return call


def runtime_check(x: Any, bad: Any, message: str) -> Any:
    """Return ``x``, raising ``message`` where ``bad`` is true — eagerly or under jit/vmap (``eqx.error_if``).

    Under jit the check is made on a scalar token added to a floating ``x`` rather than on ``x`` itself:
    ``eqx.error_if`` runs on one device, and attached to a large sharded array it gathers the whole array there.
    """
    if is_concrete(bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(message)
        return x
    if _FUNCTIONAL.value:
        # checkify formats its message with str.format: braces in ours are literal
        checkify.check(~jnp.any(bad), message.replace("{", "{{").replace("}", "}}"))
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
