"""Device families, one per file: ``reram.py`` (Stanford RRAM), and more as they land."""

from .ferroelectric import FeCap, FeFET, FerroelectricState
from .flash import DicksonPump, FloatingGateCell
from .igzo import Cell2T0C, IGZOTransistor
from .pcm import PCMCell, PCMCellState, PCMState, PCMStatistical
from .reram import StanfordReRAM

__all__ = [
    "Cell2T0C",
    "IGZOTransistor",
    "DicksonPump",
    "FeCap",
    "FeFET",
    "FerroelectricState",
    "FloatingGateCell",
    "PCMCell",
    "PCMCellState",
    "PCMState",
    "PCMStatistical",
    "StanfordReRAM",
]
