"""imcphys: differentiable compact physics models of in-memory-computing memory cells, in JAX.

The public names, by layer (bottom to top; each layer uses only those beneath it):

**Devices** — one abstraction, one module per family (:mod:`imcphys.device`, :mod:`imcphys.models`):
:class:`AbstractDevice`, :class:`AbstractModel`, :func:`param`, :class:`PulseResult`, :func:`replace`,
:func:`parameters`, :func:`parameter_units`; the families :class:`StanfordReRAM`, :class:`PCMStatistical`
(:class:`PCMState`), :class:`PCMCell` (:class:`PCMCellState`), :class:`IGZOTransistor`, :class:`Cell2T0C`,
:class:`DicksonPump`, :class:`FloatingGateCell`, :class:`FeCap` and :class:`FeFET` (:class:`FerroelectricState`),
:class:`STTMRAM` (:func:`mram_switching_time`, :func:`mram_write_error_rate`), :class:`SkyWaterReRAM`
(:class:`SkyWaterState`); the composite :class:`OneTransistorOneResistor` (a two-terminal cell behind its access
transistor, :class:`EKVTransistor`).

**Cards and data** — parameter cards with units and provenance, measured CSV files, and the measured datasets
shipped with the package (:mod:`imcphys.datasets`): :func:`load_card`, :func:`read_card`, :func:`save_card`,
:func:`card_names`, :func:`cards_dir`, :func:`load_csv`, :class:`Dataset`, :func:`load_dataset`,
:func:`dataset_names`.

**Simulation** — :mod:`imcphys.simulate` (call it: ``imcphys.simulate(device, state0, stimulus, ts)``),
:class:`Solution`, :func:`apply_pulse`; stimuli in :mod:`imcphys.stimulus` (:class:`Pulse`,
:class:`PiecewiseLinear`, :func:`pulse_train`, :func:`triangle_sweep`, :func:`ramp`, :func:`hold`).

**Arrays** — populations (:mod:`imcphys.population`), program-and-verify (:mod:`imcphys.program`, call it:
``imcphys.program(population, scheme, targets, ...)``; :class:`AbstractScheme`, :class:`IncrementalAmplitude`,
:class:`FixedAmplitude`, :class:`Bidirectional`, :class:`Schedule`, :class:`Smoothing`, :class:`WriteCost`,
:class:`ProgramReport`, :func:`optimize_scheme`, :func:`grid_search`, :func:`random_search`,
:class:`SearchResult`), readout and calibration (:mod:`imcphys.readout`), crossbar parasitics
(:func:`solve_crossbar`, :func:`solve_crossbar_nodes`, :class:`CrossbarSolution`).

**Export** — :mod:`imcphys.export` (``imcphys export --card CARD --format verilog-a OUT``): a fitted card as the
parameter set of the official Verilog-A model.

**Fitting** — :mod:`imcphys.fit` (call it: ``imcphys.fit(device, experiments, free=[...], key=...)``),
:func:`fit_each`, :class:`FitResult`, :class:`BatchFitResult`, :class:`Experiment`, :class:`LogAbs`,
:class:`Relative`, :class:`Absolute`, :func:`dc_sweep`, :func:`pulse_response`, :func:`experiment_from`.

**Monte Carlo** — :mod:`imcphys.montecarlo` (call it: ``imcphys.montecarlo(study, card=..., cells=..., out=...,
key=...)``; ``client=`` runs it on a Dask cluster), :class:`MonteCarloResult`, :func:`get_study`,
:func:`study_names`, :func:`register_study`.

**Compilation** — :func:`enable_compilation_cache`: compiled kernels kept on disk between processes (entry points
call it; the library never does).

Submodules hold the rest of each layer's names (``imcphys.fit.Free``, ``imcphys.montecarlo.Study``,
``imcphys.program.Optimized`` …). ``imcphys.fit``, ``imcphys.simulate``, ``imcphys.program`` and
``imcphys.montecarlo`` are modules that are also callable as their main function (:mod:`imcphys._callable`).

The library never switches JAX to float64 by itself; entry points (tests, CLI, notebooks, experiments) do.
"""

from . import (
    constants as constants,
    datasets as datasets,
    fit as fit,
    models as models,
    montecarlo as montecarlo,
    population as population,
    program as program,
    readout as readout,
    simulate as simulate,
    stimulus as stimulus,
)
from ._compilation import enable_compilation_cache as enable_compilation_cache
from ._version import __version__ as __version__
from .cards import (
    card_names as card_names,
    cards_dir as cards_dir,
    load_card as load_card,
    read_card as read_card,
    save_card as save_card,
)
from .crossbar import (
    CrossbarSolution as CrossbarSolution,
    solve_crossbar as solve_crossbar,
    solve_crossbar_nodes as solve_crossbar_nodes,
)
from .data import Dataset as Dataset, load_csv as load_csv
from .datasets import dataset_names as dataset_names, load_dataset as load_dataset
from .device import (
    AbstractDevice as AbstractDevice,
    AbstractModel as AbstractModel,
    PulseResult as PulseResult,
    param as param,
    parameter_units as parameter_units,
    parameters as parameters,
    replace as replace,
)
from .fit import (
    Absolute as Absolute,
    BatchFitResult as BatchFitResult,
    Experiment as Experiment,
    FitResult as FitResult,
    LogAbs as LogAbs,
    Relative as Relative,
    dc_sweep as dc_sweep,
    experiment_from as experiment_from,
    fit_each as fit_each,
    pulse_response as pulse_response,
)
from .models import (
    STTMRAM as STTMRAM,
    Cell2T0C as Cell2T0C,
    DicksonPump as DicksonPump,
    EKVTransistor as EKVTransistor,
    FeCap as FeCap,
    FeFET as FeFET,
    FerroelectricState as FerroelectricState,
    FloatingGateCell as FloatingGateCell,
    IGZOTransistor as IGZOTransistor,
    OneTransistorOneResistor as OneTransistorOneResistor,
    PCMCell as PCMCell,
    PCMCellState as PCMCellState,
    PCMState as PCMState,
    PCMStatistical as PCMStatistical,
    SkyWaterReRAM as SkyWaterReRAM,
    SkyWaterState as SkyWaterState,
    StanfordReRAM as StanfordReRAM,
)
from .models.mram import mram_switching_time as mram_switching_time, mram_write_error_rate as mram_write_error_rate
from .montecarlo import (
    MonteCarloResult as MonteCarloResult,
    get_study as get_study,
    register_study as register_study,
    study_names as study_names,
)
from .program import (
    AbstractScheme as AbstractScheme,
    Bidirectional as Bidirectional,
    FixedAmplitude as FixedAmplitude,
    IncrementalAmplitude as IncrementalAmplitude,
    ProgramReport as ProgramReport,
    Schedule as Schedule,
    SearchResult as SearchResult,
    Smoothing as Smoothing,
    WordLineSchedule as WordLineSchedule,
    WriteCost as WriteCost,
    grid_search as grid_search,
    optimize_scheme as optimize_scheme,
    random_search as random_search,
)
from .simulate import Solution as Solution, apply_pulse as apply_pulse
from .stimulus import (
    PiecewiseLinear as PiecewiseLinear,
    Pulse as Pulse,
    hold as hold,
    pulse_train as pulse_train,
    ramp as ramp,
    triangle_sweep as triangle_sweep,
)
