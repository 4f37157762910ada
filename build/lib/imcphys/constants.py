"""Physical constants (CODATA 2018 exact SI values) and the thermal voltage."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

#: Elementary charge q [C] (exact, SI 2019).
Q = 1.602176634e-19
#: Boltzmann constant k_B [J/K] (exact, SI 2019).
K_B = 1.380649e-23
#: Planck constant h [J s] (exact, SI 2019).
H = 6.62607015e-34
#: Electron rest mass m_0 [kg] (CODATA 2018).
M_E = 9.1093837015e-31
#: Vacuum permittivity epsilon_0 [F/m] (CODATA 2018).
EPS_0 = 8.8541878128e-12
#: Boltzmann constant in eV/K.
K_B_EV = K_B / Q
#: 0 degC in kelvin.
ZERO_CELSIUS = 273.15


def thermal_voltage(temperature: ArrayLike) -> Float[Array, "..."]:
    """Thermal voltage kT/q [V] at ``temperature`` [K] (25.85 mV at 300 K)."""
    return K_B * jnp.asarray(temperature) / Q
