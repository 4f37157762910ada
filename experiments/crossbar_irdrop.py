"""Crossbar IR drop: output current along a tile, MVM error against size and wire resistance for PCM and ReRAM
tiles, and per-column-gain and pre-distorted-target calibrations fitted by gradient through the nodal solve.

Writes ``<out>/crossbar_irdrop.json`` and figures.
"""

from imcphys.experiments import crossbar_irdrop, script

if __name__ == "__main__":
    script(crossbar_irdrop.run)
