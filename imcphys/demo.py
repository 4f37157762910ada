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
    "fit_tour",
    "optimize_write_verify",
    "montecarlo_tour",
]


def headlines(sections: list[Section]) -> list[dict[str, Any]]:
    """The claims the report tests, as rows {claim, value, comparison, threshold, unit, detail, met}: each
    section contributes its own :class:`imcphys.experiments.Headline` entries (a claim whose section did not
    run is left out)."""
    return [h.row() for s in sections for h in s.headlines]


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
