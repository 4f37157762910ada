"""Ferroelectric HfO2: NLS switching on log time, accumulation, 20-domain FeFET variation, and 8-level write-verify
optimised by gradient against grid and random search at equal evaluations.

Writes ``<out>/fefet_levels.json`` and figures.
"""

from imcphys.experiments import fefet_levels, script

if __name__ == "__main__":
    script(fefet_levels.run)
