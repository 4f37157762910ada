r"""Flash programmed through a charge pump: one family in four files.

- :mod:`.pump` — the Dickson charge pump (averaged model, closed-form steady state), :class:`DicksonPump`;
- :mod:`.switched_pump` — the switched reference model of the pump (:func:`simulate_switched`,
  :func:`switched_steady_state`);
- :mod:`.floating_gate` — Fowler–Nordheim tunnelling and the floating-gate (or charge-trap) cell,
  :class:`FloatingGateCell`;
- :mod:`.programming` — the pump feeding the word line during a pulse (:func:`program_wordline`) and
  incremental step pulse programming (:func:`ispp`).

Each module's docstring carries its equations, units and sources.
"""

from .floating_gate import (
    EPS_OX as EPS_OX,
    FloatingGateCell as FloatingGateCell,
    fowler_nordheim_coefficients as fowler_nordheim_coefficients,
    fowler_nordheim_current_density as fowler_nordheim_current_density,
    vth_pulses as vth_pulses,
)
from .programming import (
    IsppResult as IsppResult,
    WordlinePulse as WordlinePulse,
    ispp as ispp,
    program_wordline as program_wordline,
    program_wordline_switched as program_wordline_switched,
)
from .pump import (
    PUMP_PARAMS as PUMP_PARAMS,
    DicksonPump as DicksonPump,
    PumpSteadyState as PumpSteadyState,
    pump_output as pump_output,
)
from .switched_pump import (
    AbstractPumpLoad as AbstractPumpLoad,
    SwitchedSolution as SwitchedSolution,
    simulate_switched as simulate_switched,
    switched_steady_state as switched_steady_state,
)
