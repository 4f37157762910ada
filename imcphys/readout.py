r"""Array readout: weights on differential pairs, analog MVM, ADC quantisation and drift compensation.

Each section is a set of small pure functions (or one small module), independent of the device family, so that
other stages of the read path (gradient calibration, the crossbar IR-drop solve) slot in beside them.

Conventions: a crossbar stores G[i, j] with i the input row (word line) and j the output column (bit line); an
input vector x (last axis n_in, values in [−1, 1]) is applied as row voltages V_i = x_i·v_read, and column j
collects I_j = Σ_i G_ij V_i (Ohm + Kirchhoff, ideal wires). A signed weight uses a differential pair,
W ∝ G⁺ − G⁻. All conductances in S, currents in A, voltages in V.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._checks import check_range
from .crossbar import solve_crossbar
from .device import param

# ------------------------------------------------------------------------------- weights on differential pair
#: Smallest |W|max used for the weight-to-conductance scale (aihwkit's _ZERO_CLIP).
_ZERO_CLIP = 1e-7


def weights_to_pairs(weights: Float[ArrayLike, "... n_in n_out"], g_max: Float[ArrayLike, ""],
                     g_min: Float[ArrayLike, ""] = 0.0) -> tuple[Array, Array, Array]:
    """Map signed weights onto a differential pair per weight (aihwkit's ``SinglePairConductanceConverter``).

    The largest |W| maps to g_max: scale = (g_max − g_min)/max|W| [S per weight unit]; W > 0 programs
    G⁺ = W·scale + g_min and leaves G⁻ = g_min (and the other way round for W < 0).
    Returns (G⁺ [S], G⁻ [S], scale [S per weight unit]).
    """
    w = jnp.asarray(weights)
    scale = (g_max - g_min) / jnp.maximum(jnp.max(jnp.abs(w)), _ZERO_CLIP)
    scaled = w * scale
    return jnp.maximum(scaled, 0.0) + g_min, jnp.maximum(-scaled, 0.0) + g_min, scale


def pairs_to_weights(g_plus: Float[ArrayLike, "..."], g_minus: Float[ArrayLike, "..."],
                     scale: Float[ArrayLike, ""]) -> Float[Array, "..."]:
    """Weights (G⁺ − G⁻)/scale stored by differential pairs."""
    return (jnp.asarray(g_plus) - jnp.asarray(g_minus)) / scale


# ------------------------------------------------------------------------------------------- ADC
class ADC(eqx.Module):
    """Uniform, symmetric, mid-tread ADC of ``bits`` bits over [−full_scale, full_scale] A (saturating).

    The 2^bits − 1 levels are k·Δ, Δ = full_scale/(2^(bits−1) − 1). ``mode`` sets what gradients see:

    - ``"exact"``: round (zero gradient almost everywhere);
    - ``"ste"``: exact values, straight-through gradient (identity inside the range, zero when saturated);
    - ``"smooth"``: a C¹ soft staircase, floor(u) + ½ + tanh(s(u − floor(u) − ½))/(2 tanh(s/2)) in units of Δ,
      exact as ``sharpness`` s → ∞; its values and gradients agree, so it can be checked by finite differences
      and annealed toward exact.
    """

    full_scale: Float[Array, ""] = param(1e-4, "A")  #: largest |current| converted without saturation
    sharpness: Float[Array, ""] = param(10.0, "1")  #: s of the smooth staircase
    bits: int = eqx.field(static=True, default=8)
    mode: Literal["exact", "ste", "smooth"] = eqx.field(static=True, default="exact")

    def __check_init__(self):
        if not isinstance(self.bits, int) or self.bits < 2:
            raise ValueError(f"ADC.bits must be an integer >= 2; got {self.bits!r}")
        if self.mode not in ("exact", "ste", "smooth"):
            raise ValueError(f"ADC.mode must be 'exact', 'ste' or 'smooth'; got {self.mode!r}")
        check_range("ADC.full_scale", self.full_scale, lower=0.0, lower_open=True, unit="A")
        check_range("ADC.sharpness", self.sharpness, lower=0.0, lower_open=True, unit="1")

    @property
    def step(self) -> Float[Array, ""]:
        """LSB Δ [A]."""
        return self.full_scale / (2 ** (self.bits - 1) - 1)

    def __call__(self, current: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Quantised ``current`` [A]."""
        clipped = jnp.clip(jnp.asarray(current), -self.full_scale, self.full_scale)
        u = clipped / self.step
        if self.mode == "smooth":
            s = self.sharpness
            base = jnp.floor(jax.lax.stop_gradient(u))
            soft = base + 0.5 + jnp.tanh(s * (u - base - 0.5)) / (2.0 * jnp.tanh(s / 2.0))
            return soft * self.step
        exact = jnp.round(u) * self.step
        if self.mode == "ste":
            return clipped + jax.lax.stop_gradient(exact - clipped)
        return exact


# ---------------------------------------------------------------------------------------- analog MVM
class Wires(eqx.Module):
    """Wire parasitics of a tile: IR drop along rows and columns, solved exactly by
    :func:`imcphys.solve_crossbar` (differentiable).

    In this module's convention (G[i, j], i the input row, j the output column) row i is driven at its end next
    to column 0 and column j is sensed at its end past the last row, one wire segment before the first cell, one
    between cells and one after the last (the crossbar module's geometry with its conductance matrix = G.T).
    """

    r_in_wire: Float[Array, ""] = param(1.0, "ohm")  #: one segment of an input (row) wire
    r_out_wire: Float[Array, ""] = param(1.0, "ohm")  #: one segment of an output (column) wire
    r_driver: Float[Array, ""] = param(0.0, "ohm")  #: row driver output resistance
    r_sense: Float[Array, ""] = param(0.0, "ohm")  #: column sense-amplifier input resistance
    method: str = eqx.field(static=True, default="auto")  #: "auto", "cg" or "direct"

    def __check_init__(self):
        for name in ("r_in_wire", "r_out_wire", "r_driver", "r_sense"):
            check_range(f"Wires.{name}", getattr(self, name), lower=0.0, unit="ohm")

    def __call__(self, g: Float[ArrayLike, "n_in n_out"], v: Float[ArrayLike, "... n_in"]
                 ) -> Float[Array, "... n_out"]:
        """Column currents [A] for row voltages ``v`` [V]."""
        v = jnp.asarray(v)
        flat = v.reshape(-1, v.shape[-1])
        cur = solve_crossbar(jnp.asarray(g).T, flat.T, self.r_in_wire, self.r_out_wire, r_driver=self.r_driver,
                             r_sense=self.r_sense, method=self.method)
        return cur.T.reshape(v.shape[:-1] + (cur.shape[0],))


def analog_mvm(g_plus: Float[ArrayLike, "n_in n_out"], g_minus: Float[ArrayLike, "n_in n_out"],
               x: Float[ArrayLike, "... n_in"], *, v_read: Float[ArrayLike, ""] = 0.2,
               adc: ADC | None = None, wires: Wires | None = None) -> Float[Array, "... n_out"]:
    """Column currents I_j = Σ_i (G⁺_ij − G⁻_ij)·x_i·v_read [A] of a differential crossbar, then ``adc``.

    With ``wires``, each of the two tiles (G⁺ and G⁻) is solved with its wire resistance (IR drop) and the column
    currents are subtracted.
    """
    v = jnp.asarray(x) * v_read
    if wires is None:
        current = v @ (jnp.asarray(g_plus) - jnp.asarray(g_minus))
    else:
        current = wires(g_plus, v) - wires(g_minus, v)
    return current if adc is None else adc(current)


def currents_to_outputs(current: Float[ArrayLike, "..."], scale: Float[ArrayLike, ""],
                        v_read: Float[ArrayLike, ""] = 0.2) -> Float[Array, "..."]:
    """Column currents [A] back in weight·input units: I/(v_read·scale)."""
    return jnp.asarray(current) / (v_read * scale)


def relative_error(y: Float[ArrayLike, "..."], y_ref: Float[ArrayLike, "..."]) -> Float[Array, ""]:
    """‖y − y_ref‖ / ‖y_ref‖ (Frobenius norms over all outputs)."""
    y, y_ref = jnp.asarray(y), jnp.asarray(y_ref)
    return jnp.sqrt(jnp.sum(jnp.square(y - y_ref)) / jnp.sum(jnp.square(y_ref)))


# ------------------------------------------------------------------------------------- drift compensation
def probe_outputs(g_plus: Float[ArrayLike, "n_in n_out"], g_minus: Float[ArrayLike, "n_in n_out"], *,
                  probe: Literal["one_hot", "ones"] = "one_hot", v_read: Float[ArrayLike, ""] = 0.2,
                  adc: ADC | None = None) -> Float[Array, "k n_out"]:
    """Column currents [A] for the compensation probe inputs: every one-hot input (aihwkit's readout tensor, k
    = n_in) or one all-ones input (k = 1)."""
    g_plus, g_minus = jnp.asarray(g_plus), jnp.asarray(g_minus)
    if probe == "one_hot":  # identity input: the currents are the cells themselves, no matmul needed
        current = v_read * (g_plus - g_minus)
        return current if adc is None else adc(current)
    if probe == "ones":
        ones = jnp.ones((1, g_plus.shape[0]), g_plus.dtype)
        return analog_mvm(g_plus, g_minus, ones, v_read=v_read, adc=adc)
    raise ValueError(f"probe must be 'one_hot' or 'ones'; got {probe!r}")


def _mean_abs(readout: Array, axis, floor_rel: float, reference: Array) -> Array:
    return jnp.maximum(jnp.mean(jnp.abs(readout), axis=axis), floor_rel * jnp.mean(jnp.abs(reference)))


def global_drift_compensation(reference: Float[ArrayLike, "k n_out"], current: Float[ArrayLike, "k n_out"],
                              *, floor_rel: float = 1e-4) -> Float[Array, ""]:
    """One gain α = mean|reference| / mean|current| for the whole tile (aihwkit's
    ``GlobalDriftCompensation``).

    ``reference`` and ``current`` are :func:`probe_outputs` right after programming and at read time; multiply
    the tile's outputs by α. The current readout is floored at ``floor_rel`` × the reference (aihwkit: 1e-4).
    """
    reference, current = jnp.asarray(reference), jnp.asarray(current)
    return jnp.mean(jnp.abs(reference)) / _mean_abs(current, None, floor_rel, reference)


def per_column_drift_compensation(reference: Float[ArrayLike, "k n_out"],
                                  current: Float[ArrayLike, "k n_out"], *, floor_rel: float = 1e-4
                                  ) -> Float[Array, " n_out"]:
    """One gain per output column, α_j = mean_k|reference_kj| / mean_k|current_kj| (aihwkit's
    ``PerColumnDriftCompensation``)."""
    reference, current = jnp.asarray(reference), jnp.asarray(current)
    return jnp.mean(jnp.abs(reference), axis=0) / _mean_abs(current, 0, floor_rel, reference)


def power_law_compensation(t: Float[ArrayLike, "..."], nu: Float[ArrayLike, ""], t0: Float[ArrayLike, ""],
                           t_ref: Float[ArrayLike, ""] = 0.0) -> Float[Array, "..."]:
    """Model-based global gain ((t + t0)/(t_ref + t0))^ν, undoing a drift ∝ (t + t0)^−ν without a readout.

    ``nu`` is the compensation exponent (a parameter to fit, e.g. the population's mean ν); t, t0, t_ref in s.
    """
    return jnp.exp(nu * (jnp.log(jnp.asarray(t) + t0) - jnp.log(jnp.asarray(t_ref) + t0)))
