r"""Array readout: weights on differential pairs, analog MVM, ADC quantisation and drift compensation.

Each section is a set of small pure functions (or one small module), independent of the device family, so that
other stages of the read path (the crossbar IR-drop solve) slot in beside them. The last section calibrates
readout settings by gradient against a task loss (:func:`calibrate`, :func:`calibrate_columns`,
:func:`calibrate_drift_compensation`): the physics enters through the simulated currents the loss is measured on.

Conventions: a crossbar stores G[i, j] with i the input row (word line) and j the output column (bit line); an
input vector x (last axis n_in, values in [−1, 1]) is applied as row voltages V_i = x_i·v_read, and column j
collects I_j = Σ_i G_ij V_i (Ohm + Kirchhoff, ideal wires). A signed weight uses a differential pair,
W ∝ G⁺ − G⁻. All conductances in S, currents in A, voltages in V.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PyTree

from ._checks import check_range
from .crossbar import solve_crossbar
from .device import param

# ------------------------------------------------------------------------------- weights on differential pair
#: Smallest |W|max used for the weight-to-conductance scale (aihwkit's _ZERO_CLIP).
_ZERO_CLIP = 1e-7


def weights_to_pairs(
    weights: Float[ArrayLike, "... n_in n_out"], g_max: Float[ArrayLike, ""], g_min: Float[ArrayLike, ""] = 0.0
) -> tuple[Array, Array, Array]:
    """Map signed weights onto a differential pair per weight (aihwkit's ``SinglePairConductanceConverter``).

    The largest |W| maps to g_max: scale = (g_max − g_min)/max|W| [S per weight unit]; W > 0 programs
    G⁺ = W·scale + g_min and leaves G⁻ = g_min (and the other way round for W < 0).
    Returns (G⁺ [S], G⁻ [S], scale [S per weight unit]).
    """
    w = jnp.asarray(weights)
    scale = (g_max - g_min) / jnp.maximum(jnp.max(jnp.abs(w)), _ZERO_CLIP)
    scaled = w * scale
    return jnp.maximum(scaled, 0.0) + g_min, jnp.maximum(-scaled, 0.0) + g_min, scale


def pairs_to_weights(
    g_plus: Float[ArrayLike, "..."], g_minus: Float[ArrayLike, "..."], scale: Float[ArrayLike, ""]
) -> Float[Array, "..."]:
    """Weights (G⁺ − G⁻)/scale stored by differential pairs."""
    return (jnp.asarray(g_plus) - jnp.asarray(g_minus)) / scale


# ------------------------------------------------------------------------------------------- ADC
class ADC(eqx.Module):
    """Uniform, symmetric, mid-tread ADC of ``bits`` bits over [−full_scale, full_scale] A (saturating).

    The 2^bits − 1 levels are k·Δ, Δ = full_scale/(2^(bits−1) − 1). ``mode`` sets what gradients see:

    - ``"exact"``: round (zero gradient almost everywhere);
    - ``"ste"``: exact values, straight-through gradient (identity inside the range, zero when saturated);
    - ``"lsq"``: exact values, straight-through through the rounding only (learned step size quantisation,
      Esser et al., ICLR 2020): the output is Δ·round(u), u = clip(I)/Δ, and d/dΔ = round(u) − u inside the range,
      so the gradient with respect to ``full_scale`` sees the quantisation error, not only the saturation;
    - ``"smooth"``: a C¹ soft staircase, floor(u) + ½ + tanh(s(u − floor(u) − ½))/(2 tanh(s/2)) in units of Δ,
      exact as ``sharpness`` s → ∞; its values and gradients agree, so it can be checked by finite differences
      and annealed toward exact.
    """

    full_scale: Float[Array, ""] = param(1e-4, "A")  #: largest |current| converted without saturation
    sharpness: Float[Array, ""] = param(10.0, "1")  #: s of the smooth staircase
    bits: int = eqx.field(static=True, default=8)
    mode: Literal["exact", "ste", "smooth", "lsq"] = eqx.field(static=True, default="exact")

    def __check_init__(self):
        if not isinstance(self.bits, int) or self.bits < 2:
            raise ValueError(f"ADC.bits must be an integer >= 2; got {self.bits!r}")
        if self.mode not in ("exact", "ste", "smooth", "lsq"):
            raise ValueError(f"ADC.mode must be 'exact', 'ste', 'smooth' or 'lsq'; got {self.mode!r}")
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
        if self.mode == "lsq":
            return (u + jax.lax.stop_gradient(jnp.round(u) - u)) * self.step
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

    def __call__(self, g: Float[ArrayLike, "n_in n_out"], v: Float[ArrayLike, "... n_in"]) -> Float[Array, "... n_out"]:
        """Column currents [A] for row voltages ``v`` [V]."""
        v = jnp.asarray(v)
        flat = v.reshape(-1, v.shape[-1])
        cur = solve_crossbar(
            jnp.asarray(g).T,
            flat.T,
            self.r_in_wire,
            self.r_out_wire,
            r_driver=self.r_driver,
            r_sense=self.r_sense,
            method=self.method,
        )
        return cur.T.reshape(v.shape[:-1] + (cur.shape[0],))


def analog_mvm(
    g_plus: Float[ArrayLike, "n_in n_out"],
    g_minus: Float[ArrayLike, "n_in n_out"],
    x: Float[ArrayLike, "... n_in"],
    *,
    v_read: Float[ArrayLike, ""] = 0.2,
    adc: ADC | None = None,
    wires: Wires | None = None,
) -> Float[Array, "... n_out"]:
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


def currents_to_outputs(
    current: Float[ArrayLike, "..."], scale: Float[ArrayLike, ""], v_read: Float[ArrayLike, ""] = 0.2
) -> Float[Array, "..."]:
    """Column currents [A] back in weight·input units: I/(v_read·scale)."""
    return jnp.asarray(current) / (v_read * scale)


def relative_error(y: Float[ArrayLike, "..."], y_ref: Float[ArrayLike, "..."]) -> Float[Array, ""]:
    """‖y − y_ref‖ / ‖y_ref‖ (Frobenius norms over all outputs)."""
    y, y_ref = jnp.asarray(y), jnp.asarray(y_ref)
    return jnp.sqrt(jnp.sum(jnp.square(y - y_ref)) / jnp.sum(jnp.square(y_ref)))


# ------------------------------------------------------------------------------------- drift compensation
def probe_outputs(
    g_plus: Float[ArrayLike, "n_in n_out"],
    g_minus: Float[ArrayLike, "n_in n_out"],
    *,
    probe: Literal["one_hot", "ones"] = "one_hot",
    v_read: Float[ArrayLike, ""] = 0.2,
    adc: ADC | None = None,
) -> Float[Array, "k n_out"]:
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


def global_drift_compensation(
    reference: Float[ArrayLike, "k n_out"], current: Float[ArrayLike, "k n_out"], *, floor_rel: float = 1e-4
) -> Float[Array, ""]:
    """One gain α = mean|reference| / mean|current| for the whole tile (aihwkit's
    ``GlobalDriftCompensation``).

    ``reference`` and ``current`` are :func:`probe_outputs` right after programming and at read time; multiply
    the tile's outputs by α. The current readout is floored at ``floor_rel`` × the reference (aihwkit: 1e-4).
    """
    reference, current = jnp.asarray(reference), jnp.asarray(current)
    return jnp.mean(jnp.abs(reference)) / _mean_abs(current, None, floor_rel, reference)


def per_column_drift_compensation(
    reference: Float[ArrayLike, "k n_out"], current: Float[ArrayLike, "k n_out"], *, floor_rel: float = 1e-4
) -> Float[Array, " n_out"]:
    """One gain per output column, α_j = mean_k|reference_kj| / mean_k|current_kj| (aihwkit's
    ``PerColumnDriftCompensation``)."""
    reference, current = jnp.asarray(reference), jnp.asarray(current)
    return jnp.mean(jnp.abs(reference), axis=0) / _mean_abs(current, 0, floor_rel, reference)


def power_law_compensation(
    t: Float[ArrayLike, "..."], nu: Float[ArrayLike, ""], t0: Float[ArrayLike, ""], t_ref: Float[ArrayLike, ""] = 0.0
) -> Float[Array, "..."]:
    """Model-based global gain ((t + t0)/(t_ref + t0))^ν, undoing a drift ∝ (t + t0)^−ν without a readout.

    ``nu`` is the compensation exponent (a parameter to fit, e.g. the population's mean ν); t, t0, t_ref in s.
    """
    return jnp.exp(nu * (jnp.log(jnp.asarray(t) + t0) - jnp.log(jnp.asarray(t_ref) + t0)))


# ------------------------------------------------------------------------------------ calibration by gradient
def calibrate(
    loss: Callable[[PyTree, Array], Array], params: PyTree, *, steps: int, learning_rate: float
) -> tuple[PyTree, np.ndarray]:
    """Minimise ``loss(params, progress)`` by Adam for ``steps`` steps; ``progress`` = step/(steps − 1) runs
    from 0 to 1 so that the loss can anneal a sharpness toward exact. One compiled step; returns the final
    ``params`` and the loss per step.

    The settings in ``params`` should be O(1) (log of a positive setting, a gain relative to its start …):
    Adam's step is ``learning_rate`` in those units.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    check_range("learning_rate", learning_rate, lower=0.0, lower_open=True)
    optimizer = optax.adam(learning_rate)

    @eqx.filter_jit
    def step(p, state, progress):
        value, grad = jax.value_and_grad(loss)(p, progress)
        updates, state = optimizer.update(grad, state, p)
        return optax.apply_updates(p, updates), state, value

    state = optimizer.init(params)
    history = []
    for i in range(steps):
        params, state, value = step(params, state, jnp.asarray(i / max(steps - 1, 1)))
        history.append(float(value))
        if not np.isfinite(history[-1]):
            raise FloatingPointError(f"calibrate: the loss became {history[-1]} at step {i}")
    return params, np.asarray(history)


class ColumnCalibration(eqx.Module):
    """Readout settings per output column: the ADC range (full scale r_j [A]) and a digital gain g_j and offset
    b_j after conversion, y_j = g_j·Q_{r_j}(I_j) + b_j (Q: the ``bits``-bit :class:`ADC`). ``gain`` is in
    output units per A (e.g. 1/(v_read·scale) to get weight·input units back), ``offset`` in output units.
    """

    full_scale: Float[Array, " n_out"]  #: ADC range per column [A]
    gain: Float[Array, " n_out"]  #: output units per A
    offset: Float[Array, " n_out"]  #: output units
    bits: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        shapes = {jnp.shape(self.full_scale), jnp.shape(self.gain), jnp.shape(self.offset)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(
                f"ColumnCalibration: full_scale, gain and offset must be 1-D arrays of one length "
                f"(the columns); got shapes {sorted(shapes)}"
            )
        check_range("ColumnCalibration.full_scale", self.full_scale, lower=0.0, lower_open=True, unit="A")
        if not isinstance(self.bits, int) or self.bits < 2:
            raise ValueError(f"ColumnCalibration.bits must be an integer >= 2; got {self.bits!r}")

    @classmethod
    def from_currents(
        cls, current: Float[ArrayLike, "batch n_out"], gain: Float[ArrayLike, ""], *, bits: int = 8
    ) -> ColumnCalibration:
        """The usual hand setting: one ADC range for every column, the largest |current| seen (no clipping),
        the nominal ``gain`` [output units per A] and no offset."""
        current = jnp.asarray(current)
        n = current.shape[-1]
        return cls(
            full_scale=jnp.full(n, jnp.max(jnp.abs(current))),
            gain=jnp.full(n, jnp.asarray(gain, float)),
            offset=jnp.zeros(n),
            bits=bits,
        )

    def adc(self, mode: Literal["exact", "ste", "smooth", "lsq"] = "exact", sharpness: ArrayLike = 10.0) -> ADC:
        return ADC(full_scale=self.full_scale, sharpness=jnp.asarray(sharpness, float), bits=self.bits, mode=mode)

    def __call__(
        self,
        current: Float[ArrayLike, "... n_out"],
        *,
        mode: Literal["exact", "ste", "smooth", "lsq"] = "exact",
        sharpness: ArrayLike = 10.0,
    ) -> Float[Array, "... n_out"]:
        """Calibrated outputs of column currents ``current`` [A]."""
        return self.gain * self.adc(mode, sharpness)(current) + self.offset


def calibrate_columns(
    calibration: ColumnCalibration,
    current: Float[ArrayLike, "batch n_out"],
    target: Float[ArrayLike, "batch n_out"],
    *,
    steps: int,
    learning_rate: float = 0.03,
) -> tuple[ColumnCalibration, np.ndarray]:
    """Fit every column's ADC range, gain and offset to make the outputs of ``current`` [A] match ``target``
    (the ideal outputs of the same inputs), starting from ``calibration``.

    Loss: the mean squared output error relative to the targets' mean square, its forward pass the exact ADC
    and its gradient the learned-step-size one (``ADC(mode="lsq")``): a smooth staircase would hide the
    quantisation error from the range (its pathwise gradient averages to zero over a uniform residual), and a
    plain straight-through ADC sees only saturation, so it could only widen the range. Settings are fitted as
    ln(range), ln(gain/gain₀) and offset/rms(target), all O(1). Judge the result on fresh currents (new inputs,
    new device and read noise), e.g. with :func:`relative_error`.
    """
    current, target = jnp.asarray(current), jnp.asarray(target)
    if current.shape != target.shape or current.ndim != 2 or current.shape[1] != calibration.full_scale.shape[0]:
        raise ValueError(
            f"current and target must both have shape (batch, {calibration.full_scale.shape[0]}); "
            f"got {current.shape} and {target.shape}"
        )
    rms = jnp.sqrt(jnp.mean(target**2))

    def build(p):
        return ColumnCalibration(
            full_scale=jnp.exp(p["log_range"]),
            gain=calibration.gain * jnp.exp(p["log_gain"]),
            offset=p["offset"] * rms,
            bits=calibration.bits,
        )

    def loss(p, progress):
        del progress
        return jnp.mean((build(p)(current, mode="lsq") - target) ** 2) / rms**2

    start = {
        "log_range": jnp.log(calibration.full_scale),
        "log_gain": jnp.zeros_like(calibration.gain),
        "offset": calibration.offset / rms,
    }
    params, history = calibrate(loss, start, steps=steps, learning_rate=learning_rate)
    return build(params), history


def calibrate_drift_compensation(
    outputs: Float[ArrayLike, "times batch n_out"],
    target: Float[ArrayLike, "batch n_out"],
    times: Float[ArrayLike, " times"],
    t0: Float[ArrayLike, ""],
    *,
    nu: Float[ArrayLike, ""],
    steps: int,
    learning_rate: float = 0.05,
) -> tuple[Array, Array, np.ndarray]:
    """Fit the model-based drift compensation α(t) = γ·((t + t0)/t0)^ν_c (:func:`power_law_compensation` with a
    gain γ) to the outputs of a drifting array read at ``times`` [s] (``outputs[k]`` read at ``times[k]``), against
    the ideal ``target`` outputs, starting from ``nu`` and γ = 1.

    Loss: the squared relative error of α(t)·y(t), averaged over the times. Returns (ν_c, γ, loss per step).
    The minimiser weighs each device by its share of the outputs, so ν_c is not the population's mean ν: large
    conductances drift less (μ_ν falls with G in PCM) and dominate the column currents.
    """
    outputs, target, times = jnp.asarray(outputs), jnp.asarray(target), jnp.asarray(times)
    if outputs.ndim != 3 or outputs.shape[1:] != target.shape or outputs.shape[0] != times.shape[0]:
        raise ValueError(
            f"outputs must have shape (times, *target.shape) = ({times.shape[0]}, *{target.shape}); got {outputs.shape}"
        )
    check_range("t0", t0, lower=0.0, lower_open=True, unit="s")
    norm = jnp.sum(target**2)

    def loss(p, progress):
        del progress
        alpha = jnp.exp(p["log_gain"]) * power_law_compensation(times, p["nu"], t0)
        return jnp.mean(jnp.sum((alpha[:, None, None] * outputs - target) ** 2, axis=(1, 2)) / norm)

    params, history = calibrate(
        loss, {"nu": jnp.asarray(nu, float), "log_gain": jnp.zeros(())}, steps=steps, learning_rate=learning_rate
    )
    return params["nu"], jnp.exp(params["log_gain"]), history
