"""The device contract, checked for every card in ``devices/`` (a new family and its card get it for free).

Per card: every declared parameter range is enforced with an error that names the parameter (at construction and
through ``imcphys.replace``); and for its family's reference pulse (``device.reference_pulse()``) from
``initial_state()``:

- amplitudes outside ``amplitude_range()`` are refused (eagerly and under jit);
- read-after-program convention: the pulse returns a state of the initial state's structure, inside its physical
  range (``project`` leaves it unchanged), with a finite energy >= 0 and a duration >= the width, and ``read``
  after it is finite and differs from ``read`` before it;
- jit equals eager bit for bit, and vmap equals a Python loop (over cells and amplitudes);
- the gradient of the read value after the pulse with respect to the amplitude, the width and every parameter
  matches a central finite difference (float64, fixed-step path: the derivative of the discrete map);
- the fixed-step path (256 steps) agrees with the adaptive solve to 1 % (the accuracy populations are run at).

A family without single pulses (``PCMStatistical``: it models the outcome of closed-loop programming) is checked on
its drift ODE through :func:`imcphys.simulate` instead. Shapes are fixed per card, so each check compiles once.
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import imcphys
from imcphys.device import parameter_ranges, parameters

REPO = Path(__file__).resolve().parents[1]
CARDS = sorted((REPO / "devices").glob("*.toml"))
STEPS = 16  # fixed-step path of the contract (reused shape: one compilation per card and check)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


class Probe:
    """A card's device, its initial state and reference pulse, and the one operation the contract exercises."""

    def __init__(self, path: Path):
        self.card = imcphys.read_card(path)
        self.device = self.card.device()
        self.name = path.stem
        self.is_device = isinstance(self.device, imcphys.AbstractDevice)
        if not self.is_device:
            return
        self.state0 = self.device.initial_state()
        self.amplitude, self.width = (float(x) for x in self.device.reference_pulse())
        # a reference on the edge of amplitude_range() (Flash: max_amplitude) steps inside by 1e-5, so that the
        # finite differences of the gradient check (±1e-6) stay within the range
        (s_lo, s_hi), (r_lo, r_hi) = (tuple(float(x) for x in r) for r in self.device.amplitude_range())
        self.amplitude = min(max(self.amplitude, min(s_lo, r_lo) * (1 - 1e-5)), max(s_hi, r_hi) * (1 - 1e-5))
        try:
            self.device.pulse(self.state0, self.amplitude, self.width, fixed_steps=2)
            self.pulses = True
        except NotImplementedError:  # PCMStatistical: its drift from a programmed ("set") state for 100 s instead
            self.pulses = False
            self.state0 = self.device.initial_state("set")
            self.width = 100.0

    def step(self, device, amplitude, width, *, fixed_steps: int | None = STEPS):
        """The state after the reference operation: a pulse, or (no single pulses) a hold of the drive."""
        if self.pulses:
            return device.pulse(self.state0, amplitude, width, fixed_steps=fixed_steps)
        hold = imcphys.stimulus.hold(amplitude, width)
        ts = jnp.stack([jnp.zeros_like(width), width])
        sol = imcphys.simulate(device, self.state0, hold, ts, fixed_steps=fixed_steps)
        return imcphys.PulseResult(
            state=jax.tree_util.tree_map(lambda x: x[-1], sol.states), energy=sol.energy[-1], duration=width
        )

    def read_after(self, device, amplitude, width, *, fixed_steps: int | None = STEPS):
        return device.read(self.step(device, amplitude, width, fixed_steps=fixed_steps).state)


@pytest.fixture(scope="module", params=CARDS, ids=lambda p: p.stem)
def probe(request) -> Probe:
    return Probe(request.param)


def _device_only(probe: Probe) -> None:
    if not probe.is_device:
        pytest.skip(f"{probe.name}: a {type(probe.device).__name__} is a part, not a programmable device")


def _outside(r: dict) -> float | None:
    """A value just outside a declared range (None: unbounded both ways)."""
    if r["lower"] is not None:
        return r["lower"] - 1.0 - abs(r["lower"])
    if r["upper"] is not None:
        return r["upper"] + 1.0 + abs(r["upper"])
    return None


# ----------------------------------------------------------------------------------------------- parameters
def test_every_parameter_is_range_checked_by_name(probe):
    dev = probe.device
    cls = type(dev).__name__
    ranges = parameter_ranges(dev)
    assert ranges, f"{cls} declares no parameters"
    for name, r in ranges.items():
        value = getattr(dev, name)
        if np.size(value) == 0:  # an empty array parameter (e.g. no sampled domains) has nothing to check
            continue
        with pytest.raises(ValueError, match=rf"{cls}\.{name} must be finite"):
            imcphys.replace(dev, **{name: jnp.full_like(value, jnp.nan)})
        bad = _outside(r)
        if bad is not None:
            with pytest.raises(ValueError, match=rf"{cls}\.{name} must be finite and in [\[(]"):
                imcphys.replace(dev, **{name: jnp.full_like(value, bad)})
            with pytest.raises(ValueError, match=rf"{cls}\.{name}"):  # the constructor: the same check
                parts = {k: part.device() for k, part in probe.card.parts.items()}
                type(dev)(**{**parameters(dev), **probe.card.structure, **parts, name: bad})


# ------------------------------------------------------------------------------------------ the reference op
def test_read_after_program_convention(probe):
    _device_only(probe)
    dev, s0 = probe.device, probe.state0
    res = probe.step(dev, probe.amplitude, probe.width, fixed_steps=None)
    assert jax.tree_util.tree_structure(res.state) == jax.tree_util.tree_structure(s0)
    for new, old in zip(_leaves(res.state), _leaves(s0)):
        assert new.shape == old.shape and np.all(np.isfinite(new))
    for projected, new in zip(_leaves(dev.project(res.state)), _leaves(res.state)):
        np.testing.assert_allclose(projected, new, rtol=1e-12, atol=0)  # in range (a renormalisation may round)
    energy, duration = float(res.energy), float(res.duration)
    assert np.isfinite(energy) and energy >= 0.0
    assert duration >= probe.width
    before, after = float(dev.read(s0)), float(dev.read(res.state))
    assert np.isfinite(after) and abs(after - before) > 1e-3 * abs(before), (
        f"{probe.name}: the reference pulse {probe.amplitude:g}, {probe.width:g} s does not program "
        f"(read {before:g} -> {after:g})"
    )


def test_amplitudes_outside_the_range_are_refused(probe):
    """Every family's pulse (generic or its own) refuses an amplitude beyond amplitude_range(): eagerly a
    ValueError naming the amplitude, the range and the unit; under jit the runtime error of eqx.error_if."""
    _device_only(probe)
    if not probe.pulses:
        pytest.skip(f"{probe.name}: no single pulses")
    dev = probe.device
    (s_lo, s_hi), (r_lo, r_hi) = (tuple(float(x) for x in r) for r in dev.amplitude_range())
    cls, unit = type(dev).__name__, type(dev).amplitude_unit
    beyond = [max(s_hi, r_hi) * 1.01 + 1e-30, min(s_lo, r_lo) * 1.01 - 1e-30, float("nan")]
    for amplitude in beyond:
        with pytest.raises(ValueError, match=rf"{cls}\.pulse: amplitude .* {unit} is outside \[.*\] {unit}"):
            dev.pulse(probe.state0, amplitude, probe.width, fixed_steps=2)
    jitted = eqx.filter_jit(lambda d, a: d.pulse(probe.state0, a, probe.width, fixed_steps=2).energy)
    with pytest.raises(eqx.EquinoxRuntimeError, match=rf"{cls}\.pulse: amplitude outside"):
        jitted(dev, jnp.asarray(beyond[0]))


def test_jit_equals_eager_bit_for_bit(probe):
    _device_only(probe)
    # arrays, not Python floats: a float is a compile-time constant under jit, which XLA may fold differently
    a, w = jnp.asarray(probe.amplitude), jnp.asarray(probe.width)
    eager = probe.step(probe.device, a, w, fixed_steps=4)
    jitted = eqx.filter_jit(probe.step)(probe.device, a, w, fixed_steps=4)
    for a, b in zip(_leaves(eager), _leaves(jitted)):
        np.testing.assert_array_equal(a, b)


def test_vmap_equals_a_loop(probe):
    _device_only(probe)
    dev = probe.device
    specs = probe.card.variability_specs()
    cells = (
        imcphys.population.sample(dev, specs, 3, key=jax.random.key(0))
        if specs
        else imcphys.population.stack([dev] * 3)
    )
    amplitudes = jnp.asarray(probe.amplitude) * jnp.asarray([0.8, 0.9, 1.0])  # the reference may be the largest

    # both compiled (jit = eager is its own test): eagerly, each of their operations would compile on its own
    def read_after(d, a):
        return probe.read_after(d, a, probe.width)

    vmapped = eqx.filter_jit(eqx.filter_vmap(read_after))(cells, amplitudes)
    one = eqx.filter_jit(read_after)
    looped = [one(imcphys.population.take(cells, i), amplitudes[i]) for i in range(3)]
    np.testing.assert_allclose(np.asarray(vmapped), np.asarray(looped), rtol=1e-12, atol=0)


def test_gradients_match_finite_differences(probe):
    _device_only(probe)
    dev, a, w = probe.device, jnp.asarray(probe.amplitude), jnp.asarray(probe.width)
    # forward mode (one JVP per input, vmapped): it compiles in about half the time of reverse mode through the
    # longer pulse paths, and the reverse-mode gradient is its transpose (the families' own tests take jax.grad)
    grads, grad_a, grad_w = eqx.filter_jit(eqx.filter_jacfwd(lambda args: probe.read_after(*args)))((dev, a, w))
    # every finite difference in one vmapped call: the device, amplitude and width at x0 − h, x0 and x0 + h for
    # the amplitude, the width and each scalar parameter (h = 1e-6·|x0|)
    cases = [("amplitude", float(a), float(grad_a)), ("width", float(w), float(grad_w))]
    cases += [(n, float(v), float(getattr(grads, n))) for n, v in parameters(dev).items() if np.ndim(v) == 0]
    rows, outside = [(dev, a, w)], set()
    for name, x0, _ in cases:
        h = 1e-6 * abs(x0) if x0 != 0 else 1e-9
        for x in (x0 - h, x0 + h):
            if name == "amplitude":
                rows.append((dev, jnp.asarray(x), w))
            elif name == "width":
                rows.append((dev, a, jnp.asarray(x)))
            else:
                try:
                    rows.append((imcphys.replace(dev, **{name: x}), a, w))
                except ValueError:  # one side is outside the declared range: evaluate at x0 and skip it below
                    rows.append((dev, a, w))
                    outside.add(name)
    devices = imcphys.population.stack([r[0] for r in rows])
    values = eqx.filter_jit(eqx.filter_vmap(probe.read_after))(
        devices, jnp.stack([r[1] for r in rows]), jnp.stack([r[2] for r in rows])
    )
    values = np.asarray(values)
    mid, scale = values[0], abs(float(values[0]))
    for k, (name, x0, g) in enumerate(cases):
        if name in outside:
            continue
        lo, hi = values[1 + 2 * k], values[2 + 2 * k]
        h = 1e-6 * abs(x0) if x0 != 0 else 1e-9
        back, fd, fwd = (mid - lo) / h, (hi - lo) / (2 * h), (hi - mid) / h
        # compared as elasticities x·df/dx / |f|, so that parameters of any unit share one tolerance
        norm = abs(x0) / scale if x0 != 0 else 1.0 / scale
        if abs(fwd - back) * norm > 1e-3 * (1.0 + abs(fd) * norm):
            # a kink at x0 (e.g. the state starts on a bound that moves with the parameter): autodiff gives a
            # one-sided derivative or a convex combination of the two (jnp.clip splits a tie), each known to O(h)
            slack = (1e-4 + 1e-3 * max(abs(back), abs(fwd)) * norm) / norm
            assert min(back, fwd) - slack <= g <= max(back, fwd) + slack, (
                f"{probe.name}: d read/d {name} at a kink: autodiff {g:.6e}, one-sided {back:.6e} and {fwd:.6e}"
            )
            continue
        assert abs(g - fd) * norm <= 1e-5 + 1e-4 * abs(fd) * norm, (
            f"{probe.name}: d read/d {name}: autodiff {g:.6e}, finite difference {fd:.6e}"
        )


def test_fixed_step_agrees_with_adaptive(probe):
    _device_only(probe)
    fixed = float(probe.read_after(probe.device, probe.amplitude, probe.width, fixed_steps=256))
    adaptive = float(probe.read_after(probe.device, probe.amplitude, probe.width, fixed_steps=None))
    np.testing.assert_allclose(fixed, adaptive, rtol=1e-2)
