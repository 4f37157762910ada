"""Device families, one per file: ``reram.py`` (Stanford RRAM), and more as they land."""

from .flash import DicksonPump, FloatingGateCell
from .igzo import Cell2T0C, IGZOTransistor
from .mosfet import EKVTransistor
from .one_t_one_r import OneTransistorOneResistor
from .pcm import PCMCell, PCMCellState, PCMState, PCMStatistical
from .reram import StanfordReRAM
from .reram_sky130 import SkyWaterReRAM, SkyWaterState

__all__ = [
    "Cell2T0C",
    "IGZOTransistor",
    "DicksonPump",
    "EKVTransistor",
    "FloatingGateCell",
    "OneTransistorOneResistor",
    "PCMCell",
    "PCMCellState",
    "PCMState",
    "PCMStatistical",
    "SkyWaterReRAM",
    "SkyWaterState",
    "StanfordReRAM",
]
