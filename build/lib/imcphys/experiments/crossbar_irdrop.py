"""Crossbar IR drop: output current along a tile, MVM error against array size and wire resistance for PCM and
ReRAM tiles, and two calibrations that compensate it, fitted by gradient through the nodal solve."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from .. import cards_dir, load_card, plot, readout
from ..crossbar import SinhCell, solve_crossbar
from ..models import PCMStatistical
from ._section import Figure, Section

V_READ = 0.2  #: read voltage of a full-scale input [V] (readout's default)
WIRE_RESISTANCES = (0.1, 0.3, 1.0, 3.0)  #: Ω per segment; ~1 Ω per cell pitch at advanced nodes
RERAM_G_ON = 100e-6  #: top of the ReRAM analog window [S] (the model's fully SET cell is 1.8 mS, far too low-ohmic)


def families() -> dict[str, tuple[float, float, str]]:
    """(g_min [S], g_max [S], description) of the two tiles."""
    pcm = PCMStatistical()
    reram = load_card(cards_dir() / "reram_stanford_v1.toml")
    # low-field conductance I_0 e^{−g/g_0}/V_0 of the fully RESET cell: the bottom of the window
    g_off = float(reram.i0 * jnp.exp(-reram.gap_max / reram.gap_decay_length) / reram.v0)
    gap_on = float(reram.gap_decay_length * jnp.log(reram.i0 / (reram.v0 * RERAM_G_ON)))
    return {
        "PCM": (0.0, float(pcm.g_max), f"PCM (Joshi 2020 statistics), 0–{float(pcm.g_max) * 1e6:.0f} µS"),
        "ReRAM": (
            g_off,
            RERAM_G_ON,
            f"ReRAM (Stanford model), {g_off * 1e6:.1f}–{RERAM_G_ON * 1e6:.0f} µS "
            f"(gap {gap_on * 1e9:.2f}–{float(reram.gap_max) * 1e9:.2f} nm)",
        ),
    }


def tile(weights: Array, g_min: float, g_max: float) -> tuple[Array, Array, Array]:
    """Ideal differential-pair targets (G⁺, G⁻, scale) of ``weights`` (n_in × n_out)."""
    return readout.weights_to_pairs(weights, g_max, g_min)


def wires(r) -> readout.Wires:
    return readout.Wires(r_in_wire=r, r_out_wire=r, method="cg")


@eqx.filter_jit
def mvm_error(g_plus, g_minus, x, r):
    """‖I_wires − I_ideal‖/‖I_ideal‖ of the differential column currents."""
    ideal = readout.analog_mvm(g_plus, g_minus, x, v_read=V_READ)
    return readout.relative_error(readout.analog_mvm(g_plus, g_minus, x, v_read=V_READ, wires=wires(r)), ideal)


def column_gains(y: Array, y_ideal: Array) -> Array:
    """Per-column gain minimising Σ_k (α_j y_kj − y*_kj)² (least squares on calibration inputs)."""
    return jnp.sum(y * y_ideal, axis=0) / jnp.sum(y * y, axis=0)


def predistort(
    g_plus: Array,
    g_minus: Array,
    x: Array,
    r: float,
    g_min: float,
    g_max: float,
    *,
    steps: int,
    learning_rate: float = 0.05,
) -> tuple[Array, Array, np.ndarray]:
    """Programmed conductances (G⁺, G⁻) whose IR-dropped MVM matches the ideal MVM of the targets on inputs ``x``:
    Adam on logits, G = g_min + (g_max − g_min)·sigmoid(θ), gradient through the nodal solve. Returns the
    conductances and the loss history."""
    target = readout.analog_mvm(g_plus, g_minus, x, v_read=V_READ)
    span = g_max - g_min

    def conductances(theta):
        return g_min + span * jax.nn.sigmoid(theta[0]), g_min + span * jax.nn.sigmoid(theta[1])

    def loss(theta):
        gp, gm = conductances(theta)
        y = readout.analog_mvm(gp, gm, x, v_read=V_READ, wires=wires(r))
        return jnp.mean(jnp.square(y - target)) / jnp.mean(jnp.square(target))

    theta = jnp.stack([jax.scipy.special.logit(jnp.clip((g - g_min) / span, 0.005, 0.995)) for g in (g_plus, g_minus)])
    opt = optax.adam(learning_rate)
    state = opt.init(theta)

    @jax.jit
    def step(theta, state):
        value, grad = jax.value_and_grad(loss)(theta)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(theta, updates), state, value

    history = []
    for _ in range(steps):
        theta, state, value = step(theta, state)
        history.append(float(value))
    gp, gm = conductances(theta)
    return gp, gm, np.array(history)


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    fams = families()
    numbers: dict = {
        "families": {k: {"g_min_S": v[0], "g_max_S": v[1], "description": v[2]} for k, v in fams.items()},
        "v_read_V": V_READ,
    }
    figures: list[Figure] = []

    # 1. Output current along the tile: uniform cells at g_max, every input at full scale.
    n = 64 if quick else 128
    columns = np.arange(n)
    fig, ax = plot.subplots(1, 2, size=(5.0, 3.4))
    profile = {}
    for a, (name, (_, g_max, _)) in zip(ax[0], fams.items(), strict=True):
        g = jnp.full((n, n), g_max)
        v = jnp.full(n, V_READ)
        ideal = g_max * V_READ * n
        for r in (0.3, 1.0, 3.0):
            cur = np.asarray(solve_crossbar(g, v, r, r, method="cg"))
            profile[f"{name}_{r}ohm"] = cur / ideal
            a.plot(columns, cur / ideal, label=f"{r:g} Ω")
        if name == "ReRAM":  # the sinh I–V (V_0 = 0.25 V) on top of the IR drop, at 1 Ω
            cell = SinhCell(v0=0.25)
            ideal_nl = float(g_max * 0.25 * np.sinh(V_READ / 0.25)) * n
            cur = np.asarray(solve_crossbar(g, v, 1.0, 1.0, cell=cell, method="cg"))
            profile["ReRAM_sinh_1ohm"] = cur / ideal_nl
            a.plot(columns, cur / ideal_nl, "k--", label="1 Ω, sinh I–V")
        plot.label(a, "output line (column) index", "I / I_ideal", f"{name}: {n}×{n} cells at {g_max * 1e6:.0f} µS")
        a.legend(fontsize=7)
    numbers["column_current_rel"] = {
        "size": n,
        **{k: v.tolist() for k, v in profile.items()},
        "far_column": {k: float(v[-1]) for k, v in profile.items()},
        "near_column": {k: float(v[0]) for k, v in profile.items()},
    }
    figures.append(
        Figure(
            plot.save(fig, out / "crossbar_column_current.png"),
            "Output current of each column relative to ideal wires, all inputs at full scale, cells "
            "at g_max: the column farthest from the drivers delivers the least.",
        )
    )

    # 2. MVM error against array size and wire resistance (random weights on differential pairs).
    sizes = (16, 32, 64) if quick else (32, 64, 128, 256)
    n_inputs = 8 if quick else 16
    errors = {name: np.zeros((len(sizes), len(WIRE_RESISTANCES))) for name in fams}
    for s_idx, size in enumerate(sizes):
        k_w, k_x = jr.split(jr.fold_in(key, size))
        weights = jr.uniform(k_w, (size, size), minval=-1.0, maxval=1.0)
        x = jr.uniform(k_x, (n_inputs, size), minval=-1.0, maxval=1.0)
        for name, (g_min, g_max, _) in fams.items():
            gp, gm, _ = tile(weights, g_min, g_max)
            for r_idx, r in enumerate(WIRE_RESISTANCES):
                errors[name][s_idx, r_idx] = float(mvm_error(gp, gm, x, jnp.asarray(r)))
    numbers["mvm_rel_error"] = {
        "sizes": sizes,
        "r_wire_ohm": WIRE_RESISTANCES,
        "inputs": n_inputs,
        **{name: err for name, err in errors.items()},
        "definition": "‖I − I_ideal‖/‖I_ideal‖ of the differential column currents, "
        "weights and inputs uniform in [−1, 1]",
    }
    fig, ax = plot.subplots(1, 2, size=(5.0, 3.4))
    for a, name in zip(ax[0], fams, strict=True):
        for r_idx, r in enumerate(WIRE_RESISTANCES):
            a.loglog(sizes, errors[name][:, r_idx], "o-", label=f"{r:g} Ω/segment")
        a.set_xticks(sizes, [str(s) for s in sizes])
        a.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        plot.label(a, "array size n (n×n)", "relative MVM error [1]", fams[name][2])
        a.legend(fontsize=7)
    figures.append(
        Figure(
            plot.save(fig, out / "crossbar_mvm_error.png"),
            "MVM error caused by IR drop alone (no device noise), against tile size and wire "
            "resistance: it grows about as r·G·n².",
        )
    )

    # 3. Calibration at one size and 1 Ω: per-column gain, pre-distorted targets, both.
    size, r = (32, 1.0) if quick else (64, 1.0)
    steps = 40 if quick else 150
    k_w, k_test = jr.split(jr.fold_in(key, 7))
    weights = jr.uniform(k_w, (size, size), minval=-1.0, maxval=1.0)
    # Calibration inputs: every one-hot input. The tile is linear in its inputs, so these probes measure its whole
    # transfer matrix and a fit on them holds for any input (random calibration inputs overfit the 2n² targets).
    x_train = jnp.eye(size)
    x_test = jr.uniform(k_test, (64, size), minval=-1.0, maxval=1.0)
    calib, histories = {}, {}
    for name, (g_min, g_max, _) in fams.items():
        gp, gm, _ = tile(weights, g_min, g_max)
        w = wires(r)

        def measured(gp_, gm_, x_):
            return readout.analog_mvm(gp_, gm_, x_, v_read=V_READ, wires=w)

        ideal_train = readout.analog_mvm(gp, gm, x_train, v_read=V_READ)
        ideal_test = readout.analog_mvm(gp, gm, x_test, v_read=V_READ)
        y_test = measured(gp, gm, x_test)
        gain = column_gains(measured(gp, gm, x_train), ideal_train)
        gp2, gm2, hist = predistort(gp, gm, x_train, r, g_min, g_max, steps=steps)
        y2_test = measured(gp2, gm2, x_test)
        gain2 = column_gains(measured(gp2, gm2, x_train), ideal_train)
        calib[name] = {
            "none": float(readout.relative_error(y_test, ideal_test)),
            "per_column_gain": float(readout.relative_error(gain * y_test, ideal_test)),
            "predistorted_targets": float(readout.relative_error(y2_test, ideal_test)),
            "predistorted_and_gain": float(readout.relative_error(gain2 * y2_test, ideal_test)),
            "clipped_fraction": float(
                jnp.mean(
                    (jnp.minimum(gp2, gm2) <= g_min + 1e-3 * (g_max - g_min))
                    | (jnp.maximum(gp2, gm2) >= g_max - 1e-3 * (g_max - g_min))
                )
            ),
        }
        histories[name] = hist
    numbers["calibration"] = {
        "size": size,
        "r_wire_ohm": r,
        "train_inputs": f"{size} one-hot probes",
        "test_inputs": 64,
        "adam_steps": steps,
        **calib,
        "definition": "relative MVM error on random test inputs; targets fitted on the "
        "one-hot probes by Adam through the nodal solve (implicit "
        "gradients), gains by least squares per column",
    }
    fig, ax = plot.subplots(1, 2, size=(5.0, 3.4))
    for name, hist in histories.items():
        ax[0, 0].semilogy(np.sqrt(hist), label=name)
    plot.label(ax[0, 0], "Adam step", "relative error on one-hot probes", "pre-distorted targets")
    ax[0, 0].legend(fontsize=7)
    labels = ["none", "per_column_gain", "predistorted_targets", "predistorted_and_gain"]
    xs = np.arange(len(labels))
    for k, name in enumerate(fams):
        ax[0, 1].bar(xs + 0.4 * k, [calib[name][lab] for lab in labels], width=0.4, label=name)
    ax[0, 1].set_yscale("log")
    ax[0, 1].set_xticks(xs + 0.2, ["none", "gain", "pre-dist.", "both"])
    plot.label(ax[0, 1], "calibration", "relative MVM error (test inputs)", f"{size}×{size}, {r:g} Ω")
    ax[0, 1].legend(fontsize=7)
    figures.append(
        Figure(
            plot.save(fig, out / "crossbar_calibration.png"),
            "IR-drop calibration: per-column gain (least squares) and conductance targets "
            "pre-distorted by gradient descent through the crossbar solve, both fitted on one-hot "
            "probes and judged on random inputs.",
        )
    )

    big = len(sizes) - 1
    text = (
        f"The crossbar's nodal equations (two nodes per cell, wire segments between them) are solved exactly: "
        f"with 1 Ω per segment a {sizes[big]}×{sizes[big]} tile has an MVM error of "
        f"{errors['PCM'][big, 2]:.3f} (PCM, ≤ {fams['PCM'][1] * 1e6:.0f} µS) and {errors['ReRAM'][big, 2]:.3f} "
        f"(ReRAM, ≤ {RERAM_G_ON * 1e6:.0f} µS) from IR drop alone. At {size}×{size} and {r:g} Ω, a per-column "
        f"gain brings the ReRAM error from {calib['ReRAM']['none']:.3g} to "
        f"{calib['ReRAM']['per_column_gain']:.3g}, and conductance targets pre-distorted by gradient through "
        f"the solve to {calib['ReRAM']['predistorted_targets']:.3g} "
        f"({calib['ReRAM']['predistorted_and_gain']:.3g} with both)."
    )
    return Section("crossbar_irdrop", "Crossbar — IR drop, sneak paths and calibration", text, numbers, figures)
