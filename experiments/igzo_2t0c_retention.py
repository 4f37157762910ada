"""IGZO 2T0C retention: per-level retention at 25 and 85 °C, the Arrhenius activation, and a 2T0C array digit
classifier's accuracy vs hold time with and without refresh.

Writes ``<out>/igzo_2t0c_retention.json`` and figures.
"""

from imcphys.experiments import igzo_2t0c_retention, script

if __name__ == "__main__":
    script(igzo_2t0c_retention.run)
