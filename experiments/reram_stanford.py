"""ReRAM (Stanford RRAM model): the official SET/RESET pulses, the DC hysteresis, SET time vs voltage, and the
device-to-device spread of a population.

Writes ``<out>/reram_stanford.json`` and figures.
"""

from imcphys.experiments import reram_stanford, script

if __name__ == "__main__":
    script(reram_stanford.run)
