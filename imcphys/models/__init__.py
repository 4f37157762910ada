"""Device families, one per file: ``reram.py`` (Stanford RRAM), and more as they land."""

from .flash import DicksonPump, FloatingGateCell
from .pcm import PCMCell, PCMCellState, PCMState, PCMStatistical
from .reram import StanfordReRAM

__all__ = ["DicksonPump", "FloatingGateCell", "PCMCell", "PCMCellState", "PCMState", "PCMStatistical",
           "StanfordReRAM"]
