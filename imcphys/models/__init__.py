"""Device families, one per file: ``reram.py`` (Stanford RRAM), and more as they land."""

from .pcm import PCMCell, PCMCellState, PCMState, PCMStatistical
from .reram import StanfordReRAM

__all__ = ["PCMCell", "PCMCellState", "PCMState", "PCMStatistical", "StanfordReRAM"]
