"""imcphys: differentiable compact physics models of in-memory-computing memory cells, in JAX.

The library never switches JAX to float64 by itself; entry points (tests, CLI, notebooks, experiments) do.
"""

from pathlib import Path

from . import constants, population, readout, stimulus
from .cards import load_card, read_card, save_card
from .crossbar import CrossbarSolution, solve_crossbar, solve_crossbar_nodes
from .data import Dataset, load_csv
from .device import AbstractDevice, PulseResult, parameter_units, parameters, replace
from .fit import (
    Absolute,
    BatchFitResult,
    Experiment,
    FitResult,
    Free,
    LogAbs,
    Relative,
    dc_sweep,
    experiment_from,
    fit,
    fit_each,
    pulse_response,
    trace,
)
from .models import (
    Cell2T0C,
    DicksonPump,
    FloatingGateCell,
    IGZOTransistor,
    PCMCell,
    PCMCellState,
    PCMState,
    PCMStatistical,
    StanfordReRAM,
)
from .montecarlo import MonteCarloResult, Output, Study, get_study, montecarlo, register_study, study_names
from .program import (
    AbstractScheme,
    Bidirectional,
    FixedAmplitude,
    IncrementalAmplitude,
    Optimized,
    ProgramReport,
    Schedule,
    SearchResult,
    Smoothing,
    WriteCost,
    grid_search,
    optimize_scheme,
    program,
    random_search,
)
from . import simulate as simulate
from .simulate import Solution, apply_pulse
from .stimulus import PiecewiseLinear, Pulse, hold, pulse, pulse_train, ramp, triangle_sweep

__version__ = "0.1.0"


def cards_dir() -> Path:
    """The ``devices/`` folder of parameter cards shipped with the source tree."""
    return Path(__file__).resolve().parents[1] / "devices"


__all__ = [
    "CrossbarSolution",
    "solve_crossbar",
    "solve_crossbar_nodes",
    "Absolute",
    "AbstractDevice",
    "Dataset",
    "Experiment",
    "FitResult",
    "Free",
    "LogAbs",
    "Relative",
    "dc_sweep",
    "experiment_from",
    "fit",
    "fit_each",
    "BatchFitResult",
    "load_csv",
    "pulse_response",
    "trace",
    "Cell2T0C",
    "IGZOTransistor",
    "DicksonPump",
    "FloatingGateCell",
    "PCMCell",
    "PCMCellState",
    "PCMState",
    "PCMStatistical",
    "AbstractScheme",
    "Bidirectional",
    "FixedAmplitude",
    "IncrementalAmplitude",
    "Optimized",
    "ProgramReport",
    "Schedule",
    "SearchResult",
    "Smoothing",
    "WriteCost",
    "grid_search",
    "optimize_scheme",
    "program",
    "random_search",
    "PiecewiseLinear",
    "Pulse",
    "PulseResult",
    "Solution",
    "StanfordReRAM",
    "apply_pulse",
    "cards_dir",
    "MonteCarloResult",
    "Output",
    "Study",
    "get_study",
    "load_card",
    "montecarlo",
    "register_study",
    "study_names",
    "population",
    "read_card",
    "readout",
    "save_card",
    "constants",
    "hold",
    "parameter_units",
    "parameters",
    "pulse",
    "pulse_train",
    "ramp",
    "replace",
    "stimulus",
    "triangle_sweep",
]
