"""PCM drift: the statistical model on a 512×512 tile and on 4-bit levels, the physical cell at 25 and 85 °C.

Writes ``<out>/pcm_drift.json`` and figures.
"""

from imcphys.experiments import pcm_drift, script

if __name__ == "__main__":
    script(pcm_drift.run)
