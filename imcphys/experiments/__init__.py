"""Experiments: the computations behind ``experiments/*.py`` and the sections of ``imcphys demo``.

Each experiment is a module here with ``run(out_dir, *, quick, key) -> Section``: it writes its figures into
``out_dir`` and returns its numbers. One name each: module ``imcphys.experiments.<name>`` = its section's name =
the script ``experiments/<name>.py`` = the JSON file ``<out>/<name>.json`` the script writes; the demo gathers
sections into one HTML report. Keeping the computation here means the demo and the script cannot drift apart.
:data:`EXPERIMENTS` lists them all (a test checks the four names agree).
"""

from . import (
    crossbar_irdrop,
    fefet_levels,
    fit_tour,
    flash_ispp,
    flash_pump_fit,
    igzo_2t0c_retention,
    montecarlo_tour,
    mram_wer,
    optimize_write_verify,
    pcm_drift,
    reram_sky130,
    reram_stanford,
)
from ._section import (
    Figure as Figure,
    Headline as Headline,
    Section as Section,
    jsonable as jsonable,
    run_study as run_study,
    script as script,
    write_json as write_json,
)

#: Every experiment module by name.
EXPERIMENTS = {
    m.__name__.rsplit(".", 1)[-1]: m
    for m in (
        reram_stanford,
        pcm_drift,
        flash_ispp,
        flash_pump_fit,
        igzo_2t0c_retention,
        fit_tour,
        optimize_write_verify,
        montecarlo_tour,
        crossbar_irdrop,
        fefet_levels,
        mram_wer,
        reram_sky130,
    )
}
