"""Monte Carlo studies registered by name for :func:`imcphys.montecarlo` and ``imcphys mc --study NAME``.

One module per study family; each registers its factories with :func:`imcphys.montecarlo.register_study`. A
factory takes the parsed card and keyword options and returns a :class:`imcphys.montecarlo.Study`. Importing
this package registers them all; add a new module to the import list below.
"""

from . import flash, igzo, pcm, reram, reram_sky130, reram_verify  # noqa: F401
