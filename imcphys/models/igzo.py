r"""IGZO thin-film transistor and the capacitorless 2T0C gain cell.

Sources: Li et al., "3D stacked IGZO 2T0C DRAM array with multibit capability for computing in memory",
Sci. Adv. 11, eadu4323 (2025) (write/read transistor L = 180/270 nm, 3-bit levels, retention > 100 s, int4 fully
connected layer by column current summation); Belmonte et al., IEDM 2021 (IGZO 2T0C, retention > 1e3 s); the
ITZO self-aligned top-gate 2T0C cell of PMC11739972 (off-current 2.33e-18 A/µm, retention > 1e4 s, saturation
mobility 17.52 cm²/(V s)).

**IGZOTransistor** — an n-type oxide TFT with three terminals (gate, drain, source; no body), so its current
depends on V_GS and V_DS only. With the thermal voltage φ_t = kT/q (CODATA), ideality n and band-tail exponent γ,

.. math::

    I_D &= I_{sq}\,\frac{W}{L}\,\big[F(V_{GS} - V_T) - F(V_{GS} - V_T - n V_{DS})\big]
          + I_{off}(T)\,W\,\tanh\frac{V_{DS}}{2\varphi_t}, \qquad V_{DS} \ge 0 \\
    F(x) &= \Big(m\,\ln\big(1 + e^{x/m}\big)\Big/1\,\mathrm{V}\Big)^{\gamma+1},\qquad m = (\gamma+1)\,n\,\varphi_t

(V_DS < 0: source and drain swap, I_D(V_GS, V_DS) = −I_D(V_GS − V_DS, −V_DS)). Above threshold F(x) → x^{γ+1}:
the band-tail-limited power law of a-IGZO, I_D ∝ μ0·C_ox·(W/L)·(V_GS − V_T)^{γ+1}, which saturates for
n·V_DS > V_GS − V_T. Below threshold F(x) → m^{γ+1} e^{x/(nφ_t)}, so

.. math::

    I_D = I_0\,\frac{W}{L}\,10^{(V_{GS}-V_T)/SS}\,\big(1 - e^{-V_{DS}/\varphi_t}\big),\qquad SS = n\,\varphi_t \ln 10

with one smooth, everywhere-differentiable expression across both regimes. The parallel off-state floor
I_off(T) [A per m of width] is the leakage that no gate voltage turns off (trap-assisted generation, back-channel
and edge paths); it is Arrhenius-activated, I_off(T) = I_off(T_ref)·exp(−E_a/k·(1/T − 1/T_ref)). Temperature
also enters through φ_t (SS ∝ T) and V_T(T) = V_T(T_ref) + (dV_T/dT)·(T − T_ref).

**Cell2T0C** — write transistor (WT) + storage node (capacitance C_SN, the read transistor's gate plus
parasitics) + read transistor (RT). State: the storage-node voltage V_SN [V].

.. math::

    C_{SN}\,\frac{dV_{SN}}{dt} = I_{WT}(V_G = V_{WWL},\ \text{terminals } V_{WBL}, V_{SN}) + C_c\,\frac{dV_{WWL}}{dt}

- *hold*: V_WWL = ``hold_wordline_voltage``, V_WBL = ``hold_bitline_voltage`` (the drive of :meth:`rhs`). When
  V_SN > V_WBL the storage node is the WT drain and V_GS is fixed: a nearly constant leak, linear decay,
  t_ret = C_SN·ΔV/I_leak. When V_SN < V_WBL the node is the WT source: V_GS = V_WWL − V_SN falls as the node
  charges, the sub-threshold current falls exponentially and V_SN rises by one SS per decade of time (log-time).
- *write* (:meth:`Cell2T0C.pulse`, amplitude = write bit-line level): the WWL pulse turns the WT on and the node
  follows the bit line; when the WWL falls (``fall`` seconds) the coupling capacitance C_c kicks the node down by
  up to C_c/C_SN·ΔV_WWL, less the charge the still-conducting WT gives back before it turns off.
- *read*: I_read = I_RT(V_GS = V_SN − V_RWL, V_DS = V_RBL − V_RWL) with the read word line at 0 V.
- *multibit*: M levels equally spaced over the window [v_low, v_high]; a level fails when V_SN moves by the
  margin V_w/(2(M − 1)). Retention is the first time the node leaves its margin: a diffrax event
  (:meth:`Cell2T0C.retention_time_event`, the reference), or the exact integral of the autonomous hold ODE,
  t = ∫ C_SN dV / I_leak(V), by Gauss–Legendre quadrature (:meth:`Cell2T0C.retention_time`, the fast path for
  populations; its error against the event solve is tested).

Not modelled: gate-insulator and RT gate leakage, charge trapping (bias-temperature V_T drift during hold),
coupling from the read word/bit lines, DIBL.
"""

from __future__ import annotations

import math
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_range, is_concrete
from .._experiment import Experiment, LogAbs, MeasurementKind, _name, check_column
from ..constants import K_B_EV, thermal_voltage
from ..data import Dataset
from ..device import AbstractDevice, AbstractModel, PulseResult, check_value, param, with_values

#: Gauss–Legendre nodes of the fast retention path (tested against the event solve).
QUADRATURE_NODES = 16
#: Below this x/m, ln(softplus(x/m)) = x/m to float64 precision (e^-36 < 2^-52).
_LOG_SOFTPLUS_LINEAR = -36.0


#: Highest temperature [K] of the amorphous-oxide TFT model: a-IGZO sputtered in argon crystallises from about
#: 400 °C, films sputtered with oxygen change little up to 600 °C (Hiroe et al., SID Symp. Dig. Tech. Pap. 43, 1251
#: (2012)); above 600 °C the film is no longer the amorphous semiconductor the band-tail model describes.
MAX_TEMPERATURE = 873.15


def _log_softplus(u: Array) -> Array:
    """ln(ln(1 + e^u)), accurate and finite for any u (→ u far below 0)."""
    safe = jnp.maximum(u, _LOG_SOFTPLUS_LINEAR)
    return jnp.where(u > _LOG_SOFTPLUS_LINEAR, jnp.log(jnp.logaddexp(0.0, safe)), u)


# ------------------------------------------------------------------------------------------------ transistor
class IGZOTransistor(AbstractModel):
    """An a-IGZO (or other oxide) TFT: sub-threshold, band-tail power law above threshold, off-state floor, and
    temperature (module docstring). A plain equinox module of named parameters (SI units), so it can be fitted
    with :func:`imcphys.fit` through :meth:`drain_current` and vmapped over devices; it holds no state."""

    width: Float[Array, "..."] = param(0.2e-6, "m", lower=0.0, lower_open=True)  #: W, channel width
    length: Float[Array, "..."] = param(180e-9, "m", lower=0.0, lower_open=True)  #: L, channel length
    threshold_voltage: Float[Array, "..."] = param(0.5, "V")  #: V_T at the reference temperature
    threshold_temperature_coefficient: Float[Array, "..."] = param(-2e-3, "V/K")  #: dV_T/dT
    ideality: Float[Array, "..."] = param(1.3, "1", lower=1.0)  #: n, SS = n·(kT/q)·ln 10
    band_tail_exponent: Float[Array, "..."] = param(0.7, "1", lower=0.0)  #: γ, I_D ∝ (V_GS − V_T)^(γ+1) above V_T
    #: I_sq, current per square at V_GS − V_T = 1 V
    sheet_current: Float[Array, "..."] = param(5e-6, "A", lower=0.0, lower_open=True)
    off_current: Float[Array, "..."] = param(1e-12, "A/m", lower=0.0)  #: I_off per width at T_ref (1e-18 A/µm)
    off_activation_energy: Float[Array, "..."] = param(0.5, "eV", lower=0.0)  #: E_a of the off-state floor
    #: T_ref of V_T and I_off
    reference_temperature: Float[Array, "..."] = param(298.15, "K", lower=0.0, lower_open=True, upper=MAX_TEMPERATURE)
    #: operating temperature
    temperature: Float[Array, "..."] = param(298.15, "K", lower=0.0, lower_open=True, upper=MAX_TEMPERATURE)

    # ------------------------------------------------------------- temperature
    def thermal_voltage(self) -> Float[Array, "..."]:
        """φ_t = kT/q [V] at the operating temperature (CODATA constants)."""
        return thermal_voltage(check_value(self, "temperature", self.temperature))

    def subthreshold_swing(self) -> Float[Array, "..."]:
        """SS = n·(kT/q)·ln 10 [V/decade] (59.5 mV/dec at 300 K for n = 1)."""
        return self.ideality * self.thermal_voltage() * math.log(10.0)

    def threshold_at_temperature(self) -> Float[Array, "..."]:
        """V_T(T) = V_T(T_ref) + dV_T/dT·(T − T_ref) [V]."""
        return self.threshold_voltage + self.threshold_temperature_coefficient * (
            self.temperature - self.reference_temperature
        )

    def off_current_per_width(self) -> Float[Array, "..."]:
        """Off-state floor I_off(T) [A/m] (×1e-6 for A/µm): Arrhenius with E_a from T_ref."""
        temp = check_value(self, "temperature", self.temperature)
        return self.off_current * jnp.exp(
            -self.off_activation_energy / K_B_EV * (1.0 / temp - 1.0 / self.reference_temperature)
        )

    # ------------------------------------------------------------- current
    def _log_f(self, overdrive: Array, phi_t: Array) -> Array:
        """ln F(x) of the module docstring, for the overdrive x [V]."""
        p = self.band_tail_exponent + 1.0
        m = p * self.ideality * phi_t
        return p * (jnp.log(m) + _log_softplus(overdrive / m))

    def _forward_current(self, v_gs: Array, v_ds: Array) -> Array:
        """Channel current for V_DS >= 0 (as a function, valid and finite for any V_DS)."""
        phi_t = self.thermal_voltage()
        x = v_gs - self.threshold_at_temperature()
        log_s = self._log_f(x, phi_t)
        log_d = self._log_f(x - self.ideality * v_ds, phi_t)
        # F(x_s) − F(x_d) = F(x_s)·(1 − F(x_d)/F(x_s)), exact when the two are close (small V_DS)
        channel = jnp.exp(log_s) * -jnp.expm1(log_d - log_s)  # log_d <= log_s: F rises
        return self.sheet_current * (self.width / self.length) * channel

    def drain_current(self, v_gs: Float[ArrayLike, "..."], v_ds: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Drain current I_D [A] (drain to source) at gate–source ``v_gs`` [V] and drain–source ``v_ds`` [V]
        (broadcasts; antisymmetric under source/drain exchange; smooth in both)."""
        v_gs, v_ds = jnp.asarray(v_gs, dtype=float), jnp.asarray(v_ds, dtype=float)
        forward = v_ds >= 0
        a = jnp.where(forward, v_ds, -v_ds)  # |V_DS| with the forward branch's slope at exactly 0
        # V_DS < 0: the terminal called "drain" is the source, V_GS' = V_GS − V_DS; both branches stay finite
        channel = self._forward_current(jnp.where(forward, v_gs, v_gs - v_ds), a)
        floor = self.off_current_per_width() * self.width * jnp.tanh(a / (2.0 * self.thermal_voltage()))
        return jnp.where(forward, 1.0, -1.0) * (channel + floor)

    def terminal_current(
        self, v_g: Float[ArrayLike, "..."], v_a: Float[ArrayLike, "..."], v_b: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """Current [A] from terminal a to terminal b through the channel, gate at ``v_g`` (all voltages [V]
        against one ground); whichever of a, b is lower acts as the source."""
        v_b = jnp.asarray(v_b, dtype=float)
        return self.drain_current(jnp.asarray(v_g) - v_b, jnp.asarray(v_a) - v_b)

    def leakage_per_width(self, v_gs: Float[ArrayLike, "..."], v_ds: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """|I_D|/W [A/m] at an off-state bias, as papers report leakage (×1e-6 for A/µm)."""
        return jnp.abs(self.drain_current(v_gs, v_ds)) / self.width


def _transfer_kind(
    data: Dataset, cell: Cell2T0C, *, floor: float = 0.0, initial: str | None = None, transistor: str = "write"
):
    del initial
    return cell, transfer_curve(data, transistor=transistor, floor=floor)


def _retention_kind(
    data: Dataset, cell: Cell2T0C, *, floor: float = 0.0, initial: str | None = None, v_sn0: float | None = None
):
    del initial  # the hold starts from the written level v_sn0
    data.require("T")
    check_column(data, "T", lambda temp: check_value(cell, "temperature", temp, label="T"))
    return cell, hold_retention(data, v_sn0=v_sn0, floor=floor)


# ------------------------------------------------------------------------------------------------- 2T0C cell
class Cell2T0C(AbstractDevice):
    """Capacitorless 2T0C IGZO gain cell (module docstring). State: V_SN [V]. Drive of :meth:`rhs`: the write
    bit-line voltage during hold [V]. :meth:`pulse` writes (amplitude = write bit-line level [V]); :meth:`read`
    returns the read-transistor current [A].

    Both transistors share the oxide's material parameters (ideality, band tail, sheet current, off-state floor,
    temperature coefficients) and have their own geometry and threshold voltage.
    """

    #: The measurements this family is fitted to (:func:`imcphys.fit.measurement`).
    measurement_kinds: ClassVar[dict[str, MeasurementKind]] = {
        "transfer": MeasurementKind(
            (("V_GS", "V_DS", "I_D"),),
            _transfer_kind,
            options=("transistor",),
            description="V_GS [V], V_DS [V], I_D [A]: TFT transfer/output curves of the write (or read) "
            "transistor, log10|I_D|",
            units={"V_GS": "V", "V_DS": "V", "I_D": "A"},
        ),
        "retention": MeasurementKind(
            (("t", "T", "I_read"),),
            _retention_kind,
            options=("v_sn0",),
            description="t [s], T [K], I_read [A]: read current during a hold at one temperature, log10|I|",
            units={"t": "s", "T": "K", "I_read": "A"},
        ),
    }

    #: C_SN, total storage-node capacitance
    storage_capacitance: Float[Array, "..."] = param(2e-15, "F", lower=0.0, lower_open=True)
    coupling_capacitance: Float[Array, "..."] = param(0.1e-15, "F", lower=0.0)  #: C_c, WWL-to-SN coupling (kickback)
    write_width: Float[Array, "..."] = param(0.2e-6, "m", lower=0.0, lower_open=True)  #: W of the write transistor
    write_length: Float[Array, "..."] = param(180e-9, "m", lower=0.0, lower_open=True)  #: L of the write transistor
    read_width: Float[Array, "..."] = param(0.2e-6, "m", lower=0.0, lower_open=True)  #: W of the read transistor
    read_length: Float[Array, "..."] = param(270e-9, "m", lower=0.0, lower_open=True)  #: L of the read transistor
    threshold_voltage: Float[Array, "..."] = param(0.5, "V")  #: V_T of the write transistor at T_ref
    read_threshold_voltage: Float[Array, "..."] = param(0.3, "V")  #: V_T of the read transistor at T_ref
    threshold_temperature_coefficient: Float[Array, "..."] = param(-2e-3, "V/K")  #: dV_T/dT (both)
    ideality: Float[Array, "..."] = param(1.3, "1", lower=1.0)  #: n (both), SS = n·(kT/q)·ln 10
    band_tail_exponent: Float[Array, "..."] = param(0.7, "1", lower=0.0)  #: γ (both)
    #: I_sq at V_GS − V_T = 1 V (both)
    sheet_current: Float[Array, "..."] = param(5e-6, "A", lower=0.0, lower_open=True)
    off_current: Float[Array, "..."] = param(1e-12, "A/m", lower=0.0)  #: off-state floor per width at T_ref
    off_activation_energy: Float[Array, "..."] = param(0.5, "eV", lower=0.0)  #: E_a of the off-state floor
    write_wordline_voltage: Float[Array, "..."] = param(2.5, "V")  #: V_WWL during a write
    hold_wordline_voltage: Float[Array, "..."] = param(-1.0, "V")  #: V_WWL during hold
    hold_bitline_voltage: Float[Array, "..."] = param(0.0, "V")  #: V_WBL during hold (default drive)
    read_bitline_voltage: Float[Array, "..."] = param(0.1, "V")  #: V_RBL − V_RWL while reading
    window_low: Float[Array, "..."] = param(0.3, "V")  #: lowest storage-node level
    window_high: Float[Array, "..."] = param(1.0, "V")  #: highest storage-node level
    #: smallest level spacing the sensing resolves
    level_resolution: Float[Array, "..."] = param(0.02, "V", lower=0.0, lower_open=True)
    #: T_ref of V_T and I_off
    reference_temperature: Float[Array, "..."] = param(298.15, "K", lower=0.0, lower_open=True, upper=MAX_TEMPERATURE)
    #: operating (hold) temperature
    temperature: Float[Array, "..."] = param(298.15, "K", lower=0.0, lower_open=True, upper=MAX_TEMPERATURE)
    levels: int = eqx.field(static=True, default=8)  #: storage levels per cell (8 = 3 bits)
    max_amplitude: float = eqx.field(static=True, default=2.0)  #: largest write bit-line level [V]

    def check_relations(self) -> None:
        if isinstance(self.levels, bool) or not isinstance(self.levels, int):
            raise ValueError(f"Cell2T0C.levels must be an integer >= 2; got {self.levels!r}")
        self._check_levels(self.levels)

    def _check_levels(self, levels: int) -> None:
        """Raise unless ``levels`` equally spaced levels fit the window: an integer >= 2, a window low < high
        whose spacing is at least ``level_resolution``, below what the write can reach (V_WWL − V_T)."""
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2; got {levels!r}")
        values = (
            self.window_low,
            self.window_high,
            self.level_resolution,
            self.write_wordline_voltage,
            self.threshold_voltage,
        )
        if not is_concrete(values):
            return
        low, high, res, vwwl, vt = (np.asarray(v, dtype=float) for v in values)
        if np.any(~(high > low)):
            raise ValueError(
                f"Cell2T0C.window_high must be above window_low; got {np.ravel(high)[0]:g} V and {np.ravel(low)[0]:g} V"
            )
        spacing = (high - low) / (levels - 1)
        if np.any(spacing < res):
            raise ValueError(
                f"{levels} levels do not fit the storage-node window "
                f"[{np.ravel(low)[0]:g}, {np.ravel(high)[0]:g}] V: their spacing "
                f"{np.min(spacing) * 1e3:.3g} mV is below level_resolution = "
                f"{np.ravel(res)[0] * 1e3:g} mV; at most "
                f"{int(np.min(np.floor((high - low) / res))) + 1} levels fit"
            )
        if np.any(high > vwwl - vt):
            raise ValueError(
                f"Cell2T0C.window_high = {np.ravel(high)[0]:g} V cannot be written: the write "
                f"transistor stops conducting at V_WWL − V_T = {np.ravel(vwwl - vt)[0]:g} V"
            )

    # ------------------------------------------------------------- the two transistors
    def _transistor(self, width, length, threshold) -> IGZOTransistor:
        return IGZOTransistor(
            width=width,
            length=length,
            threshold_voltage=threshold,
            threshold_temperature_coefficient=self.threshold_temperature_coefficient,
            ideality=self.ideality,
            band_tail_exponent=self.band_tail_exponent,
            sheet_current=self.sheet_current,
            off_current=self.off_current,
            off_activation_energy=self.off_activation_energy,
            reference_temperature=self.reference_temperature,
            temperature=self.temperature,
        )

    def write_transistor(self) -> IGZOTransistor:
        """The write transistor (WT) as an :class:`IGZOTransistor`."""
        return self._transistor(self.write_width, self.write_length, self.threshold_voltage)

    def read_transistor(self) -> IGZOTransistor:
        """The read transistor (RT) as an :class:`IGZOTransistor`."""
        return self._transistor(self.read_width, self.read_length, self.read_threshold_voltage)

    def at_temperature(self, temperature: Float[ArrayLike, "..."]) -> Cell2T0C:
        """A copy at operating ``temperature`` [K], checked as the constructor checks ``temperature`` (eagerly a
        ``ValueError``, under jit/vmap the runtime error of ``eqx.error_if``)."""
        return with_values(self, temperature=check_value(self, "temperature", temperature, label="temperature"))

    # ------------------------------------------------------------- hold
    def leak_current(
        self, v_sn: Float[ArrayLike, "..."], v_wbl: Float[ArrayLike, "..."] | None = None
    ) -> Float[Array, "..."]:
        """Current [A] leaving the storage node through the off write transistor at ``v_sn`` [V], word line at
        ``hold_wordline_voltage`` and bit line at ``v_wbl`` [V] (default ``hold_bitline_voltage``); negative
        when the node charges up from the bit line."""
        v_wbl = self.hold_bitline_voltage if v_wbl is None else v_wbl
        return self.write_transistor().terminal_current(self.hold_wordline_voltage, v_sn, v_wbl)

    def rhs(self, t, state, drive):
        """dV_SN/dt = −I_leak(V_SN, V_WBL = drive)/C_SN [V/s] during hold."""
        del t
        return -self.leak_current(state, drive) / self.storage_capacitance

    def hold_trace(
        self,
        v_sn0: Float[ArrayLike, ""],
        ts: Float[ArrayLike, " n"],
        *,
        v_wbl: Float[ArrayLike, ""] | None = None,
        rtol: float = 1e-8,
        atol: float = 1e-10,
        adjoint: diffrax.AbstractAdjoint | None = None,
    ) -> Float[Array, " n"]:
        """V_SN [V] at times ``ts`` [s] (increasing, from 0) of a hold from ``v_sn0`` (adaptive diffrax solve;
        ``adjoint=diffrax.ForwardMode()`` for forward-mode fits of a retention trace)."""
        ts = jnp.asarray(ts, dtype=float)
        v_wbl = self.hold_bitline_voltage if v_wbl is None else jnp.asarray(v_wbl)
        term = diffrax.ODETerm(lambda t, v, args: self.rhs(t, v, v_wbl))
        t_first = jnp.maximum(ts[-1] * 1e-12, 1e-12)
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            0.0,
            ts[-1],
            t_first,
            jnp.asarray(v_sn0, dtype=float),
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=16384,
            adjoint=adjoint or diffrax.RecursiveCheckpointAdjoint(),
        )
        return sol.ys

    def hold_voltage(
        self,
        v_sn0: Float[ArrayLike, "..."],
        ts: Float[ArrayLike, " n"],
        *,
        v_wbl: Float[ArrayLike, "..."] | None = None,
        steps_per_decade: int = 16,
        t_scale: float = 1e-6,
    ) -> Float[Array, "... n"]:
        """V_SN [V] at times ``ts`` [s] (concrete, 1-D, increasing, > 0) of a hold from ``v_sn0``: the fast
        fixed-step path for populations (broadcasts over ``v_sn0`` and the parameters; differentiable).

        Exponential Rosenbrock–Euler steps, V ← V + h·φ1(h·J)·f(V) with J = ∂f/∂V and φ1(z) = (e^z − 1)/z
        (exact for a constant or a linear leak, stable at any step near the bit-line equilibrium), on a mesh
        uniform in log time u = ln(t + t_scale), ``steps_per_decade`` steps per decade, through every output
        time: a step covers a fixed fraction of a decade, which resolves both the linear decay of a constant
        leak and the log-time decay of a source-side node. Its error against :meth:`hold_trace` is tested
        (below 2 mV at 16 steps per decade, except within a few kT/q of the bit-line level, where a fully
        decayed node settles).
        """
        if not is_concrete(ts):
            raise ValueError("hold_voltage needs concrete output times ts (they set the step mesh)")
        t_out = np.asarray(ts, dtype=float).ravel()
        if t_out.size < 1 or np.any(t_out <= 0) or np.any(np.diff(t_out) <= 0):
            raise ValueError("ts must be positive and strictly increasing [s]")
        u_out = np.log(t_out + t_scale)
        knots = [np.log(t_scale)]
        for u in u_out:
            n = max(1, int(np.ceil((u - knots[-1]) / (np.log(10.0) / steps_per_decade))))
            knots.extend(np.linspace(knots[-1], u, n + 1)[1:].tolist())
        t_mesh = np.exp(np.asarray(knots)) - t_scale
        t_mesh[0] = 0.0
        # vs[k] is the state at t_mesh[k + 1]
        index = np.array([int(np.argmin(np.abs(t_mesh - t))) - 1 for t in t_out])
        v0 = jnp.asarray(v_sn0, dtype=float)
        v_wbl = self.hold_bitline_voltage if v_wbl is None else jnp.asarray(v_wbl)

        def f(v):
            return self.rhs(None, v, v_wbl)

        def step(v, h):
            rate, jac = jax.jvp(f, (v,), (jnp.ones_like(v),))  # f is elementwise: J is its diagonal
            z = h * jac
            small = jnp.abs(z) < 1e-8
            phi1 = jnp.where(small, 1.0 + 0.5 * z, jnp.expm1(jnp.where(small, 1.0, z)) / jnp.where(small, 1.0, z))
            v = v + h * phi1 * rate
            return v, v

        _, vs = jax.lax.scan(step, v0, jnp.asarray(np.diff(t_mesh)))
        return jnp.moveaxis(vs[jnp.asarray(index)], 0, -1)

    # ------------------------------------------------------------- levels
    def level_voltages(self, levels: int | None = None) -> Float[Array, "... m"]:
        """Storage-node voltages [V] of ``levels`` (default ``self.levels``) equally spaced levels."""
        m = self.levels if levels is None else levels
        self._check_levels(m)
        frac = jnp.linspace(0.0, 1.0, m)
        return jnp.asarray(self.window_low)[..., None] + (self.window_high - self.window_low)[..., None] * frac

    def level_margin(self, levels: int | None = None) -> Float[Array, "..."]:
        """Allowed excursion V_w/(2(M − 1)) [V] of a level before it is read as its neighbour."""
        m = self.levels if levels is None else levels
        self._check_levels(m)
        return (self.window_high - self.window_low) / (2.0 * (m - 1))

    # ------------------------------------------------------------- retention
    def retention_time(
        self,
        v_sn0: Float[ArrayLike, "..."],
        v_lower: Float[ArrayLike, "..."],
        v_upper: Float[ArrayLike, "..."],
        *,
        v_wbl: Float[ArrayLike, "..."] | None = None,
        nodes: int = QUADRATURE_NODES,
    ) -> Float[Array, "..."]:
        """First time [s] the holding node leaves [``v_lower``, ``v_upper``] starting from ``v_sn0`` (inside).

        The hold ODE is autonomous, so t = C_SN ∫ dV/I_leak(V) from ``v_sn0`` to the exit the leak drives it to,
        computed by ``nodes``-point Gauss–Legendre quadrature (broadcasts; vectorised; differentiable). ``inf``
        where the leak changes sign before the exit (the node settles inside its margin); 0 where ``v_sn0`` is
        not inside the margin to begin with (a cell written outside its level has no retention).
        """
        v0 = jnp.asarray(v_sn0, dtype=float)
        lo, hi = jnp.asarray(v_lower, dtype=float), jnp.asarray(v_upper, dtype=float)
        i0 = self.leak_current(v0, v_wbl)
        falling = i0 > 0
        end = jnp.where(falling, lo, hi)
        x, w = (jnp.asarray(a) for a in np.polynomial.legendre.leggauss(nodes))
        half = 0.5 * (end - v0)
        vs = (0.5 * (end + v0))[..., None] + half[..., None] * x
        wbl = None if v_wbl is None else jnp.asarray(v_wbl)[..., None]
        i_nodes = self.leak_current(vs, wbl)
        i_end = self.leak_current(end, v_wbl)
        sign = jnp.where(falling, 1.0, -1.0)
        inside = (v0 > lo) & (v0 < hi)
        ok = jnp.all(sign[..., None] * i_nodes > 0, axis=-1) & (sign * i_end > 0) & (i0 != 0) & inside
        safe = jnp.where(ok[..., None], i_nodes, 1.0)
        t = -self.storage_capacitance * half * jnp.sum(w / safe, axis=-1)
        return jnp.where(ok, t, jnp.where(inside, jnp.inf, 0.0))

    def retention_time_event(
        self,
        v_sn0: Float[ArrayLike, ""],
        v_lower: Float[ArrayLike, ""],
        v_upper: Float[ArrayLike, ""],
        *,
        v_wbl: Float[ArrayLike, ""] | None = None,
        t_max: float = 1e12,
        rtol: float = 1e-9,
        atol: float = 1e-12,
        adjoint: diffrax.AbstractAdjoint | None = None,
    ) -> Float[Array, ""]:
        """The same first exit time [s] from the hold ODE solved with diffrax (Tsit5, PID) and an event at the
        margin, located by Newton's method (differentiable; ``adjoint=diffrax.ForwardMode()`` for forward-mode
        derivatives, which compile several times faster than reverse mode here); ``inf`` if the node is still
        inside at ``t_max``; 0 if ``v_sn0`` is not inside the margin to begin with."""
        v0 = jnp.asarray(v_sn0, dtype=float)
        lo, hi = jnp.asarray(v_lower, dtype=float), jnp.asarray(v_upper, dtype=float)
        v_wbl = self.hold_bitline_voltage if v_wbl is None else jnp.asarray(v_wbl)
        scale = self.storage_capacitance / jnp.maximum(jnp.abs(self.leak_current(v0, v_wbl)), 1e-30)

        # time in units of the initial C·V/I scale so that the solver's first step and tolerances are sensible
        def field(tau, v, args):
            return scale * self.rhs(tau, v, v_wbl)

        def cond(t, y, args, **kwargs):
            return jnp.minimum(y - lo, hi - y)

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            0.0,
            t_max / scale,
            1e-6,
            v0,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            event=diffrax.Event(cond, root_finder=optx.Newton(rtol=1e-12, atol=1e-14)),
            max_steps=4096,
            throw=False,
            adjoint=adjoint or diffrax.RecursiveCheckpointAdjoint(),
        )
        hit = sol.event_mask
        inside = (v0 > lo) & (v0 < hi)
        return jnp.where(inside, jnp.where(hit, sol.ts[-1] * scale, jnp.inf), 0.0)

    def level_retention(
        self,
        levels: int | None = None,
        *,
        method: str = "quadrature",
        v_offset: Float[ArrayLike, "..."] = 0.0,
        nodes: int = QUADRATURE_NODES,
    ) -> Float[Array, "... m"]:
        """Retention time [s] of each of ``levels`` levels written at their nominal voltage plus ``v_offset``
        [V] (e.g. a write error), the margin of the level count on either side. ``method``: ``"quadrature"``
        (fast path, ``nodes`` Gauss–Legendre nodes) or ``"event"`` (diffrax reference; one cell, no batch
        axes)."""
        v = self.level_voltages(levels)
        margin = self.level_margin(levels)[..., None]
        v0 = v + jnp.asarray(v_offset)
        if method == "quadrature":
            return self.retention_time(v0, v - margin, v + margin, nodes=nodes)
        if method == "event":
            return jax.vmap(self.retention_time_event)(v0, v - margin, v + margin)
        raise ValueError(f"method must be 'quadrature' or 'event'; got {method!r}")

    # ------------------------------------------------------------- write
    def _write_field(self, v_wbl, v_wwl_start, slope):
        """dV_SN/dt [V/s] with the WWL at v_wwl_start + slope·t and the WBL at v_wbl."""
        wt = self.write_transistor()

        def field(t, v, args):
            v_wwl = v_wwl_start + slope * t
            i_in = wt.terminal_current(v_wwl, v_wbl, v)
            return (i_in + self.coupling_capacitance * slope) / self.storage_capacitance

        return field

    def _integrate(self, field, v0, duration, fixed_steps):
        if fixed_steps is None:
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(field),
                diffrax.Tsit5(),
                0.0,
                duration,
                duration * 1e-4,
                v0,
                stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
                max_steps=4096,
            )
            return sol.ys[-1]
        # Backward Euler on a graded mesh (denser at the start, where the node moves fastest), two Newton
        # iterations per step: the write is stiff (node time constant C_SN/g_on ~ 0.1 ns against steps of ns),
        # and an explicit step overshoots there.
        mesh = duration * (jnp.arange(fixed_steps + 1) / fixed_steps) ** 2

        def step(v, ab):
            _, b = ab
            h = b - _

            def residual(x):
                return x - v - h * field(b, x, None)

            x = v
            for _i in range(2):
                r, dr = jax.jvp(residual, (x,), (jnp.ones_like(x),))
                x = x - r / dr
            return x, None

        return jax.lax.scan(step, v0, (mesh[:-1], mesh[1:]))[0]

    def pulse(self, state, amplitude, width, *, rise=0.0, fall=0.0, fixed_steps=None, key=None) -> PulseResult:
        """Write: WWL at ``write_wordline_voltage`` for ``width`` [s] (the rise is lumped into it) with the WBL
        at ``amplitude`` [V]; then the WWL falls to ``hold_wordline_voltage`` in ``fall`` [s] (0: an abrupt
        step, the full kickback C_c/C_SN·ΔV_WWL). Energy: the charge the bit line delivers times its voltage,
        plus the word-line swing on the coupling capacitance. ``key`` is unused (no write noise)."""
        del key
        amplitude = jnp.asarray(amplitude, dtype=float)  # within amplitude_range(): checked by AbstractDevice
        check_range("width", width, lower=0.0, lower_open=True, unit="s")
        check_range("fall", fall, lower=0.0, unit="s")
        abrupt = is_concrete(fall) and float(np.max(fall)) == 0.0
        # one compiled kernel even when called eagerly: eager and jit give the same bits
        widths = tuple(jnp.asarray(x, dtype=float) for x in (width, rise, fall))
        return self._pulse(jnp.asarray(state, dtype=float), amplitude, *widths, fixed_steps, abrupt)

    @eqx.filter_jit
    def _pulse(self, v0, amplitude, width, rise, fall, fixed_steps, abrupt) -> PulseResult:
        v0 = jnp.broadcast_to(v0, jnp.broadcast_shapes(v0.shape, amplitude.shape))
        plateau = width + rise
        v1 = self._integrate(self._write_field(amplitude, self.write_wordline_voltage, 0.0), v0, plateau, fixed_steps)
        swing = self.hold_wordline_voltage - self.write_wordline_voltage
        step_only = v1 + self.coupling_capacitance / self.storage_capacitance * swing
        if abrupt:
            v2 = step_only
        else:
            safe_fall = jnp.where(fall > 0, fall, 1.0)
            ramped = self._integrate(
                self._write_field(amplitude, self.write_wordline_voltage, swing / safe_fall), v1, safe_fall, fixed_steps
            )
            v2 = jnp.where(fall > 0, ramped, step_only)
        energy = amplitude * self.storage_capacitance * jnp.maximum(v1 - v0, 0.0) + self.coupling_capacitance * swing**2
        return PulseResult(state=v2, energy=energy, duration=plateau + fall)

    def write(
        self,
        v_target: Float[ArrayLike, "..."],
        *,
        width: float = 50e-9,
        fall: float = 2e-9,
        fixed_steps: int | None = None,
        state: Float[ArrayLike, "..."] | None = None,
    ) -> Float[Array, "..."]:
        """V_SN [V] after writing with the bit line at ``v_target`` [V] (no kickback compensation), from
        ``state`` (default: the hold bit-line level)."""
        v0 = self.initial_state() if state is None else state
        return self.pulse(v0, v_target, width, fall=fall, fixed_steps=fixed_steps).state

    # ------------------------------------------------------------- read and interface
    def read_current(
        self, v_sn: Float[ArrayLike, "..."], v_rbl: Float[ArrayLike, "..."] | None = None
    ) -> Float[Array, "..."]:
        """Read-transistor current [A] with its gate at ``v_sn`` [V], source (RWL) at 0 V and drain at
        ``v_rbl`` [V] (default ``read_bitline_voltage``)."""
        v_rbl = self.read_bitline_voltage if v_rbl is None else v_rbl
        return self.read_transistor().drain_current(v_sn, v_rbl)

    def read(self, state):
        """Read current [A] of the storage-node voltage ``state`` [V]."""
        return self.read_current(state)

    def initial_state(self, which: str = "reset"):
        """``"reset"``: V_SN at the hold bit-line level; ``"set"``: the top of the window [V]."""
        if which == "reset":
            return jnp.asarray(self.hold_bitline_voltage, dtype=float)
        if which == "set":
            return jnp.asarray(self.window_high, dtype=float)
        raise ValueError(f"initial_state(which=...) must be 'reset' or 'set'; got {which!r}")

    def amplitude_range(self):
        """Writes set any level in one pulse whatever the previous one: write bit-line levels (0, max) [V];
        there is no erase polarity."""
        return (0.0, self.max_amplitude), (0.0, 0.0)

    def state_scale(self):
        return jnp.asarray(1.0)


# ------------------------------------------------------------------------------------- measurement kinds
class _Transfer(eqx.Module):
    """I_D(V_GS, V_DS) of one of the 2T0C cell's transistors."""

    transistor: str = eqx.field(static=True)

    def __call__(self, cell: Cell2T0C, inputs: tuple[Array, Array]) -> Array:
        tft = cell.write_transistor() if self.transistor == "write" else cell.read_transistor()
        return tft.drain_current(*inputs)


def transfer_curve(
    data: Dataset, *, transistor: str = "write", floor: float = 0.0, name: str | None = None
) -> Experiment:
    """IGZO TFT curves, I_D [A] at each (V_GS, V_DS) [V] row (transfer curves at one or more V_DS, or output
    curves), of the 2T0C card's ``transistor`` (``"write"`` or ``"read"``: they share n, γ and I_sq, and have
    their own V_T and geometry); compared as log10|I_D|, |I_D| <= ``floor`` [A] (the instrument's) left out."""
    if transistor not in ("write", "read"):
        raise ValueError(f"transistor must be 'write' or 'read'; got {transistor!r}")
    data.require("V_GS", "V_DS", "I_D")
    return Experiment(
        _Transfer(transistor),
        (jnp.asarray(data["V_GS"]), jnp.asarray(data["V_DS"])),
        data["I_D"],
        residual=LogAbs(float(floor)),
        x=data["V_GS"],
        x_label=data.label("V_GS"),
        y_label=data.label("I_D"),
        name=name or _name(data, f"{transistor} TFT"),
    )


class _Hold(eqx.Module):
    """Read current of a 2T0C cell during a hold (word line at ``hold_wordline_voltage``, bit line at
    ``hold_bitline_voltage``) at a fixed temperature, from V_SN(0) = v_sn0: one adaptive solve of the cell's
    hold ODE from t = 0 saved at the sample times, in forward mode (what Levenberg–Marquardt differentiates), as
    :meth:`Cell2T0C.hold_trace` does; a failed solve gives NaN (a large residual), not an error, as fits try
    odd parameters. (One solve with ``SaveAt``: :func:`imcphys.simulate` solves segment by segment, which
    compiled many times slower here.)"""

    def __call__(self, cell: Cell2T0C, inputs: dict[str, Array]) -> Array:
        cell = cell.at_temperature(inputs["temperature"])
        v0 = jnp.asarray(cell.window_high if inputs["v_sn0"] is None else inputs["v_sn0"], dtype=float)
        ts = inputs["t"]
        term = diffrax.ODETerm(lambda t, v, args: cell.rhs(t, v, cell.hold_bitline_voltage))
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            0.0,
            ts[-1],
            ts[0] * 1e-3,
            v0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-9),
            max_steps=4096,
            adjoint=diffrax.ForwardMode(),
            throw=False,
        )
        ok = sol.result == diffrax.RESULTS.successful
        return jnp.where(ok, cell.read_current(jnp.where(ok, sol.ys, v0)), jnp.nan)


def hold_retention(
    data: Dataset, *, v_sn0: float | None = None, floor: float = 0.0, name: str | None = None
) -> Experiment:
    """A 2T0C retention trace: the read current I_read [A] at times t [s] (> 0, increasing) of a hold at the
    temperature T [K] of the file (one value), after writing V_SN = ``v_sn0`` [V] (default the top level,
    ``window_high``); compared as log10|I|. Fitting traces at two or more temperatures together determines
    the off-state leakage and its activation energy."""
    data.require("t", "T", "I_read")
    t, temp = data["t"], data["T"]
    if np.any(temp != temp[0]):
        k = int(np.flatnonzero(temp != temp[0])[0])
        raise ValueError(
            f"{data.where('T', k)}: a retention trace is at one temperature; got {temp[k]!r} K "
            f"after {temp[0]!r} K (give one file per temperature)"
        )
    if t[0] <= 0:
        raise ValueError(f"{data.where('t', 0)}: hold times must be > 0 s (t = 0 is the end of the write)")
    inputs = {
        "t": jnp.asarray(t),
        "temperature": jnp.asarray(float(temp[0])),
        "v_sn0": None if v_sn0 is None else jnp.asarray(float(v_sn0)),
    }
    return Experiment(
        _Hold(),
        inputs,
        data["I_read"],
        residual=LogAbs(float(floor)),
        x=t,
        x_label=data.label("t"),
        y_label=data.label("I_read"),
        log_x=True,
        name=name or _name(data, f"retention at {float(temp[0]):.5g} K"),
    )
