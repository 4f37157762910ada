"""Shared pieces of the property-based robustness tests (hypothesis): strategies for extreme inputs, settings, and
the two acceptable outcomes of a call — a clear error naming what is wrong, or finite values and gradients.

Each example must be cheap: the functions under test are jitted once per module at fixed shapes and hypothesis
values are fed to them as arrays (a Python float is static to ``eqx.filter_jit`` and would recompile).

Gradients are checked as one Jacobian–vector product along a random dense direction (:func:`value_and_jvp`): it
is finite exactly when every partial derivative is (a NaN or infinite partial times a nonzero normal component
propagates), and compiles in about half the time of a reverse-mode gradient over the same inputs — compilation
is what these tests spend their time on.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, settings, strategies as st

#: Voltages to ±50 V (no subnormals: XLA on CPU flushes them to zero, so the value would not be the one drawn).
voltages = st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False)
#: Pulse widths and times from 1 ps to 1e6 s.
widths = st.floats(1e-12, 1e6, allow_subnormal=False)
#: Temperatures 1–1000 K.
temperatures = st.floats(1.0, 1000.0)
#: Times since programming, 0 or 1 ps – 1e9 s (30 years).
times = st.one_of(st.just(0.0), st.floats(1e-12, 1e9))


def decades(nominal: float, span: float = 2.0):
    """``nominal``·10^e, e uniform-ish in [−span, span]: a parameter across decades."""
    return st.floats(-span, span).map(lambda e: nominal * 10.0**e)


def examples(n: int, **kwargs):
    """Hypothesis settings for CI: ``n`` examples, deterministic, no deadline (the first call may compile)."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
        **kwargs,
    )


def arrays(f):
    """``f`` with every positional argument after the first turned into a float array (no recompilation)."""
    return lambda first, *xs: f(first, *(jnp.asarray(x, dtype=float) for x in xs))


def value_and_jvp(f):
    """Jitted ``(diff, tangent, *args) -> (f(diff, *args), d f(diff, *args)[tangent])``: the value and the
    derivative of ``f`` along ``tangent`` (a pytree like ``diff``, see :func:`direction`)."""

    @eqx.filter_jit
    def run(diff, tangent, *args):
        return eqx.filter_jvp(lambda d: f(d, *args), (diff,), (tangent,))

    return run


def direction(diff, seed: int):
    """A random dense tangent for every floating array leaf of ``diff`` (None elsewhere), standard normal."""
    rng = np.random.default_rng(seed)

    def leaf(x):
        if eqx.is_inexact_array(x):
            return jnp.asarray(rng.standard_normal(np.shape(x)), dtype=x.dtype)
        return None

    return jax.tree_util.tree_map(leaf, diff)


def finite(tree) -> bool:
    """Every array leaf of ``tree`` is finite (NaN and ±inf fail)."""
    return all(
        bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    )


#: The errors a bad input may raise: ValueError when called eagerly, the runtime error of ``eqx.error_if`` under jit.
CLEAR_ERRORS = (ValueError, eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def assert_names(err: BaseException, *names: str) -> None:
    """The error message names one of ``names`` (the parameter or input at fault)."""
    text = str(err)
    assert any(n in text for n in names), f"unclear error (expected one of {names}): {text[:500]}"
