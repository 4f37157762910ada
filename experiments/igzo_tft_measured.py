"""Fit the oxide TFT to the measured a-IGZO dies (per-die fits, variability, contact resistance, L scaling):
``python experiments/igzo_tft_measured.py --out out [--quick]``."""

from imcphys.experiments import igzo_tft_measured, script

script(igzo_tft_measured.run)
