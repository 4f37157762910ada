"""Ferroelectric pulse throughput: one programming pulse (closed form, exact) on N devices — 20-domain FeFETs
(deterministic and stochastic domains) and the expectation of the NLS capacitor over 320 quadrature nodes —
against the per-device loops of research code: a numpy loop over devices and domains (the structure of the
multi-domain Verilog-A/MATLAB models) and scipy.integrate.quad per pulse for the expectation (as the NLS fitting
scripts integrate it).

    python benchmarks/ferroelectric_pulses.py --out benchmarks [--quick]
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import _common  # noqa: F401  (sets up host devices before jax)
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy import integrate, special

import imcphys
from imcphys.models.ferroelectric import sample_domains

WIDTH = 100e-9
CAP_WIDTH = 1e-6


def gate_amplitudes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(3.0, 5.0, n)


def numpy_domain_loop(fet, variates: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """V_T after one pulse, per device and per domain in Python (Verilog-A/MATLAB multi-domain structure)."""
    p = {k: float(v) for k, v in imcphys.parameters(fet).items() if k != "domain_variates"}
    kappa = float(fet.coupling())
    out = np.empty(len(amps))
    for i, (v, a) in enumerate(zip(variates, amps)):
        up = 0.0
        for z in v:
            v_a = max(p["activation_voltage_mean"] + p["activation_voltage_std"] * z, 0.0)
            tau = p["tau0"] * math.exp((v_a / (kappa * a)) ** p["alpha"])
            up += 1.0 - math.exp(-((WIDTH / tau) ** p["beta"]))
        out[i] = p["vt0"] + 0.5 * p["memory_window"] - p["memory_window"] * up / len(v)
    return out


def scipy_quad_expectation(cap, amps: np.ndarray) -> np.ndarray:
    """P after one pulse from −P_r: ∫ f_GB2(E_a)(1 − exp(−(t/τ)^β)) dE_a by adaptive quadrature, per pulse."""
    p = {k: float(v) for k, v in imcphys.parameters(cap).items() if k != "domain_variates"}
    a, b, pp, q = p["gb2_a"], p["gb2_b"], p["gb2_p"], p["gb2_q"]
    norm = special.beta(pp, q)
    out = np.empty(len(amps))
    for i, v in enumerate(amps):
        e = v / p["film_thickness"]

        def f(x, e=e):
            dens = (a / b) * (x / b) ** (a * pp - 1) / (norm * (1 + (x / b) ** a) ** (pp + q))
            return dens * -math.expm1(-math.exp(p["beta"] * (math.log(CAP_WIDTH / p["tau0"]) - (x / e) ** p["alpha"])))

        front = e * max(math.log(CAP_WIDTH / p["tau0"]), 1e-3) ** (1 / p["alpha"])
        val, _ = integrate.quad(f, 0.0, 60 * b, points=[0.9 * front, front, 1.1 * front], limit=400, epsabs=1e-12)
        out[i] = p["remanent_polarization"] * (2 * val - 1)
    return out


def fused_ceiling(fet):
    """The deterministic 20-domain pulse and read as one plain jitted function of arrays (no modules, no pytrees)."""
    p = {k: float(v) for k, v in imcphys.parameters(fet).items() if k != "domain_variates"}
    kappa = float(fet.coupling())

    @jax.jit
    def run(variates, amps):
        v_a = jnp.maximum(p["activation_voltage_mean"] + p["activation_voltage_std"] * variates, 0.0)
        x = v_a / (kappa * amps[:, None])
        h = WIDTH / p["tau0"] * jnp.exp(-(x ** p["alpha"]))
        up = -jnp.expm1(-(h ** p["beta"]))
        return p["vt0"] + 0.5 * p["memory_window"] - p["memory_window"] * up.mean(axis=1)

    return run


def main(out: Path, quick: bool) -> None:
    load_before = os.getloadavg()
    fet = imcphys.load_card(imcphys.cards_dir() / "fefet_multidomain.toml")
    cap = imcphys.load_card(imcphys.cards_dir() / "fecap_nls_hfo2.toml")
    stochastic_fet = dataclasses.replace(fet, stochastic=True)

    read_after = eqx.filter_jit(
        eqx.filter_vmap(lambda d, a, k: d.read(d.pulse(d.initial_state(), a, WIDTH, key=k).state))
    )
    cap_after = eqx.filter_jit(jax.vmap(lambda a: cap.polarization(cap.pulse(cap.initial_state(), a, CAP_WIDTH).state)))
    ceiling = fused_ceiling(fet)
    sizes = [10**4, 10**5] if quick else [10**4, 10**5, 10**6]
    rows = []
    for n in sizes:
        pop = _common.shard(sample_domains(fet, n, key=jr.key(0)))
        spop = _common.shard(sample_domains(stochastic_fet, n, key=jr.key(0)))
        amps = _common.shard(jnp.asarray(gate_amplitudes(n)))
        keys = _common.shard(jr.split(jr.key(1), n))
        t_det, vt = _common.timed(read_after, pop, amps, keys)
        t_sto, _ = _common.timed(read_after, spop, amps, keys)
        t_ceil, vt_ceil = _common.timed(ceiling, pop.domain_variates, amps)
        n_cap = n // 10  # 320 nodes per device: 16x the work of 20 domains
        cap_amps = _common.shard(jnp.asarray(np.random.default_rng(2).uniform(0.8, 2.5, n_cap)))
        t_cap, _ = _common.timed(cap_after, cap_amps)
        row = {
            "cells": n,
            "fefet_20_domains_s": t_det,
            "fefet_20_domains_pulses_per_s": n / t_det,
            "fefet_20_stochastic_domains_pulses_per_s": n / t_sto,
            "ceiling_s": t_ceil,
            "fraction_of_ceiling": t_ceil / t_det,
            "ceiling_max_abs_diff_V": float(np.max(np.abs(np.asarray(vt) - np.asarray(vt_ceil)))),
            "fecap_expectation_cells": n_cap,
            "fecap_expectation_pulses_per_s": n_cap / t_cap,
        }
        rows.append(row)
        print(row)

    n_loop = 200 if quick else 2000
    small = sample_domains(fet, n_loop, key=jr.key(0))
    amps = gate_amplitudes(n_loop)
    t0 = time.perf_counter()
    vt_loop = numpy_domain_loop(fet, np.asarray(small.domain_variates), amps)
    t_loop = time.perf_counter() - t0
    vt_ref = np.asarray(read_after(small, jnp.asarray(amps), jr.split(jr.key(1), n_loop)))
    n_quad = 20 if quick else 200
    cap_amps = np.random.default_rng(2).uniform(0.8, 2.5, n_quad)
    t0 = time.perf_counter()
    p_quad = scipy_quad_expectation(cap, cap_amps)
    t_quad = time.perf_counter() - t0
    p_ref = np.asarray(cap_after(jnp.asarray(cap_amps)))
    loop_rate, quad_rate = n_loop / t_loop, n_quad / t_quad
    big = rows[-1]
    readme_rows = [
        {
            "workload": f"FeFET: one gate pulse on {big['cells']:.0e} devices of 20 domains (closed form)",
            "imcphys": f"{big['fefet_20_domains_pulses_per_s']:.3g} device-pulses/s",
            "baseline": f"numpy loop over devices and domains {loop_rate:.3g} devices/s",
            "ratio": big["fefet_20_domains_pulses_per_s"] / loop_rate,
            "ceiling_fraction": big["fraction_of_ceiling"],
            "note": f"stochastic domains {big['fefet_20_stochastic_domains_pulses_per_s']:.3g}/s",
        },
        {
            "workload": f"FeCap: expected P after one pulse, {big['fecap_expectation_cells']:.0e} devices, 320 nodes",
            "imcphys": f"{big['fecap_expectation_pulses_per_s']:.3g} device-pulses/s",
            "baseline": f"scipy.integrate.quad per pulse {quad_rate:.3g}/s",
            "ratio": big["fecap_expectation_pulses_per_s"] / quad_rate,
            "ceiling_fraction": None,
            "note": "quadrature within 1e-6 P_r of quad",
        },
    ]
    result = {
        "description": "one programming pulse per device (closed form), float64",
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "sizes": rows,
        "rows": readme_rows,
        "numpy_domain_loop": {
            "devices": n_loop,
            "seconds": t_loop,
            "devices_per_s": loop_rate,
            "max_abs_diff_V": float(np.max(np.abs(vt_loop - vt_ref))),
        },
        "scipy_quad": {
            "pulses": n_quad,
            "seconds": t_quad,
            "pulses_per_s": quad_rate,
            "max_abs_diff_over_Pr": float(np.max(np.abs(p_quad - p_ref)) / float(cap.remanent_polarization)),
        },
        "bars": {
            "fefet device-pulses/s >= 1e6": big["fefet_20_domains_pulses_per_s"] >= 1e6,
            "expectation within 1e-6 P_r of quad": float(np.max(np.abs(p_quad - p_ref)))
            <= 1e-6 * float(cap.remanent_polarization),
        },
    }
    _common.write(out, "ferroelectric_pulses", result)


if __name__ == "__main__":
    _common.cli(main, __doc__)
