"""Stimuli: exact waveform values and differentiability in amplitude and width."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import imcphys
from imcphys.stimulus import Pulse, concatenate, hold, pulse_train, ramp, triangle_sweep


def test_trapezoid_corners_and_plateau_closed():
    p = Pulse(2.0, 10e-9, rise=2e-9, fall=4e-9, delay=1e-9, base=0.5)
    t = jnp.array([0.0, 1e-9, 2e-9, 3e-9, 8e-9, 13e-9, 15e-9, 17e-9, 20e-9])
    expected = [0.5, 0.5, 1.25, 2.0, 2.0, 2.0, 1.25, 0.5, 0.5]
    np.testing.assert_allclose(p(t), expected, rtol=1e-12)
    assert float(p.duration) == pytest.approx(16e-9)


def test_ideal_rectangle_holds_amplitude_on_closed_interval():
    p = Pulse(-1.3, 100e-9)
    np.testing.assert_allclose(p(jnp.array([-1e-12, 0.0, 50e-9, 100e-9, 100.001e-9])), [0, -1.3, -1.3, -1.3, 0])


def test_pulse_differentiable_in_amplitude_and_width():
    # area of a trapezoid = A (w + (r + f)/2); integrate numerically and differentiate through the waveform
    def area(a, w):
        p = Pulse(a, w, rise=1e-9, fall=1e-9)
        t = jnp.linspace(0.0, 40e-9, 40001)
        return jnp.trapezoid(p(t), t)

    da, dw = jax.grad(area, argnums=(0, 1))(1.5, 20e-9)
    assert float(da) == pytest.approx(21e-9, rel=1e-4)
    assert float(dw) == pytest.approx(1.5, rel=1e-3)


def test_triangle_train_ramp_hold_concatenate():
    tri = triangle_sweep(2.0, 4e-3)
    np.testing.assert_allclose(tri(jnp.array([0, 2e-3, 4e-3, 6e-3, 8e-3, 12e-3, 16e-3])), [0, 1, 2, 1, 0, -2, 0])
    train = pulse_train(jnp.array([1.0, 2.0, 3.0]), 10e-9, 50e-9)
    np.testing.assert_allclose(train(jnp.array([5e-9, 55e-9, 105e-9, 130e-9])), [1, 2, 3, 0])
    seq = concatenate(ramp(0.0, 1.0, 1.0), hold(1.0, 2.0))
    np.testing.assert_allclose(seq(jnp.array([0.5, 2.0, 3.5])), [0.5, 1.0, 1.0])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(width=0.0), "width"),
        (dict(width=-1e-9), "width"),
        (dict(rise=-1e-9), "rise"),
        (dict(amplitude=float("nan")), "amplitude"),
    ],
)
def test_bad_pulse_raises_naming_parameter(kwargs, name):
    args = dict(amplitude=1.0, width=1e-9) | kwargs
    with pytest.raises(ValueError, match=name):
        Pulse(args.pop("amplitude"), args.pop("width"), **args)


def test_bad_width_under_jit_raises():
    f = jax.jit(lambda w: Pulse(1.0, w)(0.0))
    with pytest.raises(Exception, match="width"):
        f(-1.0).block_until_ready()
    assert imcphys.Pulse is Pulse
