"""``imcphys demo``: the tour of every device family, written as one HTML report."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .report import write_report
from .studies import (Section, fit_tour, flash_ispp, montecarlo_tour, optimize_write_verify, pcm_drift, reram,
                      run_study)

#: The demo's sections, in order: each a study module with ``run(out, *, quick, key) -> Section``.
SECTIONS = [reram, pcm_drift, flash_ispp, fit_tour, optimize_write_verify, montecarlo_tour]


def run_demo(out: Path, *, quick: bool = True, seed: int = 0) -> tuple[Path, list[Section]]:
    """Run every section into ``out`` and write ``index.html`` and ``summary.json``."""
    sections = []
    with tqdm(SECTIONS, desc="imcphys demo", unit="section") as bar:
        for module in bar:
            bar.set_postfix_str(module.__name__.rsplit(".", 1)[-1])
            sections.append(run_study(module.run, out, quick=quick, seed=seed))
    return write_report(sections, out), sections
