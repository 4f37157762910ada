"""Nothing silent: bad inputs across the API and the command line, each with the exact error class and a message
that names what is wrong (the column or parameter, its value or unit, and what is allowed).

One table for the API, one for the CLI. Almost every case fails in the checks before anything compiles; the few
that exercise a check under jit share small kernels.
"""

from __future__ import annotations

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import imcphys
from imcphys.cli import _Group, app
from imcphys.fit import MeasurementKind, measurement

RERAM = imcphys.StanfordReRAM()
PCM = imcphys.PCMCell()
CELL_2T0C = imcphys.Cell2T0C()
FLASH = imcphys.load_card("flash_fg")
PUMP = imcphys.load_card("dickson_tt07")


def csv(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def fit_kind(tmp_path, text: str, device, kind: str | None = None):
    return lambda: measurement(kind, imcphys.load_csv(csv(tmp_path, text)), device)


def card(tmp_path, text: str):
    path = tmp_path / "card.toml"
    path.write_text(text)
    return lambda: imcphys.read_card(path)


def latin1(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("T [°C],G [uS]\n25,1\n".encode("latin-1"))
    return path


def reram_card_without(name: str, extra_head: str = "") -> str:
    full = (imcphys.cards_dir() / "reram_stanford_v1.toml").read_text()
    kept = [line for line in full.splitlines() if not line.startswith(f"{name} ")]
    return "\n".join(kept).replace("[card]", f"[card]\n{extra_head}", 1) + "\n"


def jitted(f):
    """``f`` run under ``eqx.filter_jit`` (its checks are then the runtime errors of ``eqx.error_if``)."""
    return lambda *args: jax.block_until_ready(eqx.filter_jit(f)(*args))


DC = "t [s],V [V],I [A]\n0,0,1e-9\n1,0.1,2e-9\n"

# (id, builder(tmp_path) -> call, exception class, regex the message must match)
API_CASES = [
    # ----------------------------------------------------------------------------- units at every boundary
    (
        "current-in-parsecs",
        lambda p: fit_kind(p, "t [s],V [V],I [pc]\n0,0,1e-9\n1,0.1,2e-9\n", RERAM),
        ValueError,
        r"data.csv, column 'I \[pc\]': a 'dc' measurement of a StanfordReRAM needs I as a current "
        r"\(a unit like A\); got 'pc', a length",
    ),
    (
        "volts-and-amperes-swapped",
        lambda p: fit_kind(p, "t [s],V [A],I [V]\n0,0,1e-9\n1,0.1,2e-9\n", RERAM),
        ValueError,
        r"column 'V \[A\]': .* needs V as a voltage \(a unit like V\); got 'A', a current",
    ),
    (
        "pulse-width-in-volts",
        lambda p: fit_kind(p, "amplitude [V],width [V],I [A]\n1.5,1,1e-6\n", RERAM),
        ValueError,
        r"column 'width \[V\]': a 'pulse' measurement .* needs width as a time \(a unit like s\); got 'V'",
    ),
    (
        "pcm-conductance-in-ohm",
        lambda p: fit_kind(p, "t [s],G [ohm]\n1,4e4\n10,5e4\n", PCM),
        ValueError,
        r"column 'G \[ohm\]': a 'drift' measurement of a PCMCell needs G as a conductance \(a unit like S\)",
    ),
    (
        "igzo-temperature-in-seconds",
        lambda p: fit_kind(p, "t [s],T [s],I_read [A]\n1,300,1e-6\n10,300,9e-7\n", CELL_2T0C),
        ValueError,
        r"column 'T \[s\]': a 'retention' measurement of a Cell2T0C needs T as a temperature",
    ),
    (
        "flash-vth-in-amperes",
        lambda p: fit_kind(p, "amplitude [V],width [us],Vth [A]\n18,10,1\n", FLASH),
        ValueError,
        r"column 'Vth \[A\]': a 'vth' measurement of a FloatingGateCell needs Vth as a voltage",
    ),
    (
        "pump-clock-in-volts",
        lambda p: fit_kind(p, "f_clk [V],V_out [V]\n1e6,3\n", PUMP),
        ValueError,
        r"column 'f_clk \[V\]': a 'pump' measurement of a DicksonPump needs f_clk as a frequency",
    ),
    (
        "dc_sweep-builder-current-in-volts",
        lambda p: lambda: imcphys.dc_sweep(imcphys.load_csv(csv(p, "t [s],V [V],I [V]\n0,0,1\n1,0.1,2\n"))),
        ValueError,
        r"column 'I \[V\]': a DC sweep needs I as a current",
    ),
    (
        "pulse-file-with-a-5V-row",
        lambda p: fit_kind(p, "amplitude [V],width [ns],I [A]\n1.8,100,1e-4\n5,100,1e-4\n", RERAM),
        ValueError,
        r"data.csv, row 3, column 'amplitude \[V\]': StanfordReRAM.pulse: amplitude 5 V is outside \[-3, 3\] V",
    ),
    (
        "retention-file-at-1e6K",
        lambda p: fit_kind(p, "t [s],T [K],I_read [A]\n1,1e6,1e-6\n10,1e6,9e-7\n", CELL_2T0C),
        ValueError,
        r"data.csv, row 2, column 'T \[K\]': T must be finite and in \(0, 873.15\] K",
    ),
    (
        "bake-file-above-melting",
        lambda p: fit_kind(p, "t [s],T [degC],G [uS]\n1,85,1\n10,700,1\n", PCM),
        ValueError,
        r"data.csv, row 3, column 'T \[degC\]': T must be finite and in \(0, 900\) K",
    ),
    (
        "pump-negative-clock",
        lambda p: fit_kind(p, "f_clk [kHz],V_out [V]\n-10,1\n50,2\n", PUMP),
        ValueError,
        r"row 2, column 'f_clk \[kHz\]'.*clock frequency must be >= 0 Hz",
    ),
    (
        "csv-not-utf8",
        lambda p: lambda: imcphys.load_csv(latin1(p)),
        ValueError,
        r"latin1.csv: not UTF-8 or UTF-16 text",
    ),
    (
        "measurement-kind-without-units",
        lambda p: lambda: MeasurementKind((("t", "G"),), lambda *a, **k: None, units={"t": "s"}),
        ValueError,
        r"give the unit of column\(s\) \['G'\] in units=",
    ),
    (
        "card-missing-a-parameter",
        lambda p: card(p, reram_card_without("i0")),
        ValueError,
        r"card.toml: missing parameter\(s\) \['i0'\] of StanfordReRAM; .*defaults = \"model\"",
    ),
    (
        "card-defaults-not-model",
        lambda p: card(p, reram_card_without("i0", 'defaults = "builtin"')),
        ValueError,
        r'card.toml: \[card\] defaults must be "model"',
    ),
    (
        "card-value-of-wrong-dimension",
        lambda p: card(
            p, reram_card_without("i0").replace("[parameters]", '[parameters]\ni0 = { value = 1, unit = "mV" }')
        ),
        ValueError,
        r"parameter 'i0': unit 'mV' cannot be converted to 'A'",
    ),
    # ------------------------------------------------------------------------------------- amplitude limits
    (
        "reram-5V-set",
        lambda p: lambda: RERAM.pulse(RERAM.gap_max, 5.0, 100e-9, fixed_steps=8),
        ValueError,
        r"StanfordReRAM.pulse: amplitude 5 V is outside \[-3, 3\] V \(amplitude_range\(\): SET/program 0 to 3 V, "
        r"RESET/erase -3 to 0 V\); it is refused, not clipped",
    ),
    (
        "reram-minus-8V-adaptive-apply_pulse",
        lambda p: lambda: imcphys.apply_pulse(RERAM, RERAM.gap_min, -8.0, 100e-9),
        ValueError,
        r"amplitude -8 V is outside \[-3, 3\] V",
    ),
    (
        "reram-nan-amplitude",
        lambda p: lambda: imcphys.apply_pulse(RERAM, RERAM.gap_min, float("nan"), 100e-9, fixed_steps=8),
        ValueError,
        r"StanfordReRAM.pulse: amplitude nan V is outside",
    ),
    (
        "reram-5V-under-jit",
        lambda p: (
            lambda: jitted(lambda d, a: imcphys.apply_pulse(d, d.gap_max, a, 100e-9, fixed_steps=8))(
                RERAM, jnp.asarray(5.0)
            )
        ),
        eqx.EquinoxRuntimeError,
        r"StanfordReRAM.pulse: amplitude outside \[-3, 3\] V",
    ),
    (
        "pcm-cell-200uA",
        lambda p: lambda: PCM.pulse(PCM.initial_state(), 200e-6, 1e-6),
        ValueError,
        r"PCMCell.pulse: amplitude 0.0002 A is outside \[-0.00015, 9.5e-05\] A",
    ),
    (
        "flash-30V",
        lambda p: lambda: FLASH.pulse(FLASH.initial_state(), 30.0, 10e-6, fixed_steps=8),
        ValueError,
        r"FloatingGateCell.pulse: amplitude 30 V is outside \[-22, 22\] V",
    ),
    (
        "2t0c-negative-write-level",
        lambda p: lambda: CELL_2T0C.pulse(CELL_2T0C.initial_state(), -0.5, 50e-9),
        ValueError,
        r"Cell2T0C.pulse: amplitude -0.5 V is outside \[0, 2\] V .*no RESET polarity",
    ),
    (
        "pump-load-of-1A",
        lambda p: lambda: PUMP.pulse(PUMP.initial_state(), 1.0, 1e-6, fixed_steps=8),
        ValueError,
        r"DicksonPump.pulse: amplitude 1 A is outside",
    ),
    # ---------------------------------------------------------------- replace and temperatures, as constructed
    (
        "replace-minus-5K",
        lambda p: lambda: imcphys.replace(RERAM, ambient_temperature=-5.0),
        ValueError,
        r"StanfordReRAM.ambient_temperature must be finite and in \(0, 3031\] K; got -5.0",
    ),
    (
        "replace-negative-oxide",
        lambda p: lambda: imcphys.replace(RERAM, oxide_thickness=-12e-9),
        ValueError,
        r"StanfordReRAM.oxide_thickness must be finite and in \(0, inf\) m",
    ),
    (
        "replace-1e6K",
        lambda p: lambda: imcphys.replace(RERAM, ambient_temperature=1e6),
        ValueError,
        r"StanfordReRAM.ambient_temperature must be finite and in \(0, 3031\] K; got 1000000.0",
    ),
    (
        "replace-minus-5K-under-jit",
        lambda p: (
            lambda: jitted(lambda d, t: imcphys.replace(d, ambient_temperature=t).temperature(d.gap_min, 0.1))(
                RERAM, jnp.asarray(-5.0)
            )
        ),
        eqx.EquinoxRuntimeError,
        r"StanfordReRAM.ambient_temperature must be finite and in \(0, 3031\] K",
    ),
    (
        "2t0c-at-1e6K",
        lambda p: lambda: CELL_2T0C.at_temperature(1e6),
        ValueError,
        r"temperature must be finite and in \(0, 873.15\] K; got 1000000.0",
    ),
    (
        "2t0c-at-1e6K-under-vmap",
        lambda p: lambda: jax.vmap(lambda t: CELL_2T0C.at_temperature(t).temperature)(jnp.asarray([300.0, 1e6])),
        eqx.EquinoxRuntimeError,
        r"temperature must be finite and in \(0, 873.15\] K",
    ),
    (
        "pcm-bake-above-melting",
        lambda p: lambda: PCM.relax(PCM.initial_state(), 10.0, 1000.0),
        ValueError,
        r"temperature must be finite and in \(0, 900\) K \(melting_temperature\); got 1000.0",
    ),
    (
        "pcm-read-at-minus-1K",
        lambda p: lambda: PCM.conductance(PCM.initial_state(), -1.0),
        ValueError,
        r"temperature must be finite and in \(0, 900\) K",
    ),
    (
        "pcm-simulate-drive-1e6K",
        lambda p: lambda: imcphys.simulate(PCM, PCM.initial_state(), imcphys.hold(1e6, 100.0), jnp.array([0.0, 1.0])),
        ValueError,
        r"stimulus must be finite and in \(0, 900\) K \(PCMCell.drive_range\(\)\); got 1000000.0",
    ),
    (
        "study-reram-1e6K",
        lambda p: lambda: imcphys.get_study("reram_pulse_read", card="reram_stanford_v1", temperatures=[300.0, 1e6]),
        ValueError,
        r"temperatures must be finite and in \(0, 3031\] K; got 1000000.0",
    ),
    (
        "study-igzo-1e6K",
        lambda p: lambda: imcphys.get_study("igzo_retention_ber", card="igzo_2t0c_li2025", temperatures=[1e6]),
        ValueError,
        r"temperatures must be finite and in \(0, 873.15\] K",
    ),
    (
        "study-pcm-bake-at-melting",
        lambda p: lambda: imcphys.get_study("pcm_bake", card="pcm_cell_gst", temperatures=[358.15, 2000.0]),
        ValueError,
        r"temperatures must be finite and in \(0, \d+\) K \(melting_temperature\); got 2000.0",
    ),
]


@pytest.mark.parametrize("make, error, message", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_bad_input_raises_naming_it(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        make(tmp_path)()


# ------------------------------------------------------------------------------------------------------- CLI
def cli(args: list[str]):
    return CliRunner().invoke(app, args)


def only_error_line(run) -> str:
    """The one line the command printed (an ``error:`` line); fails on anything else."""
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), run.output
    return lines[0]


MC = ["mc", "--card", "reram_stanford_v1", "--study", "reram_pulse_read", "--cells", "10", "--no-progress"]
CLI_CASES = [
    ("mc-card-not-found", ["mc", "--card", "nope", "--study", "reram_pulse_read", "--cells", "1"], r"card not found"),
    ("mc-1e6K", [*MC, "--set", "temperatures=[1e6]"], r"temperatures must be finite and in \(0, 3031\] K"),
    ("mc-5V-set", [*MC, "--set", "set_amplitude=5"], r"set_amplitude must be finite and in \(0, 3\] V; got 5.0"),
    ("mc-unknown-study", [*MC, "--study", "nope"], r"unknown Monte Carlo study 'nope'"),
    ("mc-unknown-option", [*MC, "--set", "colour=red"], r"study 'reram_pulse_read': bad options \['colour'\]"),
    ("mc-option-not-name-value", [*MC, "--set", "novalue"], r"--set: write study options as NAME=VALUE"),
    ("mc-zero-cells", [*MC, "--cells", "0"], r"cells must be an integer >= 1"),
    ("mc-missing-option", ["mc", "--card", "reram_stanford_v1", "--cells", "1"], r"missing option\(s\) --study"),
    ("unknown-command", ["export-everything"], r"No such command 'export-everything'"),
    ("demo-unknown-section", ["demo", "--section", "nope"], r"unknown demo section\(s\) \['nope'\]"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_prints_one_error_line_and_exits_2(tmp_path, args, message):
    if "--out" not in args and args[0] == "mc":
        args = [*args, "--out", str(tmp_path / "run")]
    run = cli(args)
    assert run.exit_code == 2, run.output
    assert re.search(message, only_error_line(run)), run.output


@pytest.mark.parametrize(
    "data, card_text, message",
    [
        ("t [s],V [V],I [pc]\n0,0,1e-9\n1,0.1,2e-9\n", None, r"column 'I \[pc\]': .* needs I as a current"),
        (None, None, r"data file not found"),
        (DC, reram_card_without("i0"), r"missing parameter\(s\) \['i0'\]"),
    ],
    ids=["current-in-parsecs", "missing-data-file", "card-missing-a-parameter"],
)
def test_cli_fit_bad_input(tmp_path, data, card_text, message):
    card_path = tmp_path / "card.toml"
    card_path.write_text(card_text or (imcphys.cards_dir() / "reram_stanford_v1.toml").read_text())
    data_path = tmp_path / "cell.csv"
    if data is not None:
        data_path.write_text(data)
    run = cli(["fit", "--card", str(card_path), "--data", str(data_path), "--free", "i0", "--out", str(tmp_path)])
    assert run.exit_code == 2, run.output
    assert re.search(message, only_error_line(run)), run.output


def test_debug_shows_the_traceback_anywhere_on_the_line(tmp_path):
    for args in (["--debug", *MC, "--study", "nope"], [*MC, "--study", "nope", "--debug"]):
        run = cli([*args, "--out", str(tmp_path / "run")])
        assert run.exit_code == 2
        assert "Traceback (most recent call last)" in run.output and "get_study" in run.output
        assert run.output.strip().splitlines()[-1].startswith("error: unknown Monte Carlo study 'nope'")


def test_commands_added_later_get_the_same_error_handling():
    """What a new command (``imcphys export`` …) gets from the group without a line of its own: a check that
    failed under jit as one line (exit 2), and a bug as one line that says how to see it (exit 1)."""
    extra = typer.Typer(cls=_Group)

    @extra.command()
    def export(amplitude: float = 5.0) -> None:
        eqx.filter_jit(lambda d, a: d.pulse(d.gap_max, a, 1e-7, fixed_steps=2).energy)(RERAM, jnp.asarray(amplitude))

    @extra.command()
    def export_jax_jit(amplitude: float = 5.0) -> None:  # jax.jit wraps the check's error in a JaxRuntimeError
        jax.jit(lambda a: RERAM.pulse(RERAM.gap_max, a, 1e-7, fixed_steps=2).energy)(jnp.asarray(amplitude))

    @extra.command()
    def broken() -> None:
        raise ZeroDivisionError("division by zero")  # stands for a bug in the command

    run = CliRunner().invoke(extra, ["export"])
    assert run.exit_code == 2
    assert only_error_line(run).startswith("error: StanfordReRAM.pulse: amplitude outside [-3, 3] V")
    run = CliRunner().invoke(extra, ["export-jax-jit"])
    assert run.exit_code == 2
    assert only_error_line(run).startswith("error: StanfordReRAM.pulse: amplitude outside [-3, 3] V")
    run = CliRunner().invoke(extra, ["broken"])
    assert run.exit_code == 1
    assert only_error_line(run) == (
        "error: internal error (ZeroDivisionError: division by zero); rerun with --debug for the traceback and "
        "report it"
    )


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_program_and_verify_never_asks_for_an_amplitude_outside_the_range(dtype):
    """Program-and-verify clips a scheme's amplitudes to the device's range, also in smooth mode: there the
    softplus clip rounded past the bound far beyond it (measured: 1e-10 V above 3 V in float64, 0.07 V in float32),
    which the device would now refuse in the middle of an optimisation."""
    from imcphys.program import _clip

    x = jnp.asarray(np.concatenate([np.linspace(-50.0, 50.0, 100001), np.geomspace(3.0, 1e6, 10001)]), dtype)
    for tau in (3e-3, 3e-2, 1.5):
        for mode in ("smooth", "straight_through", "exact"):
            clipped = np.asarray(_clip(mode, x, 0.0, 3.0, jnp.asarray(tau, dtype)))
            assert clipped.min() >= 0.0 and clipped.max() <= 3.0, (mode, tau)
