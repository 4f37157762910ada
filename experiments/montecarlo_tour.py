"""Monte Carlo tour: a ReRAM pulse-and-read study over a population, chunked, resumable and sharded, as
``imcphys mc`` runs it.

Writes ``<out>/montecarlo_tour.json`` and figures.
"""

from imcphys.experiments import montecarlo_tour, script

if __name__ == "__main__":
    script(montecarlo_tour.run)
