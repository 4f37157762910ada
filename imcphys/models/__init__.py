"""Device families, one per file: ``reram.py`` (Stanford RRAM), and more as they land."""

from .flash import DicksonPump, FloatingGateCell
from .igzo import Cell2T0C, IGZOTransistor
from .mram import STTMRAM
from .pcm import PCMCell, PCMCellState, PCMState, PCMStatistical
from .reram import StanfordReRAM

__all__ = [
    "Cell2T0C",
    "IGZOTransistor",
    "DicksonPump",
    "FloatingGateCell",
    "PCMCell",
    "PCMCellState",
    "PCMState",
    "PCMStatistical",
    "StanfordReRAM",
    "STTMRAM",
]
