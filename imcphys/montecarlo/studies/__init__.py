"""The built-in Monte Carlo studies, by name, for :func:`imcphys.montecarlo` and ``imcphys mc --study NAME``.

One module per family; each study is a factory ``factory(card, **options) -> Study``. To add one, write the
factory in the family's module here and add a line to :data:`STUDIES` (users can also register their own at run
time with :func:`imcphys.montecarlo.register_study`).
"""

from . import ferroelectric, flash, igzo, mram, pcm, reram, reram_sky130, reram_verify

#: Built-in studies by name.
STUDIES = {
    "reram_pulse_read": reram.pulse_read,
    "reram_write_verify": reram_verify.write_verify,
    "pcm_bake": pcm.bake,
    "igzo_retention_ber": igzo.retention_ber,
    "flash_ispp_population": flash.flash_ispp_population,
    "fefet_write_verify": ferroelectric.write_verify,
    "ferroelectric_domain_spread": ferroelectric.domain_spread,
    "mram_wer": mram.write_error_rate,
    "mram_read": mram.read,
    "reram_1t1r_wordline_levels": reram_sky130.wordline_levels,
}

#: Old names still accepted (with a DeprecationWarning): the ISPP population study shared its old name,
#: ``flash_ispp``, with the Flash demo section and experiment.
ALIASES = {"flash_ispp": "flash_ispp_population"}
