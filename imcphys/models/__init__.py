"""Device families, one per file (or one folder per family with several concepts, like ``flash/``).

:data:`FAMILIES` is the table a card's ``[card] family = "..."`` is looked up in: adding a family is one model file,
one card, and one line here (see CONTRIBUTING.md).
"""

from ..device import AbstractModel
from .ferroelectric import FeCap as FeCap, FeFET as FeFET, FerroelectricState as FerroelectricState
from .flash import DicksonPump as DicksonPump, FloatingGateCell as FloatingGateCell
from .igzo import Cell2T0C as Cell2T0C, IGZOTransistor as IGZOTransistor
from .mosfet import EKVTransistor as EKVTransistor
from .mram import STTMRAM as STTMRAM
from .one_t_one_r import OneTransistorOneResistor as OneTransistorOneResistor
from .pcm import (
    PCMCell as PCMCell,
    PCMCellState as PCMCellState,
    PCMState as PCMState,
    PCMStatistical as PCMStatistical,
)
from .reram import StanfordReRAM as StanfordReRAM
from .reram_sky130 import SkyWaterReRAM as SkyWaterReRAM, SkyWaterState as SkyWaterState

#: Every class a card may name as its family, by class name.
FAMILIES: dict[str, type[AbstractModel]] = {
    cls.__name__: cls
    for cls in (
        StanfordReRAM,
        PCMStatistical,
        PCMCell,
        Cell2T0C,
        IGZOTransistor,
        DicksonPump,
        FloatingGateCell,
        FeCap,
        FeFET,
        STTMRAM,
        SkyWaterReRAM,
        EKVTransistor,
        OneTransistorOneResistor,
    )
}
