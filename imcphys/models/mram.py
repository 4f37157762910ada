r"""STT-MRAM: a perpendicular magnetic tunnel junction (pMTJ) as a macrospin — stochastic LLGS dynamics, closed
forms for its switching, write-error rate and read.

Sources. Model structure and default parameters: Arm's MRAM simulation framework (BSD-3), Verilog-A compact model
``llg_parameters.va``, ``dimension_parameters.va``, ``conductance_parameters.va`` (F. García-Redondo, P. Prabhat;
github.com/ARM-software/mram_simulation_framework, commit 727de96): K_i 1e-3 J/m², M_s 1.2e6 A/m, free layer
1.0 nm, 50 nm wide, α 0.01, N_x = N_y 0.029, N_z 0.941, P 0.75, R_P 6 kΩ, TMR 2P²/(1 − P²) = 2.571. Thermal
field: W. F. Brown, Phys. Rev. 130, 1677 (1963). Spin-transfer torque: J. C. Slonczewski, J. Magn. Magn. Mater.
159, L1 (1996); A. V. Khvalkovskiy et al., J. Phys. D 46, 074001 (2013). Precessional time: J. Z. Sun, Phys. Rev.
B 62, 570 (2000). Switching distribution of the linearised macrospin with thermal noise: W. H. Butler et al.,
IEEE Trans. Magn. 48(12), 4684 (2012). Bias dependence of the TMR: Y. Zhang et al., IEEE Trans. Electron Devices
59(3), 819 (2012).

**State**: the unit vector m of the free-layer magnetisation (m_x, m_y, m_z). The reference layer is fixed along
p = +ẑ: parallel (P, low resistance) is m = +ẑ, antiparallel (AP) is m = −ẑ; cos θ = m·p = m_z.
**Drive**: the current I [A] through the junction, signed: I > 0 pushes m toward p (AP → P, "SET": the read
current rises), I < 0 away from it (P → AP, "RESET").

**Stochastic Landau–Lifshitz–Gilbert–Slonczewski equation** (Landau–Lifshitz form, Stratonovich), with
γ' = γ/(1 + α²), γ the electron gyromagnetic ratio and fields in A/m:

.. math::

    \frac{dm}{dt} &= -\gamma'\mu_0\big[m\times H + \alpha\, m\times(m\times H)\big]
        - \gamma'\mu_0\, a_J \big[m\times(m\times p) - \alpha\, m\times p\big] \\
    H &= \frac{2K_i}{t\,\mu_0 M_s} m_z\hat z - M_s(N_x m_x, N_x m_y, N_z m_z) + H_{th},
        \qquad a_J = \frac{\hbar\,\eta\,I}{2e\,\mu_0 M_s V},\quad \eta = \frac{P}{1 + P^2} \\
    \langle H_{th,i}(t) H_{th,j}(t')\rangle &= \frac{2\alpha k T}{\gamma\mu_0^2 M_s V}\,\delta_{ij}\delta(t - t')
        \qquad\text{(Brown; } V = \pi d^2 t/4)

The isotropic part −M_s N_x m of the demagnetising field exerts no torque, so the junction sees the uniaxial field
H_k m_z ẑ with H_k = 2K_i/(tμ_0M_s) − M_s(N_z − N_x). Derived quantities:

.. math::

    \Delta = \frac{\mu_0 M_s H_k V}{2kT},\qquad I_{c0} = \frac{4e\alpha kT\Delta}{\hbar\eta}
        = \frac{2e\alpha\mu_0 M_s H_k V}{\hbar\eta},\qquad t_D = \frac{1 + \alpha^2}{\alpha\gamma\mu_0 H_k}

(Δ = 82.9, I_c0 = 43.5 µA, t_D = 1.95 ns for the defaults at 300 K). With p ∥ ẑ ∥ H_k the polar angle θ from
the starting pole obeys t_D dθ/dt = sin θ (i − cos θ), i = |I|/I_c0, exactly (zero temperature).

Assumptions. η = P/(1 + P²) is Slonczewski's MTJ efficiency P/(1 + P² cos θ) at the parallel state, used for
both directions and all angles (assumed: the angular and P/AP asymmetry of η is left out, so that I_c0 is one
number and the closed forms are exact for the SDE's drift); no field-like torque, no VCMA, no temperature
dependence of M_s or K_i; the temperature is a parameter (an input: ``imcphys.replace(dev, temperature=...)``).

**Resistance** (Julliere TMR with the bias dependence of Zhang et al. 2012), R_P = RA/(πd²/4):

.. math::

    R(\theta, V) = R_P\,\frac{1 + V^2/V_h^2 + \mathrm{TMR}}{1 + V^2/V_h^2 + \mathrm{TMR}(1 + \cos\theta)/2}

so R_AP(V) = R_P(1 + TMR/(1 + V²/V_h²)). Under a current I the junction voltage solves V = I·R(θ, V) (Newton,
:meth:`STTMRAM.voltage`); the power is I·V.

**Closed forms** beside the SDE (:meth:`STTMRAM.switching_probability`, chosen by regime at i = 1):

- *thermal activation*, i < 1: P_sw = 1 − exp(−t/τ), τ = τ_0 exp(Δ(1 − i)²) (PMA exponent 2, τ_0 = 1 ns
  assumed). Valid while the barrier Δ(1 − i)² is several kT (i ≲ 1 − √(3/Δ), 0.81 at Δ = 83) and t ≫ τ_0.
- *precessional*, i ≥ 1: Sun's time t_sw = t_D ln(π/(2θ_0))/(i − 1), θ_0 = 1/√(2Δ), is the time a junction
  starting at the thermal angle θ_0 takes to reach the equator in the small-angle linearisation. With the
  thermal spread of the initial angle and the thermal field during the pulse (the linearised problem is a 2-D
  Ornstein–Uhlenbeck process), P_sw = exp(−(π²Δ/4)/v), v = 1 + (2t/t_D)·i·(e^y − 1)/y, y = 2(i − 1)t/t_D —
  Butler et al. 2012's form (i − 1)/(i e^y − 1), written to be smooth through i = 1. Valid for i − 1 ≫ 1/√Δ.
  Measured against the SDE at Δ = 83 (1e5 junctions, WER 1e-3 … 0.5): the closed-form WER is ×1.7–3.9 the SDE's
  at 1.5·I_c0, ×1.3–1.8 at 2·I_c0, ×1.06–1.09 at 3·I_c0 and ×0.90–0.93 at 4·I_c0 (the linearisation puts the
  switching point at π/2, where the nonlinear drift has its own, i-dependent one); Sun's time is 20 %, 9.5 % and
  2.6 % above the mean switching time at 2, 3 and 5·I_c0.

Neither form holds in the crossover 0.8 ≲ i ≲ 1.5 (at Δ = 83): :meth:`~STTMRAM.switching_probability` jumps at
i = 1 (documented, not smoothed: a smooth join would invent a fast-switching region near I_c0 that an optimiser
would exploit). Gradients are exact within each regime. Across every regime,
:meth:`~STTMRAM.mean_switching_time` gives the exact mean first-passage time of the junction's Fokker–Planck
equation by quadrature (differentiable; the SDE's means agree with it within their standard errors, tests).

**Paths.** ``rhs`` is the deterministic (zero-temperature) LLGS, so the generic ``imcphys.simulate`` and the
adaptive ``pulse`` solve it with diffrax. The thermal SDE has three front ends: :func:`sde_solve` (diffrax,
``MultiTerm(ODETerm, ControlTerm)`` with a ``VirtualBrownianTree`` and the Stratonovich ``diffrax.Heun``, lab
frame: the reference), ``pulse(..., fixed_steps=n, key=k)`` (one pulse, energy included, used by
program-and-verify) and :func:`mram_switching_time` / :func:`mram_write_error_rate` (first-switching times of n
junctions: the production path for write-error rates). The fixed-step paths are one jitted kernel each:
stochastic Heun (Stratonovich) steps on a uniform mesh with m renormalised after every step, the vector field
evaluated at m/|m| (tangent to the sphere, so the exact solution keeps |m| = 1), three normals per step from the
junction's key (the fused Threefry of :mod:`imcphys._random`, 24-bit normals: the increments of a Wiener process
need no more). They run in the frame that turns about ẑ with the precession (``frame="rotating"``, see
:func:`_velocity`): for this axially symmetric junction (N_x = N_y, p ∥ ẑ, no applied field) m_z has exactly the
lab frame's law there, and steps of t_D/100 (20 ps) replace steps of 1/100 of the 0.12 ns precession period; the
lab-frame kernel (``frame="lab"``) is kept and checked pathwise against diffrax, and the two frames give the same
switching-time distribution (tests). In the rotating frame m_x and m_y are not the lab's (the azimuth is
random anyway); m_z, the resistance and the energy are. Junctions start from the Boltzmann distribution of their
state (:meth:`STTMRAM.thermal_state`, exact: inverse CDF of p(cos θ) ∝ exp(Δ cos²θ) through Dawson's function).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import _random
from .._checks import check_less, check_range, is_concrete
from .._integrate import PulseResult, solve_pulse as _solve_pulse
from ..constants import K_B, H, Q
from ..device import AbstractDevice, param
from ..stimulus import Pulse

#: Vacuum permeability μ_0 [N/A²] (CODATA 2018).
MU_0 = 1.25663706212e-6
#: Electron gyromagnetic ratio γ_e [rad/(s·T)] (CODATA 2018, magnitude).
GAMMA_E = 1.76085963023e11
#: Reduced Planck constant ħ [J·s] (exact, from h).
HBAR = H / (2.0 * math.pi)

#: Default mesh of the fixed-step SDE paths in the rotating frame: steps per t_D.
STEPS_PER_TD = 100
#: Default mesh in the lab frame: steps per precession period 2π(1 + α²)/(γμ_0H_k).
STEPS_PER_PERIOD = 100

_STATES = {"p": 1.0, "set": 1.0, "parallel": 1.0, "ap": -1.0, "reset": -1.0, "antiparallel": -1.0}


def _pole(which: str) -> float:
    if which not in _STATES:
        raise ValueError(f"which must be one of {sorted(_STATES)}; got {which!r}")
    return _STATES[which]


def _exprel(y: Array) -> Array:
    """(e^y − 1)/y, 1 at y = 0, gradient-safe; y clipped at 600 (beyond it the WER is below 1e-250)."""
    y = jnp.minimum(y, 600.0)
    small = jnp.abs(y) < 1e-8
    safe = jnp.where(small, 1.0, y)
    return jnp.where(small, 1.0 + 0.5 * y, jnp.expm1(safe) / safe)


class STTMRAM(AbstractDevice):
    """A perpendicular STT-MRAM junction (macrospin) — see the module docstring for the equations.

    ``STTMRAM()`` has Arm's Verilog-A defaults (``devices/mram_pmtj.toml``). State: the unit magnetisation
    vector m, shape (3,) (P: m_z = +1, AP: m_z = −1). Drive: the junction current [A], > 0 toward P.
    ``read`` returns the read current [A] at ``read_voltage``.
    """

    #: K_i, interfacial perpendicular anisotropy
    interface_anisotropy: Float[Array, "..."] = param(1e-3, "J/m^2", lower=0.0, lower_open=True)
    #: M_s, saturation magnetisation of the free layer
    saturation_magnetization: Float[Array, "..."] = param(1.2e6, "A/m", lower=0.0, lower_open=True)
    #: t, free-layer thickness
    free_layer_thickness: Float[Array, "..."] = param(1.0e-9, "m", lower=0.0, lower_open=True, upper=1e-7)
    #: d, junction diameter (circular cross-section)
    diameter: Float[Array, "..."] = param(50e-9, "m", lower=0.0, lower_open=True, upper=1e-6)
    damping: Float[Array, "..."] = param(0.01, "1", lower=0.0, lower_open=True, upper=1.0)  #: α, Gilbert damping
    #: N_x = N_y, in-plane demagnetising factor
    demag_x: Float[Array, "..."] = param(0.029, "1", lower=0.0, upper=0.5)
    demag_z: Float[Array, "..."] = param(0.941, "1", lower=0.0, upper=1.0)  #: N_z, out-of-plane demagnetising factor
    #: P, spin polarisation (η = P/(1 + P²))
    polarization: Float[Array, "..."] = param(0.75, "1", lower=0.0, lower_open=True, upper=1.0, upper_open=True)
    tmr: Float[Array, "..."] = param(18.0 / 7.0, "1", lower=0.0)  #: TMR at 0 V, (R_AP − R_P)/R_P
    #: RA, resistance-area product of the parallel state (R_P = RA/(πd²/4); 6 kΩ at 50 nm)
    resistance_area: Float[Array, "..."] = param(6e3 * math.pi / 4 * 50e-9**2, "ohm*m^2", lower=0.0, lower_open=True)
    #: V_h, bias at which the TMR has fallen to half
    tmr_half_voltage: Float[Array, "..."] = param(0.5, "V", lower=0.0, lower_open=True)
    temperature: Float[Array, "..."] = param(300.0, "K", lower=0.0)  #: T, junction temperature (0: no thermal field)
    attempt_time: Float[Array, "..."] = param(1e-9, "s", lower=0.0, lower_open=True)  #: τ_0 of thermal activation
    read_voltage: Float[Array, "..."] = param(0.1, "V", lower=0.0, lower_open=True, upper=2.0)  #: V_read of ``read``
    max_current: float = eqx.field(static=True, default=500e-6)  #: largest |write current| allowed [A]
    #: zero-current relaxation appended to every ``pulse`` [s] (its duration counts; 0: none)
    settle_time: float = eqx.field(static=True, default=0.0)

    def check_relations(self) -> None:
        # The easy axis must be perpendicular: the interface anisotropy field beats the shape anisotropy.
        check_less(
            "STTMRAM shape anisotropy M_s(N_z − N_x)",
            self.saturation_magnetization * (self.demag_z - self.demag_x),
            "STTMRAM interface anisotropy field 2K_i/(t μ0 M_s)",
            self._interface_field(),
            "A/m",
        )
        check_range("STTMRAM.max_current", self.max_current, lower=0.0, lower_open=True, unit="A")
        check_range("STTMRAM.settle_time", self.settle_time, lower=0.0, unit="s")

    # ------------------------------------------------------------------------------------- magnetics
    def area(self) -> Float[Array, "..."]:
        """Junction area πd²/4 [m²]."""
        return math.pi / 4.0 * self.diameter**2

    def volume(self) -> Float[Array, "..."]:
        """Free-layer volume V = πd²t/4 [m³]."""
        return self.area() * self.free_layer_thickness

    def _interface_field(self) -> Array:
        return 2.0 * self.interface_anisotropy / (self.free_layer_thickness * MU_0 * self.saturation_magnetization)

    def anisotropy_field(self) -> Float[Array, "..."]:
        """Effective perpendicular anisotropy field H_k = 2K_i/(tμ_0M_s) − M_s(N_z − N_x) [A/m]."""
        return self._interface_field() - self.saturation_magnetization * (self.demag_z - self.demag_x)

    def thermal_stability(self) -> Float[Array, "..."]:
        """Δ = μ_0 M_s H_k V/(2kT) [1] (inf at T = 0)."""
        energy = MU_0 * self.saturation_magnetization * self.anisotropy_field() * self.volume() / 2.0
        t = self.temperature
        return jnp.where(t > 0, energy / (K_B * jnp.where(t > 0, t, 1.0)), jnp.inf)

    def spin_torque_efficiency(self) -> Float[Array, "..."]:
        """η = P/(1 + P²) [1] (Slonczewski's MTJ efficiency at the parallel state; assumed for all angles)."""
        return self.polarization / (1.0 + self.polarization**2)

    def critical_current(self) -> Float[Array, "..."]:
        """I_c0 = 4eαkTΔ/(ħη) = 2eαμ_0M_sH_kV/(ħη) [A], the zero-temperature instability current."""
        return (
            2.0
            * Q
            * self.damping
            * MU_0
            * self.saturation_magnetization
            * self.anisotropy_field()
            * self.volume()
            / (HBAR * self.spin_torque_efficiency())
        )

    def dynamic_time(self) -> Float[Array, "..."]:
        """t_D = (1 + α²)/(αγμ_0H_k) [s], the relaxation time of the polar angle."""
        return (1.0 + self.damping**2) / (self.damping * GAMMA_E * MU_0 * self.anisotropy_field())

    def precession_period(self) -> Float[Array, "..."]:
        """2π(1 + α²)/(γμ_0H_k) [s], the precession period about the easy axis near a pole."""
        return 2.0 * math.pi * (1.0 + self.damping**2) / (GAMMA_E * MU_0 * self.anisotropy_field())

    def thermal_field_std(self) -> Float[Array, "..."]:
        """σ = √(2αkT/(γμ_0²M_sV)) [A/m·√s]: H_th dt = σ dW (Brown 1963)."""
        return jnp.sqrt(
            2.0
            * self.damping
            * K_B
            * self.temperature
            / (GAMMA_E * MU_0**2 * self.saturation_magnetization * self.volume())
        )

    def initial_angle(self) -> Float[Array, "..."]:
        """θ_0 = 1/√(2Δ) [rad], the thermal angle of Sun's formula (0 at T = 0)."""
        return jnp.sqrt(0.5 / self.thermal_stability())

    # ------------------------------------------------------------------------------------ resistance
    def parallel_resistance(self) -> Float[Array, "..."]:
        """R_P = RA/(πd²/4) [Ω]."""
        return self.resistance_area / self.area()

    def tmr_at(self, voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """TMR(V) = TMR/(1 + V²/V_h²) [1] at the junction voltage ``voltage`` [V]."""
        return self.tmr / (1.0 + (jnp.asarray(voltage) / self.tmr_half_voltage) ** 2)

    def resistance(
        self, cos_theta: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."] = 0.0
    ) -> Float[Array, "..."]:
        """R(θ, V) = R_P(1 + V²/V_h² + TMR)/(1 + V²/V_h² + TMR(1 + cos θ)/2) [Ω] at cos θ = m_z and ``voltage`` [V]."""
        x = (jnp.asarray(voltage) / self.tmr_half_voltage) ** 2
        c = jnp.asarray(cos_theta)
        return self.parallel_resistance() * (1.0 + x + self.tmr) / (1.0 + x + self.tmr * (1.0 + c) / 2.0)

    def voltage(self, cos_theta: Float[ArrayLike, "..."], current: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The junction voltage V [V] under ``current`` [A]: the root of V = I·R(θ, V) (unique: R falls with |V|),
        by Newton from V = I·R(θ, 0) (residual below 1e-13 V after the 6 steps taken, tested)."""
        c = jnp.asarray(cos_theta)
        i = jnp.asarray(current)
        rp, vh2 = self.parallel_resistance(), self.tmr_half_voltage**2
        a = 1.0 + self.tmr
        b = 1.0 + self.tmr * (1.0 + c) / 2.0
        v = i * rp * a / b
        for _ in range(6):
            x = v * v / vh2
            g = v - i * rp * (a + x) / (b + x)
            dg = 1.0 + i * rp * (a - b) * 2.0 * v / (vh2 * (b + x) ** 2)
            v = v - g / dg
        return v

    def current(self, cos_theta: Float[ArrayLike, "..."], voltage: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The junction current V/R(θ, V) [A] under ``voltage`` [V] (a voltage-driven junction)."""
        return jnp.asarray(voltage) / self.resistance(cos_theta, voltage)

    # ----------------------------------------------------------------------------------- closed forms
    def _ratio(self, current: ArrayLike) -> Array:
        return jnp.abs(jnp.asarray(current)) / self.critical_current()

    def thermal_switching_time(self, current: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """τ = τ_0 exp(Δ(1 − i)²) [s], i = |I|/I_c0: the mean time of thermally activated switching (valid for
        i < 1 with Δ(1 − i)² ≳ 3; for i ≥ 1 the barrier has gone and this returns τ_0)."""
        barrier = self.thermal_stability() * jnp.maximum(1.0 - self._ratio(current), 0.0) ** 2
        return self.attempt_time * jnp.exp(jnp.minimum(barrier, 700.0))

    def precessional_switching_time(self, current: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Sun's time t_D ln(π/(2θ_0))/(i − 1) [s], θ_0 = 1/√(2Δ), i = |I|/I_c0: the time to reach the equator
        from θ_0 in the small-angle linearisation (valid for i − 1 ≫ 1/√Δ; inf for i ≤ 1)."""
        excess = self._ratio(current) - 1.0
        pos = excess > 0
        return jnp.where(
            pos,
            self.dynamic_time() * jnp.log(math.pi / (2.0 * self.initial_angle())) / jnp.where(pos, excess, 1.0),
            jnp.inf,
        )

    def _precessional_log_survival(self, ratio: Array, width: Array) -> Array:
        """K/v of the linearised (Ornstein–Uhlenbeck) model: P_sw = exp(−K/v), K = π²Δ/4."""
        tau = width / self.dynamic_time()
        v = 1.0 + 2.0 * tau * ratio * _exprel(2.0 * (ratio - 1.0) * tau)
        return (math.pi**2 / 4.0) * self.thermal_stability() / v

    def mean_switching_time(self, current: Float[ArrayLike, ""], points: int = 16001) -> Float[Array, ""]:
        """The exact mean first-passage time [s] to the equator under a constant ``current`` [A], from the
        Boltzmann state of the well it pushes away from: every regime, no closed-form approximation (the
        axially symmetric macrospin's Fokker–Planck equation in s = cos θ, θ from the starting pole, solved by
        quadrature on ``points`` angles).

        ∂p/∂t = ∂_s[B(∂_s p + p ∂_sΦ)], B = (1 − s²)/(2Δt_D), Φ = −Δ(s − i)² (drift −(1 − s²)(i − s)/t_D of the
        LLGS, Boltzmann's e^{Δs²} at i = 0); reflecting at s = 1, absorbing at s = 0:
        T(s_0) = ∫_0^{s_0} e^{Φ(y)}/B(y) ∫_y^1 e^{−Φ(z)} dz dy, averaged over p_0(s_0) ∝ e^{Δs_0²}. Differentiable;
        inf at T = 0 (a junction at the pole never leaves it).
        """
        delta = self.thermal_stability()
        finite = jnp.isfinite(delta)
        d = jnp.where(finite, delta, 1.0)
        r = self._ratio(current)
        th = jnp.linspace(0.0, math.pi / 2, points)
        h = th[1] - th[0]
        s, sin = jnp.cos(th), jnp.sin(th)
        g = d * (s - r) ** 2

        # K(θ) = e^{−g(θ)} ∫_0^θ e^{g(θ')} sin θ' dθ' by its trapezoidal recurrence (no overflow at any Δ or i)
        def step(k, x):
            dg, sin0, sin1 = x
            decay = jnp.exp(-dg)
            return k * decay + 0.5 * h * (sin0 * decay + sin1), None

        def scan_k(carry, x):
            k, _ = step(carry, x)
            return k, k

        _, ks = jax.lax.scan(scan_k, jnp.zeros(()), (g[1:] - g[:-1], sin[:-1], sin[1:]))
        sq = jnp.sqrt(d)
        p0 = 1.0 - jnp.exp(d * (s[1:] ** 2 - 1.0)) * jax.scipy.special.dawsn(sq * s[1:]) / jax.scipy.special.dawsn(sq)
        f = jnp.concatenate([jnp.zeros(1), ks / sin[1:] * p0])
        mean = 2.0 * d * self.dynamic_time() * h * (jnp.sum(f) - 0.5 * (f[0] + f[-1]))
        return jnp.where(finite, mean, jnp.inf)

    def switching_probability(
        self, current: Float[ArrayLike, "..."], width: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """Expected probability [1] that a rectangular pulse of ``current`` [A] and ``width`` [s] switches a
        junction that starts (thermalised) in the state the current pushes away from.

        Chosen by regime (module docstring): thermal activation 1 − exp(−t/τ) for i = |I|/I_c0 < 1, the
        linearised precessional form exp(−(π²Δ/4)/v) (Butler 2012, Sun's time as its noise-free limit) for
        i ≥ 1. Smooth and differentiable in current, width and every parameter within each regime.
        """
        return -jnp.expm1(self.log_write_error_rate(current, width))

    def write_error_rate(self, current: Float[ArrayLike, "..."], width: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """1 − :meth:`switching_probability` [1], computed without cancellation (accurate down to 1e-300)."""
        return jnp.exp(self.log_write_error_rate(current, width))

    def log_write_error_rate(
        self, current: Float[ArrayLike, "..."], width: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """ln(WER) of :meth:`write_error_rate` (gradient-safe on both regimes: the branch not taken is kept
        finite)."""
        ratio = self._ratio(current)
        width = jnp.asarray(width)
        thermal = ratio < 1.0
        # thermal branch, evaluated at a ratio kept below 1
        r_th = jnp.where(thermal, ratio, 0.0)
        log_th = -width / self.thermal_switching_time(r_th * self.critical_current())
        # precessional branch, evaluated at a ratio kept at or above 1
        r_pr = jnp.where(thermal, 1.0, ratio)
        x = self._precessional_log_survival(r_pr, width)
        log_pr = jnp.log(-jnp.expm1(-x))
        return jnp.where(thermal, log_th, log_pr)

    def staircase_write_error_rate(
        self, currents: Float[ArrayLike, " k"], widths: Float[ArrayLike, " k"]
    ) -> Float[Array, ""]:
        """WER [1] of a piecewise-constant write pulse (segments of ``currents`` [A], same sign, for ``widths``
        [s]) in the linearised precessional model: the thermal spread v (in units of its equilibrium 1/(2Δ) per
        component) evolves as v ← e^y v + (2t/t_D)(e^y − 1)/y, y = 2(i − 1)t/t_D per segment, from v = 1, and
        WER = 1 − exp(−(π²Δ/4)/v). One segment gives :meth:`write_error_rate` for i ≥ 1; segments below I_c0 only
        relax the spread (their thermal activation is left out: the model of a write, not of a read)."""
        currents, widths = jnp.atleast_1d(jnp.asarray(currents)), jnp.atleast_1d(jnp.asarray(widths))
        ratio = self._ratio(currents)
        taus = widths / self.dynamic_time()

        def segment(v, rt):
            r, tau = rt
            y = 2.0 * (r - 1.0) * tau
            return jnp.exp(jnp.minimum(y, 600.0)) * v + 2.0 * tau * _exprel(y), None

        v, _ = jax.lax.scan(segment, jnp.ones_like(ratio[0]), (ratio, taus))
        return -jnp.expm1(-(math.pi**2 / 4.0) * self.thermal_stability() / v)

    def write_width(self, current: Float[ArrayLike, "..."], wer_target: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The width [s] of a rectangular pulse of ``current`` [A] whose precessional closed-form WER is
        ``wer_target``: t = t_D ln(1 + (i − 1)(v* − 1)/i)/(2(i − 1)), v* = (π²Δ/4)/(−ln(1 − WER)) (the inverse of
        :meth:`write_error_rate` for i ≥ 1; smooth through i = 1, inf where the target is out of reach)."""
        eps = self._ratio(current) - 1.0
        v_star = (math.pi**2 / 4.0) * self.thermal_stability() / -jnp.log1p(-jnp.asarray(wer_target))
        x = eps * (v_star - 1.0) / (1.0 + eps)
        reachable = x > -1.0
        xs = jnp.where(reachable, x, 0.0)
        small = jnp.abs(xs) < 1e-8
        log_ratio = jnp.where(small, 1.0 - 0.5 * xs, jnp.log1p(xs) / jnp.where(small, 1.0, xs))  # ln(1 + x)/x
        width = self.dynamic_time() * (v_star - 1.0) / (2.0 * (1.0 + eps)) * log_ratio
        return jnp.where(reachable, width, jnp.inf)

    def write_energy(
        self, current: Float[ArrayLike, "..."], width: Float[ArrayLike, "..."], initial: str = "ap"
    ) -> Float[Array, "..."]:
        """|I|·V(θ_start, I)·width [J]: the energy of a rectangular write pulse at the resistance of the state it
        starts from (``initial``: "ap" for a SET, an upper bound as R falls once switched; "p" for a RESET, a
        lower bound). The SDE's ``pulse`` integrates I·V along the trajectory instead."""
        i = jnp.asarray(current)
        return jnp.abs(i * self.voltage(_pole(initial), i)) * jnp.asarray(width)

    def read_disturb_probability(self, read_time: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Probability [1] that a read pulse of ``read_time`` [s] at ``read_voltage`` switches a junction: the
        read current flows toward P, so it is the AP junction at I = V_read/R_AP(V_read) (thermal regime of
        :meth:`switching_probability`)."""
        return self.switching_probability(self.current(-1.0, self.read_voltage), read_time)

    # ------------------------------------------------------------------------------ device interface
    def _llgs(self) -> _LLGS:
        return _LLGS(
            h_perp=self._interface_field(),
            h_k=self.anisotropy_field(),
            ms_nx=self.saturation_magnetization * self.demag_x,
            ms_nz=self.saturation_magnetization * self.demag_z,
            torque_per_amp=HBAR
            * self.spin_torque_efficiency()
            / (2.0 * Q * MU_0 * self.saturation_magnetization * self.volume()),
            gamma_prime=GAMMA_E * MU_0 / (1.0 + self.damping**2),
            alpha=self.damping,
            sigma=self.thermal_field_std(),
        )

    def rhs(self, t, state, drive):
        """dm/dt [1/s] of the deterministic LLGS (zero thermal field) under the current ``drive`` [A]."""
        del t
        c = self._llgs()
        v = _velocity(c, state[0], state[1], state[2], c.torque_per_amp * drive, 0.0, 0.0, 0.0)
        return jnp.stack(v)

    def thermal_diffusion(self, state: Float[ArrayLike, " 3"]) -> Float[Array, "3 3"]:
        """G [1/√s] of the Stratonovich SDE dm = rhs dt + G ∘ dW, dW a 3-D Wiener process [√s]: the thermal field
        σ dW through the precession and damping terms, G h = −γ'μ_0σ[m×h + α m×(m×h)] at m/|m|."""
        c = self._llgs()
        m = jnp.asarray(state)
        cols = [jnp.stack(_velocity(c, m[0], m[1], m[2], 0.0, *(c.sigma * e), frame="noise")) for e in jnp.eye(3)]
        return jnp.stack(cols, axis=1)

    def read(self, state: Float[ArrayLike, "... 3"]) -> Float[Array, "..."]:
        """Read current V_read/R(θ, V_read) [A] of the junction in ``state``."""
        return self.current(jnp.asarray(state)[..., 2], self.read_voltage)

    def observe(self, state, drive):
        """The junction voltage [V] under the current ``drive`` [A]."""
        return self.voltage(jnp.asarray(state)[..., 2], drive)

    def power(self, state, drive):
        """I·V [W] under the current ``drive`` [A]."""
        return drive * self.voltage(jnp.asarray(state)[..., 2], drive)

    def project(self, state):
        """m/|m|: the magnetisation stays on the unit sphere."""
        m = jnp.asarray(state)
        return m / jnp.linalg.norm(m, axis=-1, keepdims=True)

    def initial_state(self, which: str = "ap") -> Float[Array, " 3"]:
        """``"ap"`` (or ``"reset"``) or ``"p"`` (``"set"``): the pole tilted by Sun's thermal angle θ_0 = 1/√(2Δ)
        toward +x (deterministic; exactly the pole at T = 0). :meth:`thermal_state` draws a thermalised one."""
        s = _pole(which)
        th = self.initial_angle()
        return jnp.stack([jnp.sin(th), jnp.zeros_like(th), s * jnp.cos(th)])

    def thermal_state(self, which: str = "ap", *, key: PRNGKeyArray) -> Float[Array, " 3"]:
        """A state drawn from the Boltzmann distribution of the ``which`` well: p(cos θ) ∝ exp(Δcos²θ) on the
        hemisphere (θ from the pole), azimuth uniform; exact (inverse CDF through Dawson's function)."""
        s = _pole(which)
        k_cos, k_phi = jr.split(key)
        u = jr.uniform(k_cos, dtype=jnp.result_type(float))
        phi = jr.uniform(k_phi, dtype=jnp.result_type(float), maxval=2.0 * math.pi)
        cos = _boltzmann_cos(self.thermal_stability(), u)
        sin = jnp.sqrt(jnp.maximum(1.0 - cos * cos, 0.0))
        return jnp.stack([sin * jnp.cos(phi), sin * jnp.sin(phi), s * cos])

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """SET (AP → P) currents (0, +max_current] A, RESET (P → AP) currents [−max_current, 0) A."""
        return (0.0, self.max_current), (-self.max_current, 0.0)

    def pulse(
        self,
        state,
        amplitude,
        width,
        *,
        rise=0.0,
        fall=0.0,
        fixed_steps: int | None = None,
        key: PRNGKeyArray | None = None,
    ) -> PulseResult:
        """A current pulse of ``amplitude`` [A] (trapezoid: ``rise``, plateau ``width``, ``fall`` [s]), then
        ``settle_time`` at zero current. Energy ∫ I·V dt [J]; duration includes the settling.

        ``key`` given: the thermal SDE (needs ``fixed_steps``: that many stochastic Heun steps over the pulse, and
        as many over the settling). No key: the deterministic LLGS — adaptive (diffrax, the reference) without
        ``fixed_steps``, else the same Heun kernel with the thermal field off.
        """
        if key is None and fixed_steps is None:
            res = _solve_pulse(self, state, amplitude, width, rise=rise, fall=fall, max_steps=65536)
            if self.settle_time > 0:
                rest = _solve_pulse(self, res.state, 0.0, self.settle_time, max_steps=65536)
                res = PulseResult(state=rest.state, energy=res.energy, duration=res.duration + rest.duration)
            return res
        if not isinstance(fixed_steps, int) or isinstance(fixed_steps, bool) or fixed_steps < 1:
            raise ValueError(
                f"the thermal SDE (key=...) needs the fixed-step path: fixed_steps must be a positive integer; "
                f"got {fixed_steps!r}"
            )
        stim = Pulse(amplitude, width, rise=rise, fall=fall)
        words = None if key is None else _random.key_words(key)
        m, energy = _pulse_kernel(self, jnp.asarray(state), stim, stim.duration, fixed_steps, words, 0)
        duration = stim.duration
        if self.settle_time > 0:
            rest = Pulse(0.0, self.settle_time)
            m, _ = _pulse_kernel(self, m, rest, rest.duration, fixed_steps, words, fixed_steps)
            duration = duration + self.settle_time
        return PulseResult(state=m, energy=energy, duration=duration)


# ----------------------------------------------------------------------------------------- the kernels
class _LLGS(NamedTuple):
    """Constants of the LLGS of one junction, SI."""

    h_perp: Array  #: 2K_i/(tμ_0M_s) [A/m]
    h_k: Array  #: H_k [A/m]
    ms_nx: Array  #: M_s N_x [A/m]
    ms_nz: Array  #: M_s N_z [A/m]
    torque_per_amp: Array  #: a_J/I = ħη/(2eμ_0M_sV) [A/m per A]
    gamma_prime: Array  #: γμ_0/(1 + α²) [m/(A·s)]
    alpha: Array  #: α
    sigma: Array  #: thermal field σ [A/m·√s]


def _velocity(c: _LLGS, mx, my, mz, a_j, wx, wy, wz, *, frame: str = "lab"):
    """dm/dt [1/s] at u = m/|m| under the spin-torque field ``a_j`` [A/m] and the thermal field w [A/m].

    ``frame="lab"``: the full LLGS. ``"rotating"``: the same in the frame that turns about ẑ with the
    precession, Ω = γ'μ_0(H_k u_z − α a_J): the precession about the (axial) effective field and the α u×p
    part of the torque drop out, and the thermal field seen in that frame, R_z(−φ)·σ dW with φ adapted, is again
    isotropic white noise (Lévy's characterisation), so m_z has exactly the law of the lab frame's. What is left
    moves on the scale of t_D only: steps a few % of t_D instead of a few % of the precession period (40x
    shorter at α = 0.01). ``"noise"``: the torque of w alone, −γ'μ_0[u×w + α u×(u×w)].
    """
    inv = jax.lax.rsqrt(mx * mx + my * my + mz * mz)
    ux, uy, uz = mx * inv, my * inv, mz * inv
    g = -c.gamma_prime
    # u×(u×ẑ) = (u_x u_z, u_y u_z, u_z² − 1): damping toward the easy axis and the damping-like spin torque
    ax, ay, az = ux * uz, uy * uz, uz * uz - 1.0
    if frame == "lab":
        # the demagnetising field's isotropic part −M_s N_x u exerts no torque; kept for the record of H
        bx, by, bz = wx - c.ms_nx * ux, wy - c.ms_nx * uy, wz + (c.h_perp - c.ms_nz) * uz
        px, py, pz = uy * bz - uz * by, uz * bx - ux * bz, ux * by - uy * bx  # u × B
        dx, dy, dz = uy * pz - uz * py, uz * px - ux * pz, ux * py - uy * px  # u × (u × B)
        # Slonczewski torque a_J[u×(u×ẑ) − α u×ẑ], u×ẑ = (u_y, −u_x, 0)
        return (
            g * (px + c.alpha * dx + a_j * (ax - c.alpha * uy)),
            g * (py + c.alpha * dy + a_j * (ay + c.alpha * ux)),
            g * (pz + c.alpha * dz + a_j * az),
        )
    px, py, pz = uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx  # u × w
    dx, dy, dz = uy * pz - uz * py, uz * px - ux * pz, ux * py - uy * px  # u × (u × w)
    if frame == "noise":
        return g * (px + c.alpha * dx), g * (py + c.alpha * dy), g * (pz + c.alpha * dz)
    q = c.alpha * c.h_k * uz + a_j
    return g * (px + c.alpha * dx + q * ax), g * (py + c.alpha * dy + q * ay), g * (pz + c.alpha * dz + q * az)


def _normals3(words, step):
    """Three standard normals (24-bit) for step ``step`` from the key words: two Threefry blocks."""
    k0, k1 = words
    n = jnp.asarray(step).astype(jnp.uint32)
    y0, y1 = _random.threefry2x32(k0, k1, n, jnp.uint32(0))
    y2, _ = _random.threefry2x32(k0, k1, n, jnp.uint32(1))
    dtype = jnp.result_type(float)
    return tuple(_random._to_normal(y, None, jnp.float32).astype(dtype) for y in (y0, y1, y2))


def _heun(c: _LLGS, m, a0, a1, h, z, frame: str):
    """One stochastic Heun step (Stratonovich) of length h [s] with spin-torque fields a0, a1 [A/m] at its ends
    and standard normals z (or None: no thermal field), in ``frame`` (see :func:`_velocity`); m renormalised
    after the step."""
    mx, my, mz = m
    if z is None:
        wx = wy = wz = 0.0
    else:
        s = c.sigma / jnp.sqrt(h)  # thermal field of the step: σ ΔW/h, ΔW = √h z
        wx, wy, wz = s * z[0], s * z[1], s * z[2]
    v1 = _velocity(c, mx, my, mz, a0, wx, wy, wz, frame=frame)
    v2 = _velocity(c, mx + h * v1[0], my + h * v1[1], mz + h * v1[2], a1, wx, wy, wz, frame=frame)
    mx, my, mz = mx + 0.5 * h * (v1[0] + v2[0]), my + 0.5 * h * (v1[1] + v2[1]), mz + 0.5 * h * (v1[2] + v2[2])
    inv = jax.lax.rsqrt(mx * mx + my * my + mz * mz)
    return mx * inv, my * inv, mz * inv


def _pulse_kernel(dev: STTMRAM, m0: Array, drive, duration, steps: int, words, first_step: int):
    """``steps`` Heun steps (rotating frame) over [0, duration] under the current drive(t) [A]: (m, ∫ I·V dt [J])."""
    c = dev._llgs()
    h = duration / steps

    def step(carry, k):
        m, energy = carry
        i0, i1 = drive(k * h), drive((k + 1) * h)
        z = None if words is None else _normals3(words, first_step + k)
        new = _heun(c, m, c.torque_per_amp * i0, c.torque_per_amp * i1, h, z, "rotating")
        p0, p1 = i0 * dev.voltage(m[2], i0), i1 * dev.voltage(new[2], i1)
        return (new, energy + 0.5 * h * (p0 + p1)), None

    init = ((m0[0], m0[1], m0[2]), jnp.zeros((), jnp.result_type(float)))
    (m, energy), _ = jax.lax.scan(step, init, jnp.arange(steps))
    return jnp.stack(m), energy


def _crossings(c: _LLGS, m, a_j, sign, h, words, first_step, steps: int, t_first, frame: str):
    """``steps`` Heun steps at constant spin-torque field ``a_j`` [A/m] from global step ``first_step``; the first
    time [s] the junction crosses the equator toward the ``sign`` pole (kept if already found, inf if none)."""

    def step(carry, k):
        m, tf = carry
        z = None if words is None else _normals3(words, k)
        new = _heun(c, m, a_j, a_j, h, z, frame)
        before, after = sign * m[2], sign * new[2]
        crossed = (before < 0) & (after >= 0) & jnp.isinf(tf)
        frac = before / jnp.where(crossed, before - after, -1.0)
        return (new, jnp.where(crossed, (k + frac) * h, tf)), None

    (m, tf), _ = jax.lax.scan(step, (m, t_first), first_step + jnp.arange(steps), unroll=1)
    return m, tf


def _start(dev: STTMRAM, current: Array, key: PRNGKeyArray, thermal: bool):
    """Junction key words and its initial state: the well the current pushes away from, thermalised (or the
    deterministic tilt θ_0 when ``thermal`` is False)."""
    k_state, k_noise = jr.split(key)
    sign = jnp.where(current >= 0, 1.0, -1.0)
    ap, p = (
        (dev.thermal_state("ap", key=k_state), dev.thermal_state("p", key=k_state))
        if thermal
        else (dev.initial_state("ap"), dev.initial_state("p"))
    )
    m0 = jnp.where(sign > 0, ap, p)
    return _random.key_words(k_noise), (m0[0], m0[1], m0[2]), sign


def _mesh(dev: STTMRAM, dt: float | None, frame: str) -> Array:
    if dt is not None:
        return jnp.asarray(dt, dtype=float)
    return dev.dynamic_time() / STEPS_PER_TD if frame == "rotating" else dev.precession_period() / STEPS_PER_PERIOD


@eqx.filter_jit
def _switching_times(dev: STTMRAM, current, keys, t_max, h, chunk: int, thermal: bool, frame: str):
    n_chunks = jnp.ceil(t_max / (h * chunk)).astype(int)
    c = dev._llgs()

    def junction(key):
        words, m, sign = _start(dev, current, key, thermal)
        a_j = c.torque_per_amp * current

        def cond(carry):
            j, _, tf = carry
            return (j < n_chunks) & jnp.isinf(tf)

        def body(carry):
            j, m, tf = carry
            m, tf = _crossings(c, m, a_j, sign, h, words, j * chunk, chunk, tf, frame)
            return j + 1, m, tf

        _, _, tf = jax.lax.while_loop(cond, body, (jnp.zeros((), int), m, jnp.asarray(jnp.inf)))
        return jnp.where(tf <= t_max, tf, jnp.inf)

    return jax.vmap(junction)(keys)


def _check_frame(frame: str) -> None:
    if frame not in ("rotating", "lab"):
        raise ValueError(f"frame must be 'rotating' (production) or 'lab' (the full precession); got {frame!r}")


def _check_run(current, n, t_max):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of junctions) must be a positive integer; got {n!r}")
    check_range("current", current, unit="A")
    if is_concrete(current) and float(np.abs(np.asarray(current))) == 0.0:
        raise ValueError("current must be nonzero (its sign chooses the direction of the write) [A]")
    check_range("t_max", t_max, lower=0.0, lower_open=True, unit="s")


def junction_keys(key: PRNGKeyArray, n: int) -> PRNGKeyArray:
    """Keys of junctions 0 … n − 1: junction j gets ``fold_in(key, j)`` (the same whatever n)."""
    return jax.vmap(lambda j: jr.fold_in(key, j))(jnp.arange(n))


def mram_switching_time(
    dev: STTMRAM,
    current: Float[ArrayLike, ""],
    *,
    key: PRNGKeyArray,
    n: int,
    t_max: float = 100e-9,
    dt: float | None = None,
    thermal: bool = True,
    chunk: int = 256,
    frame: str = "rotating",
) -> Float[Array, " n"]:
    """First-switching times [s] of ``n`` junctions under a constant ``current`` [A], from the thermal SDE.

    Each junction starts in the well the current pushes away from (AP for I > 0), drawn from its Boltzmann
    distribution (``thermal=False``: the deterministic tilt θ_0), and is integrated by stochastic Heun steps of
    ``dt`` [s] (default: the precession period / 50) until it first crosses the equator (the time is
    interpolated within the step) or ``t_max`` [s] has passed (then inf). Junction j uses ``fold_in(key, j)``:
    the same key gives bit-identical times, and the first k of n junctions are those of a run with n = k.
    The loop runs in chunks of ``chunk`` steps and stops once every junction has switched.
    """
    _check_run(current, n, t_max)
    if dt is not None:
        check_range("dt", dt, lower=0.0, lower_open=True, unit="s")
    _check_frame(frame)
    h = _mesh(dev, dt, frame)
    keys = junction_keys(key, n)
    current = jnp.asarray(current, dtype=float)
    return _switching_times(dev, current, keys, jnp.asarray(t_max, dtype=float), h, chunk, thermal, frame)


def first_switching_time(
    dev: STTMRAM,
    current: Float[ArrayLike, ""],
    *,
    key: PRNGKeyArray,
    steps: int,
    dt: Float[ArrayLike, ""],
    frame: str = "rotating",
) -> Float[Array, ""]:
    """One junction of :func:`mram_write_error_rate`: its first-switching time [s] (inf if none) within ``steps``
    Heun steps of ``dt`` [s] under ``current`` [A], from its Boltzmann state; traceable (for custom studies,
    vmapped over keys and devices)."""
    c = dev._llgs()
    current = jnp.asarray(current, dtype=float)
    words, m, sign = _start(dev, current, key, True)
    t0 = jnp.full((), jnp.inf, dtype=jnp.result_type(float))
    _, tf = _crossings(c, m, c.torque_per_amp * current, sign, jnp.asarray(dt), words, 0, steps, t0, frame)
    return tf


@eqx.filter_jit
def _fixed_switching_times(dev: STTMRAM, current, keys, steps: int, h, frame: str):
    return jax.vmap(lambda k: first_switching_time(dev, current, key=k, steps=steps, dt=h, frame=frame))(keys)


def mram_write_error_rate(
    dev: STTMRAM,
    current: Float[ArrayLike, ""],
    widths: Float[ArrayLike, " w"],
    *,
    key: PRNGKeyArray,
    n: int,
    dt: float | None = None,
    frame: str = "rotating",
) -> Float[Array, " w"]:
    """Write-error rate [1] of rectangular pulses of ``current`` [A] and each of ``widths`` [s], from the thermal
    SDE over ``n`` junctions: the fraction that has not crossed the equator by the end of the pulse.

    The production path: one jitted kernel of a fixed number of Heun steps (⌈max(widths)/dt⌉, ``dt`` default the
    precession period / 50, adjusted so that the steps end at the longest width) vmapped over the junctions, no
    host loop; every width comes from the same run (a junction's first-switching time against each width).
    """
    widths = jnp.atleast_1d(jnp.asarray(widths, dtype=float))
    check_range("widths", widths, lower=0.0, lower_open=True, unit="s")
    _check_run(current, n, float(np.max(np.asarray(widths))))
    span = float(np.max(np.asarray(widths)))
    _check_frame(frame)
    steps = max(1, math.ceil(span / float(_mesh(dev, dt, frame))))
    h = jnp.asarray(span / steps)
    times = _fixed_switching_times(dev, jnp.asarray(current, dtype=float), junction_keys(key, n), steps, h, frame)
    return jnp.mean(times[:, None] > widths[None, :], axis=0)


# --------------------------------------------------------------------------------- diffrax reference
def sde_terms(dev: STTMRAM, current: Float[ArrayLike, ""], brownian: diffrax.AbstractBrownianPath):
    """The thermal LLGS as diffrax terms: ``MultiTerm(ODETerm(rhs), ControlTerm(G, brownian))`` for a constant
    ``current`` [A]; ``brownian`` a 3-D path [√s] (e.g. ``diffrax.VirtualBrownianTree``). Stratonovich: solve it
    with ``diffrax.Heun`` (or another Stratonovich solver)."""
    drift = diffrax.ODETerm(lambda t, m, args: dev.rhs(t, m, current))
    noise = diffrax.ControlTerm(lambda t, m, args: dev.thermal_diffusion(m), brownian)
    return diffrax.MultiTerm(drift, noise)


def sde_solve(
    dev: STTMRAM,
    m0: Float[ArrayLike, " 3"],
    current: Float[ArrayLike, ""],
    ts: Float[ArrayLike, " n"],
    *,
    key: PRNGKeyArray,
    dt: float,
    solver: diffrax.AbstractSolver | None = None,
    brownian_tol: float | None = None,
) -> Float[Array, "n 3"]:
    """The reference solve: m at the times ``ts`` [s] (from ts[0]) under a constant ``current`` [A], by diffrax
    (``solver`` default ``diffrax.Heun()``, Stratonovich) with constant steps ``dt`` [s] on a
    ``VirtualBrownianTree`` of ``key`` (resolved to ``brownian_tol``, default dt/16). Returns m/|m| (diffrax does
    not renormalise between steps; the vector field is tangent at m/|m|, so |m| drifts only at second order).
    Its Brownian path is queryable (``diffrax.VirtualBrownianTree(...).evaluate(t0, t1)``): the fixed-step kernel
    driven by the same increments converges to it (tests)."""
    ts = jnp.asarray(ts, dtype=float)
    bm = diffrax.VirtualBrownianTree(
        ts[0], ts[-1], tol=dt / 16 if brownian_tol is None else brownian_tol, shape=(3,), key=key
    )
    sol = diffrax.diffeqsolve(
        sde_terms(dev, current, bm),
        diffrax.Heun() if solver is None else solver,
        ts[0],
        ts[-1],
        dt,
        jnp.asarray(m0, dtype=float),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=int(np.ceil(float(ts[-1] - ts[0]) / dt)) + 16,
    )
    return dev.project(sol.ys)


def heun_increments(
    dev: STTMRAM,
    m0: Float[ArrayLike, " 3"],
    current: Float[ArrayLike, ""],
    dws: Float[ArrayLike, "n 3"],
    dt: float,
    frame: str = "lab",
) -> Float[Array, " 3"]:
    """The fixed-step kernel driven by given Brownian increments ``dws`` [√s] (one row per step of ``dt`` [s]):
    m after ``len(dws)`` steps. The production paths draw the increments themselves; this exists to compare the
    scheme pathwise with a reference on the same Brownian path."""
    c = dev._llgs()
    a_j = c.torque_per_amp * jnp.asarray(current)
    m0 = jnp.asarray(m0, dtype=float)

    def step(m, dw):
        return _heun(c, m, a_j, a_j, dt, tuple(dw / jnp.sqrt(dt)), frame), None

    m, _ = jax.lax.scan(step, (m0[0], m0[1], m0[2]), jnp.asarray(dws))
    return jnp.stack(m)


# ------------------------------------------------------------------------------ Boltzmann initial states
def _boltzmann_cos(delta: Array, u: Array) -> Array:
    """t = cos θ ∈ [0, 1] with density ∝ exp(Δt²), solving P(T > t) = u by Newton from the exponential
    approximation 1 − t ~ Exp(2Δ): P(T > t) = 1 − e^{Δ(t²−1)} D(√Δ t)/D(√Δ), D Dawson's function."""
    finite = jnp.isfinite(delta)
    d = jnp.where(finite, delta, 1.0)
    sq = jnp.sqrt(d)
    d1 = jax.scipy.special.dawsn(sq)
    t = 1.0 + jnp.log1p(-u * -jnp.expm1(-2.0 * d)) / (2.0 * d)
    t = jnp.clip(t, 0.0, 1.0)
    for _ in range(8):
        e = jnp.exp(d * (t * t - 1.0))
        tail = 1.0 - e * jax.scipy.special.dawsn(sq * t) / d1
        density = sq * e / d1
        t = jnp.clip(t + (tail - u) / density, 0.0, 1.0)
    return jnp.where(finite, t, 1.0)


# ----------------------------------------------------------------------------------------- read margin
class ReadMargin(eqx.Module):
    """A reference-cell read of a population (:func:`read_margin`): currents [A], margins [A], error
    probabilities [1] per cell."""

    reference_current: Float[Array, ""]  #: I_ref [A], midway between the reference P and AP read currents
    current_p: Float[Array, " n"]  #: read current of each cell in P [A]
    current_ap: Float[Array, " n"]  #: read current of each cell in AP [A]
    error_p: Float[Array, " n"]  #: probability that the cell in P is read as AP [1]
    error_ap: Float[Array, " n"]  #: probability that the cell in AP is read as P [1]

    @property
    def margin_p(self) -> Float[Array, " n"]:
        """Sense margin I_P − I_ref of each cell in P [A] (negative: misread without any offset)."""
        return self.current_p - self.reference_current

    @property
    def margin_ap(self) -> Float[Array, " n"]:
        """Sense margin I_ref − I_AP of each cell in AP [A]."""
        return self.reference_current - self.current_ap

    def read_error_rate(self) -> Float[Array, ""]:
        """Expected fraction of reads that return the wrong state, P and AP cells equally likely [1]."""
        return 0.5 * (jnp.mean(self.error_p) + jnp.mean(self.error_ap))


def read_margin(population: STTMRAM, reference: STTMRAM, *, offset_std: Float[ArrayLike, ""] = 0.0) -> ReadMargin:
    """Read every cell of ``population`` (a device with a leading cell axis, e.g. sampled from the card's
    ``[variability]``) in P and in AP against a reference current I_ref = (I_P + I_AP)/2 of the ``reference``
    junction pair (the nominal device), all at each device's ``read_voltage``.

    A sense amplifier with a Gaussian input offset of ``offset_std`` [A] misreads a P cell with probability
    Φ((I_ref − I_P)/σ) (and an AP cell with Φ((I_AP − I_ref)/σ)): the expected read-error rate, smooth in every
    parameter; with ``offset_std = 0`` the misread is the hard comparison.
    """
    check_range("offset_std", offset_std, lower=0.0, unit="A")
    read = eqx.filter_vmap(lambda d, s: d.current(s, d.read_voltage), in_axes=(eqx.if_array(0), None))
    i_p, i_ap = read(population, 1.0), read(population, -1.0)
    i_ref = 0.5 * (reference.current(1.0, reference.read_voltage) + reference.current(-1.0, reference.read_voltage))
    sigma = jnp.asarray(offset_std, dtype=float)
    on = sigma > 0
    safe = jnp.where(on, sigma, 1.0)

    def wrong(excess):  # probability that the comparison goes the wrong way, for a cell `excess` past I_ref
        return jnp.where(on, jax.scipy.stats.norm.cdf(-excess / safe), (excess <= 0).astype(excess.dtype))

    return ReadMargin(i_ref, i_p, i_ap, wrong(i_p - i_ref), wrong(i_ref - i_ap))


# -------------------------------------------------------------------------------- write pulse by gradient
class WritePulse(eqx.Module):
    """A write pulse (piecewise constant: ``currents`` [A] for ``widths`` [s]) at a WER target, the result of
    :func:`optimize_write_pulse` or :func:`grid_write_pulse`."""

    currents: Float[Array, " k"]  #: segment currents [A]
    widths: Float[Array, " k"]  #: segment widths [s]
    energy: Float[Array, ""]  #: :meth:`STTMRAM.write_energy` summed over the segments [J]
    wer: Float[Array, ""]  #: closed-form WER of the pulse (:meth:`STTMRAM.staircase_write_error_rate`) [1]
    history: Float[Array, " e"]  #: best energy found after each evaluation [J]
    evaluations: int = eqx.field(static=True)  #: objective evaluations spent (a gradient step counts one)


def _target_spread(dev: STTMRAM, wer_target: Array) -> Array:
    """v* such that WER = 1 − exp(−(π²Δ/4)/v*) equals ``wer_target``."""
    return (math.pi**2 / 4.0) * dev.thermal_stability() / -jnp.log1p(-wer_target)


def _staircase(dev: STTMRAM, params: dict[str, Array], wer_target: Array) -> tuple[Array, Array]:
    """Segment ratios i_k = 1 + exp(z_k) and widths: t_D·exp(w_j) for all but the last, whose width is solved so
    that the pulse meets ``wer_target`` exactly (0 if the earlier segments already do)."""
    ratios = 1.0 + jnp.exp(params["z"])
    t_d = dev.dynamic_time()
    taus = jnp.exp(params["w"])  # widths of the free segments in units of t_D

    def segment(v, rt):
        r, tau = rt
        y = 2.0 * (r - 1.0) * tau
        return jnp.exp(jnp.minimum(y, 600.0)) * v + 2.0 * tau * _exprel(y), None

    v_prev, _ = jax.lax.scan(segment, jnp.ones(()), (ratios[:-1], taus))
    eps = ratios[-1] - 1.0
    y_last = jnp.log1p(eps * _target_spread(dev, wer_target)) - jnp.log1p(eps * v_prev)
    tau_last = jnp.maximum(y_last, 0.0) / (2.0 * eps)
    widths = t_d * jnp.concatenate([taus, tau_last[None]])
    return ratios * dev.critical_current(), widths


def _energy(dev: STTMRAM, params: dict[str, Array], wer_target: Array) -> Array:
    currents, widths = _staircase(dev, params, wer_target)
    return jnp.sum(dev.write_energy(currents, widths))


_log_energy_and_grad = eqx.filter_jit(jax.value_and_grad(lambda p, dev, target: jnp.log(_energy(dev, p, target))))
_grid_energies = eqx.filter_jit(
    jax.vmap(lambda z, w, dev, target: _energy(dev, {"z": z, "w": w}, target), (0, 0, None, None))
)


def _result(dev, params, wer_target, evaluations, history) -> WritePulse:
    currents, widths = _staircase(dev, params, wer_target)
    return WritePulse(
        currents,
        widths,
        jnp.sum(dev.write_energy(currents, widths)),
        dev.staircase_write_error_rate(currents, widths),
        jnp.asarray(history),
        evaluations,
    )


def _check_pulse_search(wer_target, segments, count, name):
    check_range("wer_target", wer_target, lower=0.0, upper=0.5, lower_open=True)
    if segments not in (1, 2):
        raise ValueError(f"segments must be 1 (rectangular) or 2 (two-step); got {segments!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{name} must be a positive integer; got {count!r}")


def optimize_write_pulse(
    dev: STTMRAM,
    wer_target: float,
    *,
    steps: int,
    segments: int = 1,
    learning_rate: float = 0.1,
) -> WritePulse:
    """The AP → P write pulse of least energy at a closed-form WER of ``wer_target``, by Adam on the log of the
    energy [J] (``steps`` value-and-gradient evaluations).

    ``segments = 1``: a rectangular pulse, one free setting (the current; the width is solved from the target);
    ``segments = 2``: a two-step pulse (first current and width free, second current free, its width solved).
    Currents are kept above I_c0 (i = 1 + e^z: the precessional regime of the closed form, valid for
    i ≳ 1.5) and widths positive. Energy from :meth:`STTMRAM.write_energy` at the AP resistance.
    """
    _check_pulse_search(wer_target, segments, steps, "steps")
    target = jnp.asarray(wer_target, dtype=float)
    params = {"z": jnp.full((segments,), math.log(2.0)), "w": jnp.zeros((segments - 1,))}
    opt = optax.adam(learning_rate)
    state = opt.init(params)
    history, best = [], (np.inf, params)
    for _ in range(steps):
        value, grad = _log_energy_and_grad(params, dev, target)
        best = min(best, (float(np.exp(value)), params), key=lambda b: b[0])
        history.append(best[0])
        updates, state = opt.update(grad, state, params)
        params = optax.apply_updates(params, updates)
    return _result(dev, best[1], target, steps, history)


def grid_write_pulse(
    dev: STTMRAM,
    wer_target: float,
    *,
    evaluations: int,
    segments: int = 1,
    ratio_range: tuple[float, float] = (1.05, 10.0),
    width_range: tuple[float, float] = (0.05, 20.0),
) -> WritePulse:
    """The same search as :func:`optimize_write_pulse` by a grid of at most ``evaluations`` points: i − 1
    geometric over ``ratio_range`` − 1 (i = |I|/I_c0) and, for two steps, the first width geometric over
    ``width_range`` [units of t_D]; ⌊evaluations^(1/3)⌋ points per axis for two steps."""
    _check_pulse_search(wer_target, segments, evaluations, "evaluations")
    target = jnp.asarray(wer_target, dtype=float)
    lo, hi = math.log(ratio_range[0] - 1.0), math.log(ratio_range[1] - 1.0)
    if segments == 1:
        zs = np.linspace(lo, hi, evaluations)[:, None]
        ws = np.zeros((evaluations, 0))
    else:
        per = max(1, int(round(evaluations ** (1 / 3))))
        while per**3 > evaluations:
            per -= 1
        axis_z = np.linspace(lo, hi, per)
        axis_w = np.linspace(math.log(width_range[0]), math.log(width_range[1]), per)
        grid = np.stack(np.meshgrid(axis_z, axis_w, axis_z, indexing="ij"), axis=-1).reshape(-1, 3)
        zs, ws = grid[:, [0, 2]], grid[:, [1]]
    energies = np.asarray(_grid_energies(jnp.asarray(zs), jnp.asarray(ws), dev, target))
    k = int(np.argmin(energies))
    history = np.minimum.accumulate(energies)
    params = {"z": jnp.asarray(zs[k]), "w": jnp.asarray(ws[k])}
    return _result(dev, params, target, len(energies), history)
