"""STT-MRAM: WER vs pulse width and amplitude from the thermal SDE, read margin vs TMR spread, the least-energy
write pulse by gradient (vs a grid at equal evaluations) and write-verify.

Writes ``<out>/mram_wer.json`` and figures.
"""

from imcphys.experiments import mram_wer, script

if __name__ == "__main__":
    script(mram_wer.run)
