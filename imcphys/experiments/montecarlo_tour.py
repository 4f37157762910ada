"""Monte Carlo with variability and temperature, as the demo shows it: the registered study
``reram_pulse_read`` (``imcphys/mcstudies/reram.py``) over a population drawn from the ``[variability]`` table of
the Stanford ReRAM card, at 25, 85 and 125 °C, run through :func:`imcphys.montecarlo` — chunked, saved to disk
(resumable), sharded over every JAX device — exactly as ``imcphys mc --study reram_pulse_read`` runs it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from jaxtyping import PRNGKeyArray

from .. import cards_dir, plot
from ..montecarlo import montecarlo
from ._section import Figure, Section

STUDY = "reram_pulse_read"
CARD = "reram_stanford_v1.toml"
#: RESET amplitude [V] of the study (100 ns pulses; -1.3 V leaves a fifth of the cells unRESET at 25 °C).
RESET_V = -1.5


def run(out: Path, *, quick: bool, key: PRNGKeyArray) -> Section:
    cells = 20_000 if quick else 200_000
    run_dir = out / "montecarlo_reram"
    if run_dir.exists():  # the demo's own scratch run from an earlier call: start afresh
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    result = montecarlo(
        STUDY,
        card=cards_dir() / CARD,
        cells=cells,
        key=key,
        out=run_dir,
        chunk_cells=cells // 4,
        progress=False,
        reset_amplitude=RESET_V,
    )
    seconds = time.perf_counter() - t0
    ds = result.dataset()
    temps = ds["temperature"].values
    g_set, g_reset = ds["g_set"].values, ds["g_reset"].values  # (cell, temperature) [S]
    ber = result.ber().values

    fig, axes = plot.subplots(1, 2, size=(5.0, 3.4))
    bins = np.geomspace(min(g_reset.min(), g_set.min()), max(g_reset.max(), g_set.max()), 80)
    for j, t in enumerate(temps):
        label = f"{t - 273.15:.0f} °C"
        axes[0, 0].hist(g_set[:, j], bins=bins, histtype="step", color=f"C{j}", label=f"SET, {label}")
        axes[0, 0].hist(g_reset[:, j], bins=bins, histtype="step", color=f"C{j}", ls="--")
    axes[0, 0].set_xscale("log")
    axes[0, 0].legend(fontsize=7)
    plot.label(axes[0, 0], "read conductance [S]", "cells", f"{cells} cells: SET (solid) and RESET (dashed)")
    axes[0, 1].semilogy(temps - 273.15, np.maximum(ber, 0.5 / (2 * cells)), "o-")
    plot.label(axes[0, 1], "ambient temperature [°C]", "bit-error rate", "BER (floor = half a count)")
    fig_path = plot.save(fig, out / "montecarlo_reram.png")

    numbers = {
        "study": STUDY,
        "cells": cells,
        "temperatures_K": temps.tolist(),
        "seconds": seconds,
        "cells_per_s": cells / seconds,
        "median_g_set_S": np.median(g_set, axis=0).tolist(),
        "median_g_reset_S": np.median(g_reset, axis=0).tolist(),
        "on_off_ratio_median": (np.median(g_set, axis=0) / np.median(g_reset, axis=0)).tolist(),
        "ber": ber.tolist(),
        "chunks": result.manifest["chunks"],
    }
    text = (
        f"{cells} ReRAM cells with device-to-device spread from the card's [variability] table and "
        f"cycle-to-cycle gap noise, each SET then RESET by one 100 ns pulse and read, at "
        f"{', '.join(f'{t - 273.15:.0f}' for t in temps)} °C: {cells / seconds:,.0f} cells/s including "
        f"compilation, in {result.manifest['chunks']} resumable chunks."
    )
    return Section(
        "montecarlo_tour",
        "Monte Carlo: ReRAM variability across temperature",
        text,
        numbers,
        [
            Figure(
                fig_path,
                "Read conductance after SET and RESET per temperature, and the bit-error "
                "rate against the reference conductance.",
            )
        ],
    )
