"""PCM drift: statistical model on a 512×512 tile and 4-bit levels, physical cell at 25/85 °C; writes pcm_drift.json."""

from imcphys.studies import pcm_drift, script

if __name__ == "__main__":
    script(pcm_drift.run)
