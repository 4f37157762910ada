r"""PCM: the statistical model calibrated on a million devices, and a physical drift model with temperature.

**PCMStatistical** — the statistical model of Nandakumar et al., ICECS 2019 and Joshi et al., Nat. Commun. 11,
2473 (2020), as implemented in IBM aihwkit's ``PCMLikeNoiseModel`` (MIT licence; the formulas, clipping and
the order in which noise is applied below are aihwkit's, re-written in SI units). With x = g_target/g_max:

.. math::

    \sigma_{prog} &= s_p\,\frac{g_{max}}{g_{ref}}\sum_i c_i x^i,
        \qquad g_{prog} = \max(g_{target} + \sigma_{prog} z_1,\ 0) \\
    \mu_\nu &= \mathrm{clip}(-0.0155\ln x_c + 0.0244,\ 0.049,\ 0.1), \quad
    \sigma_\nu = \mathrm{clip}(-0.0125\ln x_c - 0.0059,\ 0.008,\ 0.045), \quad x_c = \max(x, 10^{-7}) \\
    \nu &= s_\nu\,|\mu_\nu + \sigma_\nu z_2| \quad\text{(one per device, drawn at programming)} \\
    g_{drift}(t) &= g_{prog}\,\big((t + t_0)/t_0\big)^{-\nu} \\
    Q_s &= \min\!\big(0.0088/\max((g_{prog}/g_{max})^{0.65}, 10^{-3}),\ 0.2\big), \quad
    \sigma_n = s_r\,Q_s\sqrt{\ln\frac{t + t_0 + t_{read}}{2 t_{read}}} \\
    g(t) &= \max(g_{drift} + |g_{drift}|\,\sigma_n z_3,\ 0)

c = (0.26348, 1.9650, −1.1731) µS at g_ref = 25 µS, t_0 = 20 s, t_read = 250 ns; z_i standard normals;
t is the time since the end of programming [s]; s_p, s_ν, s_r are the programming-, drift- and read-noise
scales (1 = published). ``calibration = "hermes"`` selects the piecewise ν and Q_s fits of the IBM HERMES
14-nm chip (Le Gallo et al., Nat. Electron. 6, 680 (2023); aihwkit's ``HermesNoiseModel`` with two devices
per weight: g_max = 20.7 µS, t_0 = 300 s, t_read = 512 ns, cubic programming-noise polynomial), see
``devices/pcm_hermes.toml``. As in aihwkit, the two devices of a HERMES weight are modelled as one
conductance. Random numbers come from :mod:`imcphys._random` (the Threefry-2x32 hash of ``jax.random``,
evaluated fused with the physics): two normals per device at programming, one per device and read.

**PCMCell** — one mushroom cell with a melt-quenched amorphous plug, following the structural-relaxation
picture of Le Gallo, Krebs, Zipoli, Salinga & Sebastian, Adv. Electron. Mater. 4, 1700627 (2018) and Le Gallo
& Sebastian, J. Phys. D 53, 213002 (2020): relaxation of the glass proceeds by collective events whose barrier
grows as the glass relaxes (a Gibbs-type model), and the conduction activation energy grows with it. State:
the amorphous fraction a of the full RESET plug and the unrelaxed-defect fraction Σ of the glass (1 right
after the quench, 0 fully relaxed).

.. math::

    E_b &= E_{b0} + E_s(1 - \Sigma), \qquad \frac{d\Sigma}{dt} = -v_0\,e^{-E_b/kT}
        \qquad\text{(Arrhenius, barrier rising as the glass relaxes)} \\
    \frac{da}{dt} &= -\frac{v_g(T)}{h}, \qquad v_g = v_{ref}\,e^{-\frac{E_g}{k}(\frac1T - \frac1{T_{ref}})}
        \qquad\text{(crystal growth into the plug of height } h) \\
    G &= G_c^{\,1-a}\,G_a^{\,a}, \qquad
    G_a = G_{a0}\,e^{-\frac{E_c}{k}(\frac1T - \frac1{T_0})}\,e^{-\nu_a E_s (1-\Sigma)/kT}

At constant T the barrier follows E_b(t) = kT ln(e^{E_{b,i}/kT} + (E_s/kT) v_0 t) exactly, so
G ∝ (1 + t/τ)^{−a ν_a} with τ = e^{E_{b,i}/kT} kT/(E_s v_0): the power law of drift, with an exponent
ν = a ν_a that does not depend on T and grows with the amorphous fraction (the logarithmic mixing rule of
Lichtenecker makes ln G linear in a, as the measured μ_ν of the statistical model is linear in ln G). A bake
raises E_b fast; back at room temperature drift then stalls until room-temperature time catches up: a bake of
t_b at T_b is a wait t_b (T_r/T_b) exp(E_b (1/kT_r − 1/kT_b)) at T_r, E_b the barrier reached (exact once
t ≫ τ).

Programming (``pulse``, amplitude = cell current [A]; the sign selects the pulse shape): the cell heats to
T = T_amb + R_th I² R_on. A SET pulse (I > 0) grows crystal (a falls) and relaxes the glass, solved as an ODE
(or exactly, piecewise in temperature, on the fixed-step path); its current must stay below melting. A RESET
pulse (I < 0) heats the same way, then melts and quenches a plug of
a_m = clip((ΔT/(T_m − T_amb) − 1)/(ρ − 1), 0, 1) (the melt front of a hemispherical 1/r temperature field
around the heater, ρ = full-plug radius / heater radius) with fresh glass (Σ = 1).

Parameter values of ``PCMCell`` are assumed, chosen to reproduce published magnitudes (ν ≈ 0.1 for amorphous
GST, an ON/OFF ratio of a few hundred, 10-year retention at 85 °C), see ``devices/pcm_cell_gst.toml``. Not
modelled: crystalline-phase drift (ν ≈ 0.005–0.02), threshold-switching dynamics, cycle-to-cycle variability,
and the temperature profile inside the plug — the whole plug is at the heater temperature during a pulse, so a
100-ns partial-SET pulse ages the remaining glass as a 100-ns anneal at ~690 K would (drift of the level then
starts about 10² s after programming at 25 °C).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import _random
from .._checks import check_less, check_range, is_concrete, runtime_check
from .._experiment import Experiment, LogAbs, MeasurementKind, _name, check_column, trace
from .._integrate import solve_pulse
from .._math import safe_exp
from ..constants import K_B_EV
from ..data import Dataset
from ..device import AbstractDevice, PulseResult, check_drive, param

Calibration = Literal["joshi2020", "hermes"]
_ZERO_CLIP = 1e-7  # aihwkit's floor of g/g_max inside the logarithms
#: Relative tolerance on g_target <= g_max (weights mapped to exactly g_max may round one ulp above it).
_G_MAX_TOL = 1e-6


def _check_time(t: ArrayLike, name: str = "t (time since programming)") -> Array:
    """A time [s] that must be finite and >= 0 (ValueError eagerly, ``eqx.error_if`` under jit)."""
    check_range(name, t, lower=0.0, unit="s")
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(float)
    return runtime_check(t, ~(t >= 0) | ~jnp.isfinite(t), f"{name} must be finite and >= 0 s")


def _drift_kind(data: Dataset, device: PCMCell | PCMStatistical, *, floor: float = 0.0, initial: str | None = None):
    return drift_trace(data, device, floor=floor, initial=initial)


def _bake_kind(data: Dataset, cell: PCMCell, *, floor: float = 0.0, initial: str | None = None):
    data.require("T")
    check_column(data, "T", lambda temp: check_drive(cell, temp, name="T"))  # below the melting point
    experiment = trace(
        data,
        time="t",
        drive="T",
        observed="G",
        residual=LogAbs(float(floor)),
        initial=initial,
        name=_name(data, "retention"),
    )
    return cell, experiment


_DRIFT = MeasurementKind(
    (("t", "G"),),
    _drift_kind,
    description="t [s], G [S]: conductance vs time since programming at constant temperature, log10 G",
    units={"t": "s", "G": "S"},
)


class PCMState(eqx.Module):
    """What programming leaves in each device of a :class:`PCMStatistical` array (any shape).

    The fields carry their units like device parameters, so that a device's own g_prog and ν can be fitted to
    its drift trace: ``imcphys.fit(PCMState(g0, nu0), experiment, free=["g_prog", "nu"], ...)``.
    """

    #: conductance after programming [S] (drifted, when solved as an ODE)
    g_prog: Float[Array, "..."] = eqx.field(metadata={"unit": "S"})
    nu: Float[Array, "..."] = eqx.field(metadata={"unit": "1"})  #: drift exponent ν of the device [1]


class PCMStatistical(AbstractDevice):
    """Statistical PCM model of Joshi et al. 2020 / aihwkit ``PCMLikeNoiseModel`` in SI units (module
    docstring).

    ``PCMStatistical()`` has the published coefficients; ``load_card("devices/pcm_hermes.toml")`` the HERMES
    calibration. Every method broadcasts over arrays of targets/times and works under ``jit``, ``vmap`` and
    ``grad`` (the noise scales, g_max, t0 and t_read are differentiable parameters).
    """

    amplitude_unit: ClassVar[str] = "S"  #: the targets of :meth:`program`; there are no single pulses
    drive_unit: ClassVar[str] = "1"  #: unused: the statistical model has no drive

    #: The measurements this family is fitted to (:func:`imcphys.fit.measurement`).
    measurement_kinds: ClassVar[dict[str, MeasurementKind]] = {"drift": _DRIFT}

    #: conductance that the largest |weight| maps to
    g_max: Float[Array, ""] = param(25e-6, "S", lower=0.0, lower_open=True)
    prog_coeffs: Float[Array, " k"] = param((0.26348e-6, 1.9650e-6, -1.1731e-6), "S")  #: c_i of σ_prog
    #: g_max at which the c_i were fitted
    prog_g_max_reference: Float[Array, ""] = param(25e-6, "S", lower=0.0, lower_open=True)
    #: first read after programming; drift reference time
    t0: Float[Array, ""] = param(20.0, "s", lower=0.0, lower_open=True)
    #: read duration in the 1/f noise integral
    t_read: Float[Array, ""] = param(250e-9, "s", lower=0.0, lower_open=True)
    prog_noise_scale: Float[Array, ""] = param(1.0, "1", lower=0.0)  #: s_p, multiplies σ_prog
    read_noise_scale: Float[Array, ""] = param(1.0, "1", lower=0.0)  #: s_r, multiplies σ_n
    drift_scale: Float[Array, ""] = param(1.0, "1", lower=0.0)  #: s_ν, multiplies ν
    calibration: Calibration = eqx.field(static=True, default="joshi2020")  #: which published ν and Q_s fits

    def check_relations(self) -> None:
        if self.calibration not in ("joshi2020", "hermes"):
            raise ValueError(f"PCMStatistical.calibration must be 'joshi2020' or 'hermes'; got {self.calibration!r}")
        if jnp.ndim(self.prog_coeffs) < 1:
            raise ValueError("PCMStatistical.prog_coeffs must be a 1-D array of polynomial coefficients [S]")

    # ----------------------------------------------------------------- input checks
    def _check_target(self, g_target: ArrayLike) -> Array:
        g = jnp.asarray(g_target)
        if not jnp.issubdtype(g.dtype, jnp.floating):
            g = g.astype(float)
        upper = self.g_max * (1 + _G_MAX_TOL)
        if is_concrete(g) and is_concrete(upper):
            check_range(
                "g_target",
                g,
                lower=0.0,
                upper=float(np.max(upper)),
                unit=f"S (g_max = {float(np.max(self.g_max)):g} S)",
            )
            return g
        return runtime_check(g, ~((g >= 0) & (g <= upper)), "g_target must be finite and in [0, g_max] S")

    # ----------------------------------------------------------------- published formulas
    def programming_noise_std(self, g_target: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """σ_prog [S] of the programmed conductance for ``g_target`` [S] (including ``prog_noise_scale``)."""
        g = self._check_target(g_target)
        x = g / self.g_max
        poly = jnp.zeros_like(x)
        for c in self.prog_coeffs[::-1]:  # Horner: Σ c_i x^i
            poly = poly * x + c
        return self.prog_noise_scale * poly * (self.g_max / self.prog_g_max_reference)

    def drift_exponent_stats(self, g_target: Float[ArrayLike, "..."]) -> tuple[Array, Array]:
        """(μ_ν, σ_ν) [1] of the normal whose absolute value is a device's ν, for ``g_target`` [S].

        Includes ``drift_scale``. The mean and std of ν itself are those of the folded normal |N(μ_ν, σ_ν²)|.
        """
        x = jnp.maximum(jnp.abs(self._check_target(g_target) / self.g_max), _ZERO_CLIP)
        ln_x = jnp.log(x)
        if self.calibration == "joshi2020":
            mu = jnp.clip(-0.0155 * ln_x + 0.0244, 0.049, 0.1)
            sigma = jnp.clip(-0.0125 * ln_x - 0.0059, 0.008, 0.045)
        else:  # HERMES, two devices per weight (aihwkit HermesNoiseModel, num_devices=2)
            mu = jnp.where(
                x < 0.0945, jnp.clip(-0.0387 * ln_x - 0.0182, 0.0720, 0.13), -0.0436 * x**2 - 0.0126 * x + 0.0736
            )
            sigma = jnp.where(
                x < 0.3055, jnp.clip(-0.0117 * ln_x - 0.0057, 0.0091, 0.04), -0.0118 * x**2 + 0.0093 * x + 0.0073
            )
        return self.drift_scale * mu, self.drift_scale * sigma

    def read_noise_q(self, g_prog: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Q_s [1], the 1/f read-noise amplitude of a device programmed to ``g_prog`` [S] (no scale)."""
        x = jnp.abs(jnp.asarray(g_prog)) / self.g_max
        if self.calibration == "joshi2020":
            pos = x > 0
            # x^0.65 as exp(0.65 ln x): XLA's CPU pow is a scalar libm call, ~10x slower than exp and log,
            # and this term is evaluated at every read of every device (gradient-safe at x = 0)
            power = jnp.where(pos, jnp.exp(0.65 * jnp.log(jnp.where(pos, x, 1.0))), 0.0)
            return jnp.minimum(0.0088 / jnp.maximum(power, 1e-3), 0.2)
        ln_x = jnp.log(jnp.maximum(x, _ZERO_CLIP))  # aihwkit's log(0) = -inf clips to 0.04 all the same
        # the cubic was fitted on g <= g_max and turns negative above 1.6 g_max (reached by programming noise):
        # a device programmed above g_max reads with the noise of g_max
        xc = jnp.minimum(x, 1.0)
        return jnp.where(
            x < 0.16,
            jnp.clip(-0.0117 * ln_x - 0.0069, 0.015, 0.04),
            0.0069 * xc**3 - 0.0280 * xc**2 + 0.0211 * xc + 0.0123,
        )

    def read_noise_std(self, g_prog: Float[ArrayLike, "..."], t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """σ_n [1], the relative std of the accumulated 1/f read noise at ``t`` [s] after programming."""
        t = _check_time(t)
        # The published form assumes t0 >> t_read; with t0 < t_read the logarithm is negative just after
        # programming, where no noise has accumulated yet: σ_n = 0 there (double where: finite gradient at 0).
        ln = jnp.log((t + self.t0 + self.t_read) / (2 * self.t_read))
        pos = ln > 0
        root = jnp.where(pos, jnp.sqrt(jnp.where(pos, ln, 1.0)), 0.0)
        return self.read_noise_scale * self.read_noise_q(g_prog) * root

    # ----------------------------------------------------------------- programming and reading
    # Eager calls run the same compiled kernels as calls under the user's jit (checks first, eagerly when the
    # inputs are concrete), so that a key gives bit-identical numbers either way: op-by-op dispatch would round
    # differently from XLA's fused, FMA-contracted code.
    def program(self, g_target: Float[ArrayLike, "..."], *, key: PRNGKeyArray) -> PCMState:
        """Program devices to ``g_target`` [S] (any shape): programming noise and one ν per device."""
        return self._program(self._check_target(g_target), key)

    @eqx.filter_jit
    def _program(self, g: Array, key: PRNGKeyArray) -> PCMState:
        z_prog, z_nu = _random.normals(key, jnp.shape(g), 2, g.dtype)
        g_prog = jnp.maximum(g + self.programming_noise_std(g) * z_prog, 0.0)
        mu, sigma = self.drift_exponent_stats(g)
        return PCMState(g_prog=g_prog, nu=jnp.abs(mu + sigma * z_nu))

    def drift(self, state: PCMState, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Noise-free drifted conductance g_prog·((t + t0)/t0)^−ν [S] at ``t`` [s] after programming."""
        return self._conductance(state, _check_time(t), None)

    def conductance(
        self, state: PCMState, t: Float[ArrayLike, "..."], key: PRNGKeyArray | None = None
    ) -> Float[Array, "..."]:
        """Conductance [S] ``t`` seconds after programming; with ``key``, including the accumulated 1/f read
        noise.

        ``t`` broadcasts against the state (e.g. shape (k, 1) against states of shape (n,) reads k times).
        """
        return self._conductance(state, _check_time(t), key)

    @eqx.filter_jit
    def _conductance(self, state: PCMState, t: Array, key: PRNGKeyArray | None) -> Array:
        g_drift = state.g_prog * jnp.exp(-state.nu * jnp.log1p(t / self.t0))
        if key is None:
            return g_drift
        sigma_n = self.read_noise_std(state.g_prog, t)
        (z,) = _random.normals(key, jnp.shape(g_drift), 1, g_drift.dtype)
        return jnp.maximum(g_drift + jnp.abs(g_drift) * sigma_n * z, 0.0)

    # ----------------------------------------------------------------- device interface
    def rhs(self, t, state: PCMState, drive) -> PCMState:
        """Drift as an ODE in the time t [s] since programming: dg/dt = −ν g/(t + t0), dν/dt = 0.

        Solved from g(0) = g_prog it gives :meth:`drift`; ``drive`` is unused (the statistical model has no
        temperature).
        """
        del drive
        return PCMState(g_prog=-state.nu * state.g_prog / (t + self.t0), nu=jnp.zeros_like(state.nu))

    def read(self, state: PCMState) -> Float[Array, "..."]:
        """Noise-free conductance of ``state`` [S]."""
        return state.g_prog

    def initial_state(self, which: str = "reset") -> PCMState:
        """``"reset"``: 0 S; ``"set"``: g_max with the mean ν of that level."""
        if which == "reset":
            return PCMState(g_prog=jnp.zeros_like(self.g_max), nu=jnp.zeros_like(self.g_max))
        if which == "set":
            return PCMState(g_prog=self.g_max, nu=self.drift_exponent_stats(self.g_max)[0])
        raise ValueError(f"initial_state(which=...) must be 'reset' or 'set'; got {which!r}")

    def state_scale(self) -> PCMState:
        return PCMState(g_prog=self.g_max, nu=jnp.ones_like(self.g_max))

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Targets in [0, g_max] S; there is no RESET polarity (see :meth:`pulse`)."""
        return (0.0, float(np.max(self.g_max))), (0.0, 0.0)

    def pulse(self, state, amplitude, width, *, rise=0.0, fall=0.0, fixed_steps=None, key=None) -> PulseResult:
        """Not available: the statistical model describes the *outcome* of IBM's closed-loop programming, not
        single pulses. Use :meth:`program`, or :class:`PCMCell` for pulse-level programming."""
        raise NotImplementedError(
            "PCMStatistical has no single-pulse programming: use "
            "program(g_target, key=...) or the physical model PCMCell"
        )


# =========================================================================================== physical model
class PCMCellState(eqx.Module):
    """State of one :class:`PCMCell` (fields may carry a leading cell axis in a population)."""

    amorphous: Float[Array, "..."]  #: a, amorphous fraction of the full RESET plug [1] (0 SET, 1 full RESET)
    defects: Float[Array, "..."]  #: Σ, unrelaxed-defect fraction of the glass [1] (1 as quenched, 0 relaxed)


class PCMCell(AbstractDevice):
    """Mushroom PCM cell with structural relaxation, crystal growth and melt-quench (module docstring).

    Drive of :meth:`rhs` (and so of :func:`imcphys.simulate`): the **ambient temperature** [K], so that bakes
    and temperature steps are stimuli (``hold(358.15, 3600)`` …) solved by diffrax. Programming goes through
    :meth:`pulse` with the cell **current** [A] as amplitude: > 0 SET/partial SET, < 0 RESET. ``read`` returns
    the conductance [S] at ``ambient_temperature``.
    """

    amplitude_unit: ClassVar[str] = "A"  #: pulses are cell currents
    drive_unit: ClassVar[str] = "K"  #: the drive of :meth:`rhs` is the ambient temperature

    #: The measurements this family is fitted to (:func:`imcphys.fit.measurement`).
    measurement_kinds: ClassVar[dict[str, MeasurementKind]] = {
        "drift": _DRIFT,
        "retention": MeasurementKind(
            (("t", "T", "G"),),
            _bake_kind,
            description="t [s], T [K], G [S]: conductance during a bake at the measured temperature, log10 G",
            units={"t": "s", "T": "K", "G": "S"},
        ),
    }

    g_crystalline: Float[Array, "..."] = param(25e-6, "S", lower=0.0, lower_open=True)  #: G_c, fully SET cell
    #: G_a0, full plug as quenched (Σ = 1) at T_0
    g_amorphous: Float[Array, "..."] = param(0.25e-6, "S", lower=0.0, lower_open=True)
    reference_temperature: Float[Array, "..."] = param(298.15, "K", lower=0.0, lower_open=True)  #: T_0 of G_a0
    conduction_activation_energy: Float[Array, "..."] = param(0.3, "eV", lower=0.0)  #: E_c of the quenched glass
    drift_exponent: Float[Array, "..."] = param(0.1, "1", lower=0.0)  #: ν_a of the full plug at constant T
    #: v_0 of the relaxation events
    attempt_frequency: Float[Array, "..."] = param(1e13, "1/s", lower=0.0, lower_open=True)
    #: E_b0, relaxation barrier right after the quench
    quench_barrier: Float[Array, "..."] = param(0.5, "eV", lower=0.0)
    #: E_s, barrier rise from Σ = 1 to Σ = 0
    barrier_span: Float[Array, "..."] = param(2.0, "eV", lower=0.0, lower_open=True)
    #: v_ref, crystal growth velocity at T_ref
    growth_velocity: Float[Array, "..."] = param(1.0, "m/s", lower=0.0, lower_open=True)
    growth_reference_temperature: Float[Array, "..."] = param(700.0, "K", lower=0.0, lower_open=True)  #: T_ref of v_ref
    growth_activation_energy: Float[Array, "..."] = param(2.7, "eV", lower=0.0)  #: E_g of crystal growth
    #: h, height of the full RESET plug
    plug_thickness: Float[Array, "..."] = param(50e-9, "m", lower=0.0, lower_open=True)
    thermal_resistance: Float[Array, "..."] = param(2e7, "K/W", lower=0.0, lower_open=True)  #: R_th, heater-to-ambient
    #: R_on, cell resistance while programming
    on_resistance: Float[Array, "..."] = param(3e3, "ohm", lower=0.0, lower_open=True)
    #: T_m (Ge2Sb2Te5 ≈ 890–900 K)
    melting_temperature: Float[Array, "..."] = param(900.0, "K", lower=0.0, lower_open=True)
    #: ρ, full-plug radius / heater radius
    full_reset_ratio: Float[Array, "..."] = param(1.5, "1", lower=1.0, lower_open=True)
    #: T_amb during pulses and reads
    ambient_temperature: Float[Array, "..."] = param(298.15, "K", lower=0.0, lower_open=True)
    max_set_current: float = eqx.field(static=True, default=95e-6)  #: largest SET amplitude allowed [A]
    max_reset_current: float = eqx.field(static=True, default=150e-6)  #: largest |RESET amplitude| [A]

    def check_relations(self) -> None:
        # above the melting point there is no amorphous state to keep (and the melting current is imaginary)
        check_less(
            "PCMCell.ambient_temperature",
            self.ambient_temperature,
            "PCMCell.melting_temperature",
            self.melting_temperature,
            "K",
        )
        if not (0 < self.max_set_current and 0 < self.max_reset_current):
            raise ValueError("PCMCell.max_set_current and max_reset_current must be > 0 A")

    def check_temperature(self, temperature: Float[ArrayLike, "..."], name: str = "temperature") -> Array:
        """``temperature`` [K] (an array) if it lies in (0, ``melting_temperature``) — the range of
        ``ambient_temperature`` — else a ``ValueError`` naming ``name`` (concrete values) or the runtime error of
        ``eqx.error_if`` (under jit/vmap): above the melting point there is no amorphous state to age."""
        t = jnp.asarray(temperature, dtype=float)
        if is_concrete((t, self.melting_temperature)):
            melt = float(np.min(self.melting_temperature))
            check_range(
                name, t, lower=0.0, upper=melt, lower_open=True, upper_open=True, unit="K (melting_temperature)"
            )
            return t
        bad = ~((t > 0) & (t < self.melting_temperature))
        return runtime_check(t, bad, f"{name} must be finite and in (0, melting_temperature) K")

    def drive_range(self) -> tuple[ArrayLike, ArrayLike]:
        """Ambient temperatures [K] above 0 and below ``melting_temperature``."""
        return 0.0, self.melting_temperature

    # ----------------------------------------------------------------- physics
    def barrier(self, defects: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Relaxation barrier E_b = E_b0 + E_s(1 − Σ) [eV]."""
        return self.quench_barrier + self.barrier_span * (1.0 - jnp.asarray(defects))

    def relaxation_rate(self, defects, temperature) -> Float[Array, "..."]:
        """dΣ/dt = −v_0 exp(−E_b/kT) [1/s]."""
        kt = K_B_EV * jnp.asarray(temperature)
        return -self.attempt_frequency * safe_exp(-self.barrier(defects) / kt)

    def growth_velocity_at(self, temperature: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Crystal growth velocity v_g(T) [m/s] (Arrhenius through v_ref at T_ref)."""
        inv = 1.0 / jnp.asarray(temperature) - 1.0 / self.growth_reference_temperature
        return self.growth_velocity * safe_exp(-self.growth_activation_energy / K_B_EV * inv)

    def conductance(
        self, state: PCMCellState, temperature: Float[ArrayLike, "..."] | None = None
    ) -> Float[Array, "..."]:
        """Cell conductance G = G_c^(1−a) G_a(Σ, T)^a [S] at ``temperature`` [K] (default: ambient; checked by
        :meth:`check_temperature`)."""
        temp = self.ambient_temperature if temperature is None else self.check_temperature(temperature)
        return self._conductance(state, temp)

    def _conductance(self, state: PCMCellState, temp: Array) -> Array:
        kt = K_B_EV * temp
        ln_ga = (
            jnp.log(self.g_amorphous)
            - self.conduction_activation_energy * (1.0 / kt - 1.0 / (K_B_EV * self.reference_temperature))
            - self.drift_exponent * self.barrier_span * (1.0 - state.defects) / kt
        )
        a = state.amorphous
        return jnp.exp((1.0 - a) * jnp.log(self.g_crystalline) + a * ln_ga)

    def heating(self, current: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Temperature rise R_th I² R_on [K] at cell current ``current`` [A]."""
        return self.thermal_resistance * jnp.square(current) * self.on_resistance

    def melting_current(self) -> Float[Array, "..."]:
        """Current [A] at which the heater reaches T_m: sqrt((T_m − T_amb)/(R_th R_on))."""
        return jnp.sqrt(
            (self.melting_temperature - self.ambient_temperature) / (self.thermal_resistance * self.on_resistance)
        )

    def melt_fraction(self, current: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Plug fraction a_m [1] melted (and quenched amorphous) by a RESET pulse of ``current`` [A]."""
        over = self.heating(current) / (self.melting_temperature - self.ambient_temperature)
        return jnp.clip((over - 1.0) / (self.full_reset_ratio - 1.0), 0.0, 1.0)

    def _age(self, defects, temperature, duration):
        """Σ after ``duration`` [s] at constant ``temperature`` [K], from
        E_b(t) = kT ln(e^{E_b,i/kT} + (E_s/kT) v_0 t)."""
        kt = K_B_EV * temperature
        pos = duration > 0
        ln_clock = jnp.where(
            pos, jnp.log(self.barrier_span / kt * self.attempt_frequency * jnp.where(pos, duration, 1.0)), -jnp.inf
        )
        e_b = kt * jnp.logaddexp(self.barrier(defects) / kt, ln_clock)
        return jnp.clip(1.0 - (e_b - self.quench_barrier) / self.barrier_span, 0.0, 1.0)

    def relax(
        self, state: PCMCellState, duration: Float[ArrayLike, "..."], temperature: Float[ArrayLike, "..."] | None = None
    ) -> PCMCellState:
        """State after ``duration`` [s] at constant ``temperature`` [K] without current (the closed form of
        :meth:`rhs`; ``temperature`` default ambient, checked by :meth:`check_temperature`)."""
        duration = _check_time(duration, "duration")
        temp = self.ambient_temperature if temperature is None else self.check_temperature(temperature)
        return self._relax(state, duration, temp)

    def _relax(self, state: PCMCellState, duration: Array, temp: Array) -> PCMCellState:
        grown = self.growth_velocity_at(temp) * duration / self.plug_thickness
        return PCMCellState(
            amorphous=jnp.clip(state.amorphous - grown, 0.0, 1.0), defects=self._age(state.defects, temp, duration)
        )

    # ----------------------------------------------------------------- device interface
    def rhs(self, t, state: PCMCellState, drive) -> PCMCellState:
        """d(state)/dt at ambient temperature ``drive`` [K] (no current): relaxation and crystal growth."""
        del t
        return PCMCellState(
            amorphous=-self.growth_velocity_at(drive) / self.plug_thickness * jnp.ones_like(state.amorphous),
            defects=self.relaxation_rate(state.defects, drive),
        )

    def read(self, state: PCMCellState) -> Float[Array, "..."]:
        """Conductance [S] at ``ambient_temperature``."""
        return self.conductance(state)

    def observe(self, state: PCMCellState, drive) -> Float[Array, "..."]:
        """Conductance [S] at the ambient temperature ``drive`` [K] of a bake (checked by :func:`imcphys.simulate`
        against :meth:`drive_range`)."""
        return self._conductance(state, drive)

    def project(self, state: PCMCellState) -> PCMCellState:
        """Both fractions in [0, 1]."""
        return PCMCellState(jnp.clip(state.amorphous, 0.0, 1.0), jnp.clip(state.defects, 0.0, 1.0))

    def state_scale(self) -> PCMCellState:
        return PCMCellState(jnp.ones(()), jnp.ones(()))

    def initial_state(self, which: str = "reset") -> PCMCellState:
        """``"reset"``: full plug of fresh glass (a = 1, Σ = 1) just quenched; ``"set"``: crystalline."""
        states = {"reset": 1.0, "set": 0.0}
        if which not in states:
            raise ValueError(f"initial_state(which=...) must be one of {sorted(states)}; got {which!r}")
        return PCMCellState(jnp.asarray(states[which]), jnp.ones(()))

    def reference_pulse(self) -> tuple[float, float]:
        """A partial SET: 0.8·``max_set_current`` [A] for 1 µs."""
        return 0.8 * self.max_set_current, 1e-6

    def amplitude_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """SET currents (0, max_set_current] A, RESET currents [−max_reset_current, 0) A."""
        return (0.0, self.max_set_current), (-self.max_reset_current, 0.0)

    def pulse(
        self,
        state: PCMCellState,
        amplitude: Float[ArrayLike, ""],
        width: Float[ArrayLike, ""],
        *,
        rise: Float[ArrayLike, ""] = 0.0,
        fall: Float[ArrayLike, ""] = 0.0,
        fixed_steps: int | None = None,
        key: PRNGKeyArray | None = None,
    ) -> PulseResult:
        """One programming pulse of current ``amplitude`` [A] (> 0 SET, < 0 RESET) and plateau ``width`` [s].

        SET: adaptive diffrax solve of growth and relaxation at T(t) = T_amb + R_th (I env(t))² R_on, or with
        ``fixed_steps=n`` the exact solution for piecewise-constant temperature (exact on the plateau, n
        pieces per edge). RESET: heating at the plateau temperature, then melt-quench of a_m. The cell has no
        cycle-to-cycle noise here: ``key`` is accepted for the common interface and unused.
        """
        del key
        amplitude = jnp.asarray(amplitude, dtype=float)
        if fixed_steps is not None and (not isinstance(fixed_steps, int) or fixed_steps < 1):
            raise ValueError(f"fixed_steps must be a positive integer or None; got {fixed_steps!r}")
        if is_concrete(amplitude):  # eager: the melting-current check raises a ValueError here
            self._check_set_current(jnp.where(amplitude > 0, amplitude, 0.0))
        # one compiled kernel even when called eagerly: eager and jit give the same bits
        return self._pulse(state, amplitude, jnp.asarray(width, dtype=float), rise, fall, fixed_steps)

    @eqx.filter_jit
    def _pulse(self, state, amplitude, width, rise, fall, fixed_steps) -> PulseResult:
        set_result = self._set(state, jnp.where(amplitude > 0, amplitude, 0.0), width, rise, fall, fixed_steps)
        reset_result = self._reset(state, jnp.where(amplitude < 0, -amplitude, 0.0), width, rise, fall)
        return jax.tree_util.tree_map(lambda s, r: jnp.where(amplitude >= 0, s, r), set_result, reset_result)

    def _check_set_current(self, current: Array) -> Array:
        too_hot = self.ambient_temperature + self.heating(current) >= self.melting_temperature
        return runtime_check(
            current,
            too_hot,
            "PCMCell.pulse: a SET amplitude (> 0) must stay below the melting current "
            "sqrt((T_m - T_amb)/(R_th R_on)) A; use a negative amplitude to RESET",
        )

    def _set(self, state, current, width, rise, fall, fixed_steps) -> PulseResult:
        current = self._check_set_current(current)
        if fixed_steps is None:
            return solve_pulse(_HeatedCell(self), state, current, width, rise=rise, fall=fall)
        return self._set_piecewise(state, current, width, rise, fall, fixed_steps)

    def _set_piecewise(self, state, current, width, rise, fall, n) -> PulseResult:
        """SET pulse with the temperature piecewise constant: exact on the plateau, n midpoint pieces per
        edge."""
        width, rise, fall = (jnp.asarray(x, dtype=float) for x in (width, rise, fall))
        mid = (jnp.arange(n) + 0.5) / n
        env = jnp.concatenate([mid, jnp.ones(1), mid[::-1]])  # envelope: rise, plateau, fall
        dt = jnp.concatenate([jnp.full(n, rise / n), width[None], jnp.full(n, fall / n)])
        temps = self.ambient_temperature + self.heating(current * env)
        grown = jnp.sum(self.growth_velocity_at(temps) * dt) / self.plug_thickness

        def step(defects, inp):
            temp, d = inp
            return self._age(defects, temp, d), None

        defects, _ = jax.lax.scan(step, state.defects, (temps, dt))
        new = PCMCellState(jnp.clip(state.amorphous - grown, 0.0, 1.0), defects)
        power = jnp.square(current) * self.on_resistance
        return PulseResult(new, power * (width + (rise + fall) / 3.0), width + rise + fall)

    def _reset(self, state, current, width, rise, fall) -> PulseResult:
        """RESET: the cell heats at the plateau temperature (the old plug crystallises and relaxes as it
        would), then a_m melts and quenches to fresh glass."""
        width = jnp.asarray(width, dtype=float)
        temp = jnp.minimum(self.ambient_temperature + self.heating(current), self.melting_temperature)
        heated = self._relax(state, _check_time(width, "width"), temp)
        a_m = self.melt_fraction(current)
        a_new = jnp.maximum(heated.amorphous, a_m)
        old = heated.amorphous - jnp.minimum(heated.amorphous, a_m)  # glass outside the melt keeps its age
        # the plug's mean Σ is a ratio of fractions: below 1e-12 of a plug (no effect on any read) it keeps the old
        # Σ, so that the gradient of the ratio, ~1/a_new², cannot overflow
        some = a_new > 1e-12
        defects = jnp.where(some, (a_m + old * heated.defects) / jnp.where(some, a_new, 1.0), heated.defects)
        power = jnp.square(current) * self.on_resistance
        duration = width + jnp.asarray(rise) + jnp.asarray(fall)
        return PulseResult(PCMCellState(a_new, defects), power * (width + (jnp.asarray(rise) + fall) / 3.0), duration)


class _HeatedCell(AbstractDevice):
    """A :class:`PCMCell` whose drive is the programming current [A]: the vector field of a SET pulse."""

    cell: PCMCell

    def rhs(self, t, state, drive):
        del t
        temp = self.cell.ambient_temperature + self.cell.heating(drive)
        return PCMCellState(
            amorphous=-self.cell.growth_velocity_at(temp) / self.cell.plug_thickness * jnp.ones_like(state.amorphous),
            defects=self.cell.relaxation_rate(state.defects, temp),
        )

    def read(self, state):
        return self.cell.read(state)

    def initial_state(self, which: str = "reset"):
        return self.cell.initial_state(which)

    def amplitude_range(self):
        return self.cell.amplitude_range()

    def power(self, state, drive):
        del state
        return jnp.square(drive) * self.cell.on_resistance

    def project(self, state):
        return self.cell.project(state)

    def state_scale(self):
        return self.cell.state_scale()

    def default_solver(self) -> diffrax.AbstractSolver:
        return diffrax.Tsit5()


# ------------------------------------------------------------------------------------- measurement kinds
class _StatisticalDrift(eqx.Module):
    """g_prog·((t + t0)/t0)^−ν of one device (its state is what is fitted); ``inputs``: the model and t."""

    def __call__(self, state: PCMState, inputs: tuple[PCMStatistical, Array]) -> Array:
        model, t = inputs
        return model.drift(state, t)


class _CellDrift(eqx.Module):
    """Conductance of a :class:`PCMCell` a time t after it was left in ``initial`` (the closed form at its
    ambient temperature)."""

    initial: str

    def __call__(self, cell: PCMCell, t: Array) -> Array:
        return cell.conductance(cell.relax(cell.initial_state(self.initial), t))


def drift_trace(
    data: Dataset,
    device: PCMCell | PCMStatistical,
    *,
    time: str = "t",
    conductance: str = "G",
    floor: float = 0.0,
    initial: str | None = None,
    name: str | None = None,
) -> tuple[eqx.Module, Experiment]:
    """A PCM drift trace, conductance [S] vs time since programming [s], compared as log10 G (points at or
    below ``floor`` [S] left out). Returns (module to fit, experiment).

    :class:`PCMStatistical`: the device's own state (g_prog, ν) is fitted; it starts from the first read
    extrapolated back to t = 0 with the mean ν of that level. :class:`PCMCell`: the cell's parameters, from
    ``initial`` (default ``"reset"``: a freshly quenched full plug) at the ambient temperature.
    """
    data.require(time, conductance)
    t, g = data[time], data[conductance]
    if np.any(t < 0):
        k = int(np.flatnonzero(t < 0)[0])
        raise ValueError(f"{data.where(time, k)}: the time since programming must be >= 0 s; got {t[k]!r} s")
    label = name or _name(data, "drift")
    common = {
        "residual": LogAbs(float(floor)),
        "x": t,
        "x_label": data.label(time),
        "y_label": data.label(conductance),
        "name": label,
        "log_x": True,
    }
    if isinstance(device, PCMStatistical):
        g_first = float(np.clip(g[0], 1e-12, float(device.g_max)))
        nu0 = float(device.drift_exponent_stats(g_first)[0])
        g0 = g_first * float((1 + t[0] / device.t0) ** nu0)
        state = PCMState(g_prog=jnp.asarray(g0), nu=jnp.asarray(nu0))
        return state, Experiment(_StatisticalDrift(), (device, jnp.asarray(t)), g, **common)
    return device, Experiment(_CellDrift(initial or "reset"), jnp.asarray(t), g, **common)
