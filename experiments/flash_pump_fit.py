"""Fit the averaged Dickson pump to the measured SKY130 3-stage pump: ``python experiments/flash_pump_fit.py
--out out``."""

from imcphys.experiments import flash_pump_fit, script

script(flash_pump_fit.run)
