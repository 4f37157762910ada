"""Flash through its charge pump, ISPP and the SONOS window: ``python experiments/flash_ispp.py --out out
[--quick]``."""

from imcphys.experiments import flash_ispp, script

script(flash_ispp.run)
