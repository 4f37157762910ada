"""Fitting tour: a DC sweep of the Stanford ReRAM refitted from a perturbed card, with standard errors, and the
Dickson pump fitted to the measured TT07 output.

Writes ``<out>/fit_tour.json`` and figures.
"""

from imcphys.experiments import fit_tour, script

if __name__ == "__main__":
    script(fit_tour.run)
