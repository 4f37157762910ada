r"""A compact MOSFET for access transistors: the long-channel EKV model, one smooth expression from weak to
strong inversion.

Source: C. C. Enz, F. Krummenacher, E. A. Vittoz, "An analytical MOS transistor model valid in all regions of
operation and dedicated to low-voltage and low-current applications", Analog Integr. Circuits Signal Process. 8,
83 (1995) (the "EKV" model; the pinch-off voltage and slope factor below are its eqs. for V_P and n, as in the EKV
v2.6 manual, M. Bucher et al., EPFL 1998).

All terminal voltages are referred to the bulk (at 0 V). With U_T = kT/q,

.. math::

    V_G' &= V_G - V_{T0} + \Psi_0 + \gamma_b\sqrt{\Psi_0} \\
    V_P &= V_G' - \Psi_0 - \gamma_b\Big(\sqrt{V_G' + \gamma_b^2/4} - \gamma_b/2\Big)
        \qquad \text{(pinch-off voltage; 0 at } V_G = V_{T0}) \\
    n &= 1 + \frac{\gamma_b}{2\sqrt{\Psi_0 + V_P + 4U_T}}, \qquad
    I_{spec} = 2\,n\,K_P\,\frac{W}{L}\,U_T^2 \\
    I_D &= I_{spec}\,\big[F\big(\tfrac{V_P - V_S}{U_T}\big) - F\big(\tfrac{V_P - V_D}{U_T}\big)\big],
    \qquad F(v) = \ln^2\!\big(1 + e^{v/2}\big)

I_D flows from drain to source and is antisymmetric under their exchange, so a transistor whose "source" is the
higher terminal (a source follower in a 1T1R RESET) needs no special case. F(v) → e^v in weak inversion
(sub-threshold slope n·U_T·ln 10) and → v²/4 in strong inversion, where the forward current is the
long-channel saturation current n K_P W/(2L) (V_P − V_S)². The *saturation current* I_spec·F((V_P − V_S)/U_T)
bounds |I_D| for any drain voltage (:meth:`EKVTransistor.saturation_current`). Not modelled: channel-length
modulation, velocity saturation and mobility reduction, DIBL, gate and junction leakage, capacitances (a 1T1R
pulse of ns–µs is quasi-static for the transistor).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._experiment import Experiment, LogAbs, MeasurementKind, _name
from ..constants import K_B, Q
from ..data import Dataset
from ..device import AbstractModel, param

#: Beyond |V_DS|/2U_T = this, the forward and reverse terms are subtracted directly (no cancellation left).
_CLOSE = 30.0


def _softplus(x: Array) -> Array:
    return jax.nn.softplus(x)


#: Units of a MOSFET I–V table's columns (terminal voltages against ground, drain current).
_IV_UNITS = {"V_G": "V", "V_D": "V", "V_S": "V", "V_B": "V", "I_D": "A"}


def _iv_kind(data: Dataset, transistor: EKVTransistor, *, floor: float = 0.0, initial: str | None = None):
    del initial  # a transistor has no state
    return transistor, iv_curves(data, floor=floor)


class EKVTransistor(AbstractModel):
    """An n-channel MOSFET, long-channel EKV model (module docstring). Bulk at 0 V; SI units.

    The defaults are the SkyWater SKY130 5 V NMOS (``sky130_fd_pr__nfet_g5v0d10v5``) of
    ``devices/nmos_sky130_5v.toml``: V_T0, K_P and γ_b fitted to the measured I–V curves of a W/L = 7/0.50 µm
    device (dataset ``sky130_nfet_g5v0d10v5``) over the bias region of a 1T1R access device; Ψ_0 from the PDK's
    BSIM4 doping; the width of the access device assumed.
    """

    #: The measurements this family is fitted to (:func:`imcphys.fit.measurement`).
    measurement_kinds: ClassVar[dict[str, MeasurementKind]] = {
        "iv": MeasurementKind(
            (("V_G", "V_D", "V_S", "V_B", "I_D"),),
            _iv_kind,
            description="V_G, V_D, V_S, V_B [V] (terminal voltages against ground), I_D [A] (into the drain): "
            "transfer and output curves at any body bias, log10|I_D|",
            units=_IV_UNITS,
        ),
    }

    #: W, channel width (assumed: the measured 7 µm device; see devices/nmos_sky130_5v.toml)
    width: Float[Array, "..."] = param(7.0e-6, "m", lower=0.0, lower_open=True)
    #: L, channel length (0.50 µm: the measured device, the PDK's minimum-length bin)
    length: Float[Array, "..."] = param(0.5e-6, "m", lower=0.0, lower_open=True)
    #: V_T0, threshold at zero source-bulk bias (fitted to the measured 7/0.50 µm device)
    threshold_voltage: Float[Array, "..."] = param(0.6538, "V")
    #: K_P = μ C_ox (fitted to the measured 7/0.50 µm device)
    transconductance: Float[Array, "..."] = param(8.446e-5, "A/V^2", lower=0.0, lower_open=True)
    body_factor: Float[Array, "..."] = param(0.3644, "V^0.5", lower=0.0)  #: γ_b, body-effect coefficient (fitted)
    #: Ψ_0 = 2Φ_F (NDEP = 1.7e17 cm⁻³ of the PDK's BSIM4 card)
    surface_potential: Float[Array, "..."] = param(0.86, "V", lower=0.0, lower_open=True)
    temperature: Float[Array, "..."] = param(300.0, "K", lower=0.0, lower_open=True)  #: T of U_T = kT/q

    def thermal_voltage(self) -> Float[Array, "..."]:
        """U_T = kT/q [V] (CODATA constants)."""
        return K_B * self.temperature / Q

    def pinch_off_voltage(self, v_g: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """V_P(V_G) [V] (EKV); valid for V_G' > 0, i.e. V_G > V_T0 − Ψ_0 − γ_b√Ψ_0 (any V_G >= 0 here)."""
        gb, psi = self.body_factor, self.surface_potential
        vgp = jnp.asarray(v_g) - self.threshold_voltage + psi + gb * jnp.sqrt(psi)
        # the clamp keeps value and gradient finite far below threshold, where the current is nil anyway
        vgp = jnp.maximum(vgp, 1e-6)
        return vgp - psi - gb * (jnp.sqrt(vgp + 0.25 * gb * gb) - 0.5 * gb)

    def slope_factor(self, v_p: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """n = 1 + γ_b / (2√(Ψ_0 + V_P + 4U_T)) [1] at the pinch-off voltage ``v_p`` [V]."""
        inner = jnp.maximum(self.surface_potential + jnp.asarray(v_p) + 4.0 * self.thermal_voltage(), 1e-6)
        return 1.0 + self.body_factor / (2.0 * jnp.sqrt(inner))

    def specific_current(self, v_g: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """I_spec = 2 n K_P (W/L) U_T² [A] at gate voltage ``v_g`` [V]."""
        ut = self.thermal_voltage()
        n = self.slope_factor(self.pinch_off_voltage(v_g))
        return 2.0 * n * self.transconductance * (self.width / self.length) * ut * ut

    def drain_current(
        self, v_g: Float[ArrayLike, "..."], v_d: Float[ArrayLike, "..."], v_s: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """I_D [A] from drain to source for gate, drain and source voltages [V] referred to the bulk (broadcasts)."""
        return self.channel_current(v_g, v_s, jnp.asarray(v_d) - jnp.asarray(v_s))

    def channel_current(
        self, v_g: Float[ArrayLike, "..."], v_s: Float[ArrayLike, "..."], v_ds: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """I_D [A] at gate and source voltages [V] (bulk-referred) and drain–source voltage ``v_ds`` [V], given
        separately so that a tiny V_DS on a large V_S keeps its digits (a 1T1R node solve needs this).

        F(v_s) − F(v_d) = (ℓ_s − ℓ_d)(ℓ_s + ℓ_d) with ℓ = ln(1 + e^{v/2}), and, for δ = V_DS/2U_T >= 0,
        ℓ_s − ℓ_d = ln(1 + σ(v_d/2)·expm1(δ)) (mirrored for δ < 0): no cancellation when V_D ≈ V_S, and none
        when one terminal is far in reverse (the log1p argument stays positive).
        """
        v_g, v_s, v_ds = jnp.asarray(v_g), jnp.asarray(v_s), jnp.asarray(v_ds)
        ut = self.thermal_voltage()
        delta = v_ds / (2.0 * ut)
        half_s = (self.pinch_off_voltage(v_g) - v_s) / (2.0 * ut)
        half_d = half_s - delta
        ls, ld = _softplus(half_s), _softplus(half_d)
        close = jnp.abs(delta) < _CLOSE
        forward = delta >= 0
        size = jnp.where(close, jnp.where(forward, delta, -delta), 0.0)  # |δ|, with a slope of ±1 at 0
        lower = jnp.where(forward, half_d, half_s)
        diff_close = jnp.log1p(jax.nn.sigmoid(lower) * jnp.expm1(size))
        diff = jnp.where(close, jnp.where(forward, diff_close, -diff_close), ls - ld)
        return self.specific_current(v_g) * diff * (ls + ld)

    def saturation_current(
        self, v_g: Float[ArrayLike, "..."], v_s: Float[ArrayLike, "..."] = 0.0
    ) -> Float[Array, "..."]:
        """Forward current I_spec·F((V_P − V_S)/U_T) [A]: the drain current for V_D → ∞ (no channel-length
        modulation), an upper bound of |I_D| at this gate and source voltage [V]."""
        ut = self.thermal_voltage()
        half = (self.pinch_off_voltage(v_g) - jnp.asarray(v_s)) / (2.0 * ut)
        return self.specific_current(v_g) * _softplus(half) ** 2


class _BulkReferred(eqx.Module):
    """I_D of an :class:`EKVTransistor` at terminal voltages measured against ground (bulk at V_B)."""

    def __call__(self, transistor: EKVTransistor, inputs: tuple[Array, Array, Array, Array]) -> Array:
        v_g, v_d, v_s, v_b = inputs
        return transistor.drain_current(v_g - v_b, v_d - v_b, v_s - v_b)


def iv_curves(data: Dataset, *, floor: float = 0.0, name: str | None = None) -> Experiment:
    """Measured I–V curves of a MOSFET as a fit experiment: I_D [A] at each row's terminal voltages V_G, V_D, V_S
    and V_B [V] (against ground; the model refers them to the bulk), compared as log10|I_D| [decades];
    |I_D| <= ``floor`` [A] (the instrument's noise floor) left out, and so are rows with V_D = V_S, where the
    channel carries no current and the instrument reads only its offset and leakage."""
    data.require(*_IV_UNITS)
    data.check_units(_IV_UNITS, what="a MOSFET I-V curve")
    channel = data["V_D"] != data["V_S"]
    inputs = tuple(jnp.asarray(data[n][channel]) for n in ("V_G", "V_D", "V_S", "V_B"))
    return Experiment(
        _BulkReferred(),
        inputs,
        data["I_D"][channel],
        residual=LogAbs(float(floor)),
        x=data["V_G"][channel],
        x_label=data.label("V_G"),
        y_label=data.label("I_D"),
        name=name or _name(data, "MOSFET I-V"),
    )
