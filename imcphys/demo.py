"""``imcphys demo``: the tour of every device family, written as one HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from .experiments import EXPERIMENTS, Section, run_study
from .report import write_report

#: The demo's sections, in order (names in :data:`imcphys.experiments.EXPERIMENTS`; each is also an
#: ``experiments/<name>.py`` script writing ``<name>.json``).
DEMO = [
    "reram_stanford",
    "pcm_drift",
    "flash_ispp",
    "igzo_2t0c_retention",
    "igzo_tft_measured",
    "fit_tour",
    "optimize_write_verify",
    "montecarlo_tour",
]


def _get(numbers: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(numbers, dict) or key not in numbers:
            return None
        numbers = numbers[key]
    return numbers


def headlines(sections: list[Section]) -> list[dict[str, Any]]:
    """The survey's headline figures, each as {claim, value, met}: what the report reproduces, at a glance.
    A claim whose section did not run is left out."""
    by = {s.name: s.numbers for s in sections}
    rows = []

    def add(claim: str, value: Any, text: str, met: bool) -> None:
        if value is not None:
            rows.append({"claim": claim, "value": text, "met": bool(met)})

    n = by.get("igzo_2t0c_retention", {})
    t25, levels = _get(n, "min_retention_s_25C"), _get(n, "levels")
    if t25 is not None:
        add(
            "2T0C (IGZO, Li 2025 card): 8 levels held > 100 s at 25 °C",
            t25,
            f"{levels} levels, shortest retention {t25:.3g} s (85 °C: {_get(n, 'min_retention_s_85C'):.3g} s)",
            levels == 8 and t25 > 100,
        )
    tft = by.get("igzo_tft_measured", {})
    worst = _get(tft, "max_rms_decades")
    if worst is not None:
        add(
            f"IGZO TFT fitted to measured a-IGZO dies: rms ≤ {tft['goal_rms_decades']:g} decade on every die",
            worst,
            f"{tft['dies_within_goal']} of {tft['dies']} dies within it; worst {worst:.3f} decades; contact "
            f"resistance R_C·W = {100 * tft['contact_resistance']['value_ohm_m']:.3g} Ω·cm from one die's L series",
            worst <= tft["goal_rms_decades"],
        )
    d85 = _get(by.get("pcm_drift", {}), "drift_per_decade_85C")
    err = _get(by.get("pcm_drift", {}), "mvm_rel_error")
    if d85 is not None and err is not None:
        add(
            "PCM: conductance drift > 10 %/decade at 85 °C, and its compensation",
            d85,
            f"{100 * d85:.1f} %/decade; MVM error after 1 year {err['no_compensation'][-1]:.3f} uncompensated, "
            f"{err['global_compensation'][-1]:.3f} with global compensation",
            d85 > 0.10 and err["global_compensation"][-1] < err["no_compensation"][-1],
        )
    r = _get(by.get("optimize_write_verify", {}), "reram", "reports_fresh", "gradient")
    cv = _get(by.get("reram_stanford", {}), "population", "set", "cv")
    if r is not None:
        add(
            "ReRAM: variability and program-and-verify pulse counts",
            r["mean_pulses"],
            f"SET conductance spread (CV) {cv:.2f} after one pulse; 8-level write-verify with the gradient-"
            f"optimised schedule: {r['mean_pulses']:.1f} pulses on average (max {r['max_pulses']:.0f}), "
            f"rms error {r['rms_error']:.3f}",
            r["mean_pulses"] > 0,
        )
    pump = by.get("flash_ispp", {})
    targets = _get(pump, "pulse_from_rest", "targets_V")
    if targets:
        reached = [v["v_wordline_end_V"] for v in targets.values()]
        add(
            "Flash: programmed at 6–20 V produced by the on-chip charge pump",
            reached,
            f"word line reached {min(reached):.1f}–{max(reached):.1f} V from a "
            f"{_get(pump, 'pump', 'stages')}-stage Dickson pump (open circuit "
            f"{_get(pump, 'pump', 'open_circuit_voltage_V'):.1f} V)",
            min(reached) <= 6.5 and max(reached) >= 19.5,
        )
    return rows


def run_demo(
    out: Path, *, quick: bool = True, seed: int = 0, sections: list[str] | None = None
) -> tuple[Path, list[Section]]:
    """Run the demo's sections (all of :data:`DEMO`, or the named ``sections`` of
    :data:`imcphys.experiments.EXPERIMENTS`) into ``out`` and write ``index.html`` and ``summary.json``."""
    names = list(DEMO if sections is None else sections)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown demo section(s) {unknown}; known: {', '.join(EXPERIMENTS)}")
    done = []
    with tqdm(names, desc="imcphys demo", unit="section") as bar:
        for name in bar:
            bar.set_postfix_str(name)
            done.append(run_study(EXPERIMENTS[name].run, out, quick=quick, seed=seed))
    return write_report(done, out, headlines=headlines(done)), done
