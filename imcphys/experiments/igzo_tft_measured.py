r"""The oxide TFT on measured devices: :class:`~imcphys.IGZOTransistor` fitted to the transfer curves of eight
a-IGZO dies (the embedded dataset ``igzo_tft_pytft``; ArpanBiswas99/PyTFT, MIT; see its PROVENANCE.md).

- **Per die.** The eight dies measured on 2023-02-28 (one W/L = 10/10 µm transistor each, four curves at V_DS =
  0.1, 5.1, 10.1, 15.1 V, V_GS −10 … 20 V) are fitted at once by :func:`imcphys.fit_each` (Levenberg–Marquardt,
  one vmapped solve): the parameters the card's ``[fit]`` table lists for a ``transfer`` fit, currents compared as
  log10|I_D| above :data:`FLOOR`. The rms residual per die, in decades of current, is the figure of merit
  (:data:`GOAL_DECADES`).
- **Die-to-die variability.** The per-die values give the card's ``[variability]`` table: a correlated group whose
  positive parameters spread log-normally (the spread of ln p) and the others normally, each with the spread of
  the dies once their fitting error is taken out, sqrt(std² − ⟨se²⟩), and the correlations of the transformed
  values; the card's nominal values are the centre of the dies (mean, or geometric mean for a log-normal one).
- **What the data demand.** The same dies fitted with the 2T0C cell's transistor model (one ideality n for the
  sub-threshold slope and the drain, no trap ideality, no contacts; V_T, n, γ and I_sq free): the rms residual of
  each die, against that of the card's model.
- **Contacts.** The contact resistance R_C·W is fitted jointly to die B1's three transistors of one session
  (L = 5, 10, 20 µm): shared trap ideality, band-tail exponent, sheet current and contact resistance, one
  threshold per transistor (they differ by about 1 V); standard errors from the Jacobian, s²(JᵀJ)⁻¹. A
  model-free cross-check, the transfer-length method: at equal overdrives V_GS − V_T (thresholds of the joint fit)
  the total resistance V_DS/I_D at V_DS = 0.1 V of the three lengths is a straight line in L whose intercept is
  2·R_C (:func:`transfer_length`).
- **L scaling.** For dies A1 and B1, the card fitted to the L = 10 µm transistor of that session, with only
  ``length`` changed, predicts the L = 5 and 20 µm transistors: rms error over all points above the floor, over the
  on-state (V_GS ≥ V_T + :data:`ON_STATE` V) and after refitting the threshold alone (the transistors of one die
  differ in threshold as dies do); with the card's contact resistance and with none.

:func:`run` writes the JSON numbers, four figures, and the fitted card (``igzo_tft_pytft_fitted.toml``: centre,
``[variability]``, ``[fit]``) whose values ``devices/igzo_tft_pytft.toml`` carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
import tomli_w
from jaxtyping import PRNGKeyArray

from .. import plot
from .._experiment import Experiment
from ..cards import Card, card_dict, read_card
from ..data import Dataset
from ..datasets import load_dataset
from ..device import parameter_ranges, replace
from ..fit import BatchFitResult, fit, fit_each
from ..models.igzo import IGZOTransistor, tft_curves
from ._section import Figure, Headline, Section

DATASET = "igzo_tft_pytft"
CARD = "igzo_tft_pytft"
#: Currents at or below this [A] take no part: above the instrument floor (~1e-11 A with sign flips) and above the
#: constant +3.2…3.6e-11 A offset of die B2 at V_DS = 0.1 V (PROVENANCE.md).
FLOOR = 5e-11
#: Goal for the rms residual of every die [decades of current].
GOAL_DECADES = 0.1
#: The dies of the 2023-02-28 session, one L = 10 µm sweep each with the same drain voltages (one fit_each).
DIES = ("A1", "A2", "B1", "B2", "C1", "C2", "D1", "D2")
#: Per die, its L = 5, 10, 20 µm sweeps of the 2023-05-04 session (minutes apart, PROVENANCE.md).
L_SERIES = {
    "B1": ("B1_10_5_1.csv", "B1_10_10_2.csv", "B1_10_20_1.csv"),
    "A1": ("A1_10_5_1.csv", "A1_10_10_2.csv", "A1_10_20_1.csv"),
}
#: The die whose L series fixes the contact resistance (A1's L = 5 µm transistor is contact-limited: non-ohmic).
CONTACT_DIE = "B1"
#: The on-state of the L-scaling error: V_GS at least this far above the fitted threshold [V].
ON_STATE = 3.0
#: Gate overdrives V_GS − V_T [V] of the transfer-length analysis (all three lengths well on at V_DS = 0.1 V).
TLM_OVERDRIVES = (8.0, 10.0, 12.0, 14.0, 16.0)
#: The 2T0C cell's transistor model: what the card's fit frees, with one ideality in place of the trap ideality.
BASELINE_FREE = ("threshold_voltage", "ideality", "band_tail_exponent", "sheet_current")


def die_file(die: str) -> str:
    """The 2023-02-28 L = 10 µm sweep of ``die``."""
    return f"{die}_10_10_1.csv"


def load_sweep(file: str) -> Dataset:
    """One sweep of the embedded dataset (columns V_DS, V_GS, I_D, W, L; SI)."""
    return load_dataset(DATASET, file=file)


def rms_decades(predicted: np.ndarray, observed: np.ndarray, mask: np.ndarray | None = None) -> float:
    """rms of log10|predicted| − log10|observed| over the points above :data:`FLOOR` (and in ``mask``)."""
    keep = np.abs(observed) > FLOOR
    if mask is not None:
        keep &= mask
    r = np.log10(np.abs(predicted[keep])) - np.log10(np.abs(observed[keep]))
    return float(np.sqrt(np.mean(r**2)))


# ----------------------------------------------------------------------------------------------- per die
def per_die_fits(
    tft: IGZOTransistor, free: Sequence[str], dies: Sequence[str], *, key: PRNGKeyArray, starts: int, candidates: int
) -> tuple[BatchFitResult, Experiment, list[Dataset]]:
    """``fit_each`` of the dies' sweeps (they share V_GS and V_DS: one template experiment)."""
    data = [load_sweep(die_file(d)) for d in dies]
    template = tft_curves(data[0], tft, floor=FLOOR, name="transfer curves")
    for d in data[1:]:
        tft_curves(d, tft, floor=FLOOR)  # the geometry check
        if not (np.array_equal(d["V_GS"], data[0]["V_GS"]) and np.array_equal(d["V_DS"], data[0]["V_DS"])):
            raise ValueError(f"{d.source}: not the bias points of {data[0].source}; fit it on its own")
    observed = np.stack([d["I_D"] for d in data])
    result = fit_each(
        tft, template, observed, free=list(free), key=key, starts=starts, candidates=candidates, progress=False
    )
    return result, template, data


def variability(result: BatchFitResult, tft: IGZOTransistor, source: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The ``[variability]`` table (one correlated group, ``transfer``) and the centre of the fits (nominal values
    [SI]) from per-device fits.

    Per parameter, by its declared range: none below → normal (V_T); bounded at 0 → log-normal (the spread of
    ln p); bounded above 0 → normal truncated at that bound (n_t >= 1: a log-normal would cross it in about one
    draw in a million). Each spread is that of the devices once their fitting error is taken out, sqrt(std² −
    ⟨se²⟩), in the variable it is drawn in; the correlations are those of the same variables."""
    ranges = parameter_ranges(tft)
    v, se = result.values[result.ok], result.std_errors[result.ok]
    if len(v) < len(result.names) + 1:
        raise ValueError(f"{len(v)} good fits cannot give a {len(result.names)}-parameter correlation matrix")
    kinds = []
    for j, n in enumerate(result.names):
        lower = ranges[n]["lower"]
        kinds.append("normal" if lower is None else "lognormal" if lower == 0 and np.all(v[:, j] > 0) else "truncated")
    log = np.array([k == "lognormal" for k in kinds])
    z = np.where(log, np.log(np.where(log, v, 1.0)), v)
    se_z = np.where(log, se / np.where(log, v, 1.0), se)
    spread = np.sqrt(np.maximum(np.var(z, axis=0, ddof=1) - np.mean(se_z**2, axis=0), 0.0))
    corr = np.round(np.corrcoef(z, rowvar=False), 3)
    if np.any(np.linalg.eigvalsh(corr) <= 0):
        raise ValueError(f"the correlation matrix of the fits is not positive definite: {corr.tolist()}")
    centre = np.mean(z, axis=0)
    nominal = {n: float(np.exp(c) if lg else c) for n, c, lg in zip(result.names, centre, log)}
    members: dict[str, dict[str, Any]] = {}
    for n, unit, kind, width in zip(result.names, result.units, kinds, spread):
        width = float(f"{width:.4g}")
        if kind == "lognormal":
            members[n] = {"distribution": "lognormal", "sigma": width}
        elif kind == "normal":
            members[n] = {"distribution": "normal", "std": width, "unit": unit}
        else:
            members[n] = {"distribution": "truncated_normal", "std": width, "lower": ranges[n]["lower"], "unit": unit}
    table = {
        "transfer": {
            "distribution": "correlated",
            "status": "fitted",
            "source": source,
            "correlation": corr.tolist(),
            "parameters": members,
        }
    }
    return table, nominal


# ------------------------------------------------------------------------------------------------ contacts
def contact_fit(tft: IGZOTransistor, files: Sequence[str]) -> dict[str, Any]:
    """R_C·W [Ω·m] from a die's transistors of several lengths (module docstring), with its standard error."""
    data = [load_sweep(f) for f in files]
    shared = ("trap_ideality", "band_tail_exponent", "sheet_current", "contact_resistance")
    keep = [np.abs(d["I_D"]) > FLOOR for d in data]
    inputs = [(jnp.asarray(d["V_GS"][k]), jnp.asarray(d["V_DS"][k]), float(d["L"][0])) for d, k in zip(data, keep)]
    target = jnp.asarray(np.concatenate([np.log10(np.abs(d["I_D"][k])) for d, k in zip(data, keep)]))

    def residual(theta, args):
        del args
        common = {n: jnp.exp(theta[i]) for i, n in enumerate(shared)}
        out = [
            jnp.log10(
                jnp.abs(
                    replace(tft, length=length, threshold_voltage=theta[len(shared) + j], **common).drain_current(
                        v_gs, v_ds
                    )
                )
            )
            for j, (v_gs, v_ds, length) in enumerate(inputs)
        ]
        return jnp.concatenate(out) - target

    start = [float(jnp.log(jnp.maximum(getattr(tft, n), 1e-3))) for n in shared]
    theta0 = jnp.asarray(start + [float(tft.threshold_voltage)] * len(files))
    sol = optx.least_squares(residual, optx.LevenbergMarquardt(rtol=1e-8, atol=1e-10), theta0, max_steps=200)
    theta = sol.value
    # residual and Jacobian at the solution in one compiled call (eagerly, every operation of the contact solve
    # compiles on its own, once per sweep length)
    r, jac = (np.asarray(x) for x in jax.jit(lambda t: (residual(t, None), jax.jacfwd(residual)(t, None)))(theta))
    s2 = float(np.sum(r**2) / (len(r) - len(theta)))
    std = np.sqrt(np.diag(s2 * np.linalg.inv(jac.T @ jac)))
    i = shared.index("contact_resistance")
    value = float(np.exp(theta[i]))
    sizes = np.cumsum([0] + [int(k.sum()) for k in keep])
    return {
        "files": list(files),
        "value_ohm_m": value,
        "std_error_ohm_m": value * float(std[i]),  # delta method: fitted on a log scale
        "shared": {n: float(np.exp(theta[j])) for j, n in enumerate(shared)},
        "thresholds_V": [float(x) for x in theta[len(shared) :]],
        "rms_decades": [float(np.sqrt(np.mean(r[a:b] ** 2))) for a, b in zip(sizes[:-1], sizes[1:])],
        "lm_steps": int(sol.stats["num_steps"]),
    }


def transfer_length(
    data: Sequence[Dataset], thresholds: Sequence[float], overdrives: Sequence[float] = TLM_OVERDRIVES
) -> list[dict[str, float]]:
    """R_C·W [Ω·m] by the transfer-length method: at each gate overdrive V_GS − V_T [V], R_total·W = 2·R_C·W +
    R_sh·L over transistors of several lengths (``data``: sweeps with columns V_GS, V_DS, I_D, W, L; their
    ``thresholds`` [V], one each), fitted by least squares in L, with R_total = V_DS/I_D on the sweep's lowest
    drain voltage (linear regime) and I_D interpolated in log|I_D| at V_T + overdrive. One row per overdrive:
    ``contact_resistance_ohm_m`` (the intercept over 2) and ``sheet_ohm`` (the slope, R_sh [Ω per square])."""
    if len(data) != len(thresholds) or len({float(d["L"][0]) for d in data}) < 2:
        raise ValueError("the transfer-length method needs one threshold per sweep and at least two channel lengths")
    rows = []
    for overdrive in overdrives:
        r_w = []
        for d, v_t in zip(data, thresholds):
            v_ds = float(np.min(d["V_DS"]))
            k = d["V_DS"] == v_ds
            i_d = np.exp(np.interp(v_t + overdrive, d["V_GS"][k], np.log(np.abs(d["I_D"][k]))))
            r_w.append(v_ds / i_d * float(d["W"][0]))
        slope, intercept = np.polyfit([float(d["L"][0]) for d in data], r_w, 1)
        rows.append({"overdrive_V": float(overdrive), "contact_resistance_ohm_m": intercept / 2, "sheet_ohm": slope})
    return rows


# ---------------------------------------------------------------------------------------------- L scaling
def l_scaling(tft: IGZOTransistor, files: Sequence[str], free: Sequence[str], *, key, starts, candidates):
    """Fit the L = 10 µm sweep, predict the others with only ``length`` changed (module docstring)."""
    data = [load_sweep(f) for f in files]
    lengths = [float(d["L"][0]) for d in data]
    ref = int(np.argmin(np.abs(np.asarray(lengths) - 10e-6)))
    k_fit, k_vt = jr.split(key)
    fitted = fit(
        replace(tft, length=lengths[ref]),
        tft_curves(data[ref], replace(tft, length=lengths[ref]), floor=FLOOR),
        free=list(free),
        key=k_fit,
        starts=starts,
        candidates=candidates,
        progress=False,
    ).device
    rows = {}
    for d, length, file in zip(data, lengths, files):
        device = replace(fitted, length=length)
        experiment = tft_curves(d, device, floor=FLOOR)
        predicted = np.asarray(experiment.predict(device))
        on = d["V_GS"] >= float(fitted.threshold_voltage) + ON_STATE
        refit = fit(device, experiment, free=["threshold_voltage"], key=k_vt, starts=1, candidates=0, progress=False)
        rows[f"{length * 1e6:g}"] = {
            "file": file,
            "rms_decades": rms_decades(predicted, d["I_D"]),
            "rms_decades_on_state": rms_decades(predicted, d["I_D"], on),
            "rms_decades_threshold_refitted": rms_decades(np.asarray(refit.predictions[0]), d["I_D"]),
            "threshold_refitted_V": float(refit.values[0]),
            "predicted_A": predicted,
        }
    return fitted, rows


# ---------------------------------------------------------------------------------------------------- run
def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    card = read_card(CARD)
    tft = card.device()
    free = card.default_free("transfer")
    k_dies, k_l = jr.split(key)
    dies = DIES
    # quick: one start per die and only the contact die's L series (same compilations, fewer solves)
    starts, candidates = (1, 0) if quick else (4, 32)

    result, template, data = per_die_fits(tft, free, dies, key=k_dies, starts=starts, candidates=candidates)
    predicted = np.asarray(result.predictions[0])
    per_die = {}
    for i, (die, d) in enumerate(zip(dies, data)):
        per_die[die] = {
            "file": die_file(die),
            "rms_decades": rms_decades(predicted[i], d["I_D"]),
            "points": int(np.sum(np.abs(d["I_D"]) > FLOOR)),
            "status": list(result.status[i]),
            "parameters": {
                n: {"value": float(result.values[i, j]), "std_error": float(result.std_errors[i, j]), "unit": u}
                for j, (n, u) in enumerate(zip(result.names, result.units))
            },
            "subthreshold_swing_V_per_decade": float(
                replace(tft, **{n: result.values[i, j] for j, n in enumerate(result.names)}).subthreshold_swing()
            ),
        }
    rms = np.array([v["rms_decades"] for v in per_die.values()])

    ideal = replace(tft, trap_ideality=1.0, contact_resistance=0.0, ideality=1.5)
    baseline, _, _ = per_die_fits(ideal, BASELINE_FREE, dies, key=k_dies, starts=starts, candidates=candidates)
    base_pred = np.asarray(baseline.predictions[0])
    for i, (die, d) in enumerate(zip(dies, data)):
        per_die[die]["rms_decades_2t0c_model"] = rms_decades(base_pred[i], d["I_D"])
        per_die[die]["ideality_2t0c_model"] = float(baseline.values[i, BASELINE_FREE.index("ideality")])
    base_rms = np.array([v["rms_decades_2t0c_model"] for v in per_die.values()])

    contacts = contact_fit(tft, L_SERIES[CONTACT_DIE])
    contacts["transfer_length_method"] = transfer_length(
        [load_sweep(f) for f in L_SERIES[CONTACT_DIE]], contacts["thresholds_V"]
    )
    series = {die: L_SERIES[die] for die in (L_SERIES if not quick else [CONTACT_DIE])}
    scaling = {}
    for die, files in series.items():
        for label, rc in (("card_contact_resistance", float(tft.contact_resistance)), ("no_contact_resistance", 0.0)):
            fitted, rows = l_scaling(
                replace(tft, contact_resistance=rc), files, free, key=k_l, starts=starts, candidates=candidates
            )
            scaling.setdefault(die, {})[label] = {
                "contact_resistance_ohm_m": rc,
                "fitted_on_L10": {n: float(getattr(fitted, n)) for n in free},
                "lengths_um": rows,
            }

    figures = [
        _figure_dies(out, dies, data, predicted, per_die),
        _figure_residuals(out, dies, data, predicted),
        _figure_spread(out, dies, result),
        _figure_scaling(out, series, scaling),
    ]

    source = (
        f"spread of {int(result.ok.sum())} per-die fits (dataset {DATASET}, 2023-02-28 dies), "
        "imcphys.experiments.igzo_tft_measured"
    )
    table, nominal = variability(result, tft, source)
    card_path = _write_card(out / "igzo_tft_pytft_fitted.toml", card, tft, result, nominal, table, contacts)

    numbers = {
        "data": f"dataset {DATASET}",
        "floor_A": FLOOR,
        "goal_rms_decades": GOAL_DECADES,
        "free": list(result.names),
        "units": list(result.units),
        "per_die": per_die,
        "max_rms_decades": float(rms.max()),
        "dies_within_goal": int(np.sum(rms <= GOAL_DECADES)),
        "all_dies_within_goal": bool(np.all(rms <= GOAL_DECADES)),
        "dies": len(dies),
        "fits_ok": int(result.ok.sum()),
        "population": result.population(),
        "variability": table,
        "nominal": nominal,
        "model_2t0c": {
            "free": list(BASELINE_FREE),
            "max_rms_decades": float(base_rms.max()),
            "min_rms_decades": float(base_rms.min()),
            "dies_within_goal": int(np.sum(base_rms <= GOAL_DECADES)),
        },
        "contact_resistance": contacts,
        "l_scaling": {
            die: {
                label: {
                    **v,
                    "lengths_um": {
                        k: {kk: vv for kk, vv in r.items() if kk != "predicted_A"} for k, r in v["lengths_um"].items()
                    },
                }
                for label, v in by.items()
            }
            for die, by in scaling.items()
        },
        "fit_each_seconds": float(result.seconds),
        "card": str(card_path),
    }
    best = min(per_die, key=lambda d: per_die[d]["rms_decades"])
    worst = max(per_die, key=lambda d: per_die[d]["rms_decades"])
    b1 = scaling[CONTACT_DIE]["card_contact_resistance"]["lengths_um"]
    tlm = [row["contact_resistance_ohm_m"] for row in contacts["transfer_length_method"]]
    text = (
        f"IGZOTransistor fitted to {len(dies)} measured a-IGZO dies (W/L = 10/10 µm, four drain voltages each, "
        f"log10|I_D| above {FLOOR:g} A): rms residual {per_die[best]['rms_decades']:.3f} (die {best}) to "
        f"{per_die[worst]['rms_decades']:.3f} decades (die {worst}); {numbers['dies_within_goal']} of {len(dies)} "
        f"dies within the goal of {GOAL_DECADES} decade. The 2T0C cell's transistor model (one ideality, no "
        f"traps, no contacts) fits them to {base_rms.min():.3f}–{base_rms.max():.3f} decades "
        f"({int(np.sum(base_rms <= GOAL_DECADES))} within the goal). Contact resistance from die {CONTACT_DIE}'s "
        f"L series: R_C·W = {contacts['value_ohm_m'] * 1e2:.3g} ± {contacts['std_error_ohm_m'] * 1e2:.2g} Ω·cm "
        f"(transfer-length method: {tlm[0] * 1e2:.3g} to {tlm[-1] * 1e2:.3g} Ω·cm from {TLM_OVERDRIVES[0]:g} to "
        f"{TLM_OVERDRIVES[-1]:g} V overdrive). The card fitted on L = 10 µm with only the length changed predicts "
        f"die {CONTACT_DIE}'s L = 5 and 20 µm transistors to {b1['5']['rms_decades']:.2f} and "
        f"{b1['20']['rms_decades']:.2f} decades ({b1['5']['rms_decades_on_state']:.2f} and "
        f"{b1['20']['rms_decades_on_state']:.2f} in the on-state)."
    )
    return Section(
        "igzo_tft_measured",
        "IGZO TFT fitted to measured devices",
        text,
        numbers,
        figures,
        headlines=headlines(numbers),
    )


def headlines(numbers: dict[str, Any]) -> list[Headline]:
    """The model on silicon: every measured die fitted to within the goal (rms of log10|I_D| over the points above
    the instrument floor, :data:`GOAL_DECADES`)."""
    return [
        Headline(
            f"IGZO TFT on measured a-IGZO dies: rms ≤ {numbers['goal_rms_decades']:g} decade on every die",
            numbers["max_rms_decades"],
            "<=",
            numbers["goal_rms_decades"],
            "decade",
            f"worst die; {numbers['dies_within_goal']} of {numbers['dies']} dies within the goal",
        )
    ]


def _write_card(
    path: Path,
    card: Card,
    tft: IGZOTransistor,
    result: BatchFitResult,
    nominal: dict[str, float],
    table: dict[str, Any],
    contacts: dict[str, Any],
) -> Path:
    """The card of the population: nominal values at the centre of the dies, the measured [variability]."""
    device = replace(tft, contact_resistance=contacts["value_ohm_m"], **nominal)
    extra = {n: {"source": f"centre of {int(result.ok.sum())} per-die fits ({DATASET}, 2023-02-28)"} for n in nominal}
    extra["contact_resistance"] = {
        "source": f"joint fit of die {CONTACT_DIE}'s L = 5/10/20 um transistors ({DATASET}, 2023-05-04)",
        "std_error": float(f"{contacts['std_error_ohm_m'] * 1e2:.3g}"),
    }
    body = card_dict(
        device, template=card, status={**{n: "fitted" for n in nominal}, "contact_resistance": "fitted"}, extra=extra
    )
    body["variability"] = table
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(body))
    read_card(path)  # the card it writes must load
    return path


# ------------------------------------------------------------------------------------------------- figures
def _curves(d: Dataset):
    """(V_DS, index) of each curve of a sweep."""
    return [(v, np.flatnonzero(d["V_DS"] == v)) for v in np.unique(d["V_DS"])]


def _figure_dies(out, dies, data, predicted, per_die) -> Figure:
    cols = min(4, len(dies))
    rows = -(-len(dies) // cols)
    fig, ax = plot.subplots(rows, cols, size=(3.2, 2.6), sharex=True, sharey=True)
    for i, (die, d) in enumerate(zip(dies, data)):
        a = ax[i // cols, i % cols]
        for c, (v, idx) in enumerate(_curves(d)):
            a.semilogy(d["V_GS"][idx], np.abs(d["I_D"][idx]), ".", ms=3, color=f"C{c}")
            a.semilogy(d["V_GS"][idx], np.abs(predicted[i][idx]), "-", lw=1.0, color=f"C{c}", label=f"{v:g} V")
        a.axhline(FLOOR, color="0.6", lw=0.8, ls="--")
        a.set_ylim(1e-13, 1e-3)
        plot.label(a, "V_GS [V]", "|I_D| [A]", f"die {die}: rms {per_die[die]['rms_decades']:.3f} dec")
    ax[0, 0].legend(title="V_DS", fontsize=7, title_fontsize=7, loc="lower right")
    path = plot.save(fig, out / "igzo_tft_dies.png")
    return Figure(
        path,
        "Measured transfer curves (dots) of every die and the fitted model (lines), four drain voltages each, on a "
        f"log current axis; dashed: the {FLOOR:g} A floor below which points take no part.",
    )


def _figure_residuals(out, dies, data, predicted) -> Figure:
    curves = _curves(data[0])
    fig, ax = plot.subplots(1, len(curves), size=(3.0, 2.6), sharey=True)
    for c, (v, idx) in enumerate(curves):
        a = ax[0, c]
        for i, (die, d) in enumerate(zip(dies, data)):
            keep = idx[np.abs(d["I_D"][idx]) > FLOOR]
            r = np.log10(np.abs(predicted[i][keep])) - np.log10(np.abs(d["I_D"][keep]))
            a.plot(d["V_GS"][keep], r, ".-", ms=3, lw=0.6, label=die)
        a.axhline(0.0, color="k", lw=0.5)
        plot.label(a, "V_GS [V]", "model − data [decades]", f"V_DS = {v:g} V")
    ax[0, -1].legend(fontsize=7, ncol=2)
    path = plot.save(fig, out / "igzo_tft_residuals.png")
    return Figure(path, "Residuals of the per-die fits in decades of current, one panel per drain voltage.")


def _figure_spread(out, dies, result: BatchFitResult) -> Figure:
    n = len(result.names)
    fig, ax = plot.subplots(1, n, size=(2.6, 2.4))
    x = np.arange(len(dies))
    for j, (name, unit) in enumerate(zip(result.names, result.units)):
        a = ax[0, j]
        a.errorbar(x, result.values[:, j], yerr=result.std_errors[:, j], fmt="o", ms=4, capsize=2)
        a.set_xticks(x, dies, fontsize=7)
        plot.label(a, "die", f"{name} [{unit}]")
        if name == "sheet_current":
            a.set_yscale("log")
    path = plot.save(fig, out / "igzo_tft_spread.png")
    return Figure(path, "Fitted parameters per die with their standard errors: the die-to-die spread.")


def _figure_scaling(out, series, scaling) -> Figure:
    fig, ax = plot.subplots(len(series), 3, size=(3.2, 2.6), sharey=True)
    for r, (die, files) in enumerate(series.items()):
        with_rc = scaling[die]["card_contact_resistance"]["lengths_um"]
        without = scaling[die]["no_contact_resistance"]["lengths_um"]
        for c, file in enumerate(files):
            d = load_sweep(file)
            key = f"{float(d['L'][0]) * 1e6:g}"
            a = ax[r, c]
            for k, (_, idx) in enumerate(_curves(d)):
                a.semilogy(d["V_GS"][idx], np.abs(d["I_D"][idx]), ".", ms=3, color=f"C{k}")
                a.semilogy(d["V_GS"][idx], np.abs(with_rc[key]["predicted_A"][idx]), "-", lw=1.0, color=f"C{k}")
                a.semilogy(d["V_GS"][idx], np.abs(without[key]["predicted_A"][idx]), ":", lw=1.0, color=f"C{k}")
            a.set_ylim(1e-13, 1e-3)
            role = "fitted" if key == "10" else "predicted"
            plot.label(
                a, "V_GS [V]", "|I_D| [A]", f"die {die}, L = {key} µm ({role}): {with_rc[key]['rms_decades']:.2f} dec"
            )
    path = plot.save(fig, out / "igzo_tft_lscaling.png")
    return Figure(
        path,
        "L scaling: the card fitted on the L = 10 µm transistor of a die (middle) predicts its L = 5 and 20 µm "
        "transistors with only the length changed (lines: with the card's contact resistance; dotted: without).",
    )
