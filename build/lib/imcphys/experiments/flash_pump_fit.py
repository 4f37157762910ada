"""Fit of the averaged Dickson pump model to the measured SKY130 3-stage pump of Tiny Tapeout 7.

Data: the embedded dataset ``dickson_tt07`` (output vs clock frequency, 10 kHz – 100 MHz; urish/tt07-charge-pump,
Apache-2.0; see its PROVENANCE.md). Known from the design: N = 3, V_DD =
V_φ = 1.8 V, C = 1.25 pF (25×25 µm² MIM), C_L = 1.5 pF, V_t = 0.44 V (LVT NMOS). Fitted: the stray
capacitance C_s, the load conductance G_L (on-chip divider and the 7.8 MΩ meter) and the clock-driver
resistance R_φ (the high-frequency droop); the transfer devices' on-resistance R_on is held at an estimate
(its effect, a fast-switching output resistance of order 8·R_on, is invisible against a ~19 MΩ load).
Levenberg–Marquardt (optimistix) in log parameters; standard errors from the Jacobian at the optimum,
s²(JᵀJ)⁻¹ with s² = Σr²/(m − p). The f = 0 row (pump stopped) is not a pump operating point and is left
out.

The fitting code is small and local on purpose: it can move to the generic ``imcphys.fit`` when that lands.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import PRNGKeyArray

from .. import plot
from ..cards import save_card
from ..datasets import load_dataset
from ..device import replace
from ..models.flash import DicksonPump, switched_steady_state
from ._section import Figure, Section

#: What the design fixes (the dataset's PROVENANCE.md).
KNOWN = {
    "supply_voltage": 1.8,
    "clock_amplitude": 1.8,
    "capacitance": 1.25e-12,
    "output_capacitance": 1.5e-12,
    "threshold_voltage": 0.44,
    "switch_resistance": 20e3,
}
#: Fitted parameters: name -> (SI scale of the log-parameter, start value in that scale, unit shown).
FREE = {
    "stray_capacitance": (1e-12, 0.2, "pF"),
    "load_conductance": (1e-9, 50.0, "nS"),
    "clock_resistance": (1e3, 1.0, "kohm"),
}
#: Where the known values come from (urish/tt07-charge-pump, docs/info.md and xschem/dickson.sch).
SOURCES = {
    "supply_voltage": "VDD = 1.8 V (tt07 pump)",
    "clock_amplitude": "0-1.8 V two-phase clock (tt07 pump)",
    "capacitance": "sky130 MIM 25 um x 25 um (tt07 pump)",
    "output_capacitance": "MIM 30 um x 25 um (tt07)",
    "threshold_voltage": "diode-connected LVT NMOS, Vth about 0.44 V (tt07 pump)",
    "switch_resistance": "estimate for W/L = 7/8 um LVT NMOS; not identifiable from V_out(f)",
    "clock_frequency": "operating point (swept in the measurement)",
    "load_current": "no constant-current load",
}
RMS_BAND_HZ = (50e3, 20e6)
#: The embedded dataset fitted here.
DATASET = "dickson_tt07"


def load_measurement() -> tuple[np.ndarray, np.ndarray]:
    """(f_clk [Hz], pump output V_out [V]) rows with f > 0 of the embedded TT07 dataset (f = 0: the pump is
    stopped, not an operating point)."""
    data = load_dataset(DATASET)
    f, v = data["f_clk"], data["V_out"]
    keep = f > 0
    return f[keep], v[keep]


def pump_from(theta: jax.Array, f: jax.Array) -> DicksonPump:
    values = {name: scale * jnp.exp(theta[i]) for i, (name, (scale, _, _)) in enumerate(FREE.items())}
    return DicksonPump(stages=3, clock_frequency=f, **KNOWN, **values)


def model_voltage(theta: jax.Array, f: jax.Array) -> jax.Array:
    """Averaged steady-state output [V] at clock frequencies ``f`` [Hz]."""
    return pump_from(theta, f).steady_state().v_out


def fit(f: np.ndarray, v: np.ndarray) -> dict:
    """Levenberg–Marquardt fit; returns the optimum, its standard errors and the residuals."""
    f_, v_ = jnp.asarray(f), jnp.asarray(v)

    def residual(theta, args):
        del args
        return model_voltage(theta, f_) - v_

    theta0 = jnp.log(jnp.asarray([start for _, start, _ in FREE.values()]))
    sol = optx.least_squares(residual, optx.LevenbergMarquardt(rtol=1e-10, atol=1e-12), theta0, max_steps=500)
    theta = sol.value
    r = np.asarray(residual(theta, None))
    jac = np.asarray(jax.jacfwd(residual)(theta, None))
    dof = len(v) - len(theta)
    s2 = float(np.sum(r**2) / dof)
    cov = s2 * np.linalg.inv(jac.T @ jac)
    std_log = np.sqrt(np.diag(cov))
    corr = cov / np.outer(std_log, std_log)
    return {
        "theta": theta,
        "residuals": r,
        "std_log": std_log,
        "corr": corr,
        "steps": int(sol.stats["num_steps"]),
    }


def run(out: Path, *, quick: bool, key: PRNGKeyArray, check_switched: bool = True) -> Section:
    """The fit, its card and figure; ``check_switched=False`` skips the (slow) switched-model comparison."""
    del key
    f, v = load_measurement()
    res = fit(f, v)
    theta, r = res["theta"], res["residuals"]
    band = (f >= RMS_BAND_HZ[0]) & (f <= RMS_BAND_HZ[1])
    fitted = {}
    for i, (name, (scale, _, unit)) in enumerate(FREE.items()):
        value = float(scale * np.exp(theta[i]))
        fitted[name] = {
            "value_SI": value,
            "std_SI": value * float(res["std_log"][i]),
            "value": value / scale,
            "std": value / scale * float(res["std_log"][i]),
            "unit": unit,
        }
    pump = pump_from(theta, jnp.asarray(10e6))

    # the switched (per-phase) model at the fitted parameters: how much the averaging itself costs. Not below
    # 1 MHz: there a half period spans > 30 R_on·C', the averaged model is exact (slow-switching limit: they
    # agree
    # to 1 mV at 1 MHz) and the explicit switched solve becomes step-bound
    f_check = f[f >= 1e6][:: 2 if quick else 1] if check_switched else f[:0]
    switched = (
        np.zeros(0)
        if not check_switched
        else np.asarray(
            jax.vmap(lambda ff: switched_steady_state(replace(pump, clock_frequency=ff)).v_out)(jnp.asarray(f_check))
        )
    )
    averaged = np.asarray(model_voltage(theta, jnp.asarray(f_check)))

    card = save_card(
        pump,
        out / "dickson_tt07_fitted.toml",
        meta={
            "name": "dickson_tt07",
            "description": "SKY130 3-stage Dickson pump (Tiny Tapeout 7), "
            "averaged model fitted to the silicon measurement",
        },
        status={
            **{k: "published" for k in KNOWN if k != "switch_resistance"},
            "switch_resistance": "assumed",
            "clock_frequency": "assumed",
            **{k: "fitted" for k in FREE},
            "load_current": "assumed",
        },
        extra={
            **{k: {"source": SOURCES[k]} for k in SOURCES},
            **{
                k: {
                    "std": fitted[k]["std_SI"],
                    "source": "experiments/flash_pump_fit.py (LM, std from the Jacobian)",
                }
                for k in FREE
            },
        },
    )

    fg = np.geomspace(f.min(), f.max(), 300)
    fig, ax = plot.subplots(2, 1, size=(6.0, 3.2))
    ax[0, 0].semilogx(f, v, "o", label="measured (TT07 silicon)")
    ax[0, 0].semilogx(fg, np.asarray(model_voltage(theta, jnp.asarray(fg))), "-", label="averaged model, fitted")
    ax[0, 0].semilogx(f_check, switched, "x", label="switched model, same parameters")
    ax[0, 0].axvspan(*RMS_BAND_HZ, color="0.9", zorder=0)
    plot.label(
        ax[0, 0],
        "clock frequency f [Hz]",
        "pump output V_out [V]",
        f"SKY130 3-stage pump: rms residual {np.sqrt(np.mean(r[band] ** 2)) * 1e3:.0f} mV in the shaded band",
    )
    ax[0, 0].legend(fontsize=8)
    ax[1, 0].semilogx(f, r * 1e3, "o-")
    ax[1, 0].axhline(0.0, color="k", lw=0.5)
    plot.label(ax[1, 0], "clock frequency f [Hz]", "model − data [mV]")
    figure = plot.save(fig, out / "flash_pump_fit.png")

    numbers = {
        "data": f"dataset {DATASET}",
        "points": len(f),
        "frequency_range_Hz": [float(f.min()), float(f.max())],
        "known": KNOWN,
        "fitted": fitted,
        "correlation": np.round(res["corr"], 4).tolist(),
        "correlation_order": list(FREE),
        "rms_residual_V": float(np.sqrt(np.mean(r[band] ** 2))),
        "rms_residual_band_Hz": list(RMS_BAND_HZ),
        "rms_residual_all_V": float(np.sqrt(np.mean(r**2))),
        "max_abs_residual_V": float(np.max(np.abs(r))),
        "residuals_V": {f"{ff:.0f}": float(rr) for ff, rr in zip(f, r, strict=True)},
        "open_circuit_voltage_V": float(pump.open_circuit_voltage()),
        "switched_minus_averaged_V": {
            f"{ff:.0f}": float(s - a) for ff, s, a in zip(f_check, switched, averaged, strict=True)
        },
        "lm_steps": res["steps"],
        "card": str(card),
    }
    text = (
        "The averaged Dickson model (N = 3, the known capacitors and supply) fitted to the measured "
        "SKY130 pump by Levenberg–Marquardt: "
        f"C_s = {fitted['stray_capacitance']['value']:.3f} ± {fitted['stray_capacitance']['std']:.3f} pF, "
        f"R_L = {1e3 / fitted['load_conductance']['value']:.1f} MΩ, "
        f"R_φ = {fitted['clock_resistance']['value']:.2f} ± {fitted['clock_resistance']['std']:.2f} kΩ; rms "
        f"residual {numbers['rms_residual_V'] * 1e3:.0f} mV over 50 kHz–20 MHz "
        f"({numbers['rms_residual_all_V'] * 1e3:.0f} mV over all {len(f)} points)."
    )
    return Section(
        "flash_pump_fit",
        "Flash — Dickson pump fitted to SKY130 silicon",
        text,
        numbers,
        [
            Figure(
                figure,
                "Measured TT07 pump output vs clock frequency, the fitted averaged model and the "
                "switched model at the same parameters; residuals below.",
            )
        ],
    )
