"""Measured data from CSV: unit conversion to SI and errors that name the file, row and column."""

from __future__ import annotations

import numpy as np
import pytest

import imcphys
from imcphys.data import Dataset, load_csv, si_unit


def write(tmp_path, text: str, name: str = "cell07_dc.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_units_in_headers_are_converted_to_si(tmp_path):
    path = write(
        tmp_path,
        "# probe station export, cell 07\n"
        "t [ms],V [V],I [uA],G [uS],T [degC],n [1]\n"
        "0,0,0,25,25,1\n"
        "0.5,0.1,2.5,30,85,2\n",
    )
    data = load_csv(path)
    assert data.names == ["t", "V", "I", "G", "T", "n"]
    np.testing.assert_allclose(data["t"], [0.0, 5e-4], rtol=1e-15)
    np.testing.assert_allclose(data["I"], [0.0, 2.5e-6], rtol=1e-15)
    np.testing.assert_allclose(data["G"], [25e-6, 30e-6], rtol=1e-15)
    np.testing.assert_allclose(data["T"], [298.15, 358.15], rtol=1e-15)  # offset unit: 25 °C = 298.15 K
    assert [data.si_units[n] for n in data.names] == ["s", "V", "A", "S", "K", "1"]
    assert data.unit("I") == "uA" and data.label("G") == "G [S]"
    np.testing.assert_array_equal(data.rows, [3, 4])  # file line numbers (comment, header, data)
    assert si_unit("kOhm") == "ohm" and si_unit("MHz") == "Hz"


def test_round_trip_through_to_csv(tmp_path):
    data = Dataset.from_arrays({"t": ([0.0, 1.0, 2.0], "us"), "G": ([1.0, 2.5, 4.0], "uS")})
    again = load_csv(data.to_csv(tmp_path / "g.csv"))
    assert again.units == {"t": "us", "G": "uS"}
    for name in ("t", "G"):
        np.testing.assert_allclose(again[name], data[name], rtol=1e-14)


def test_header_units_may_be_supplied_for_files_without_them(tmp_path):
    # the TT07 pump as published upstream: headers like 'f_clk_kHz' carry their unit in the name
    path = tmp_path / "upstream.csv"
    path.write_text("f_clk_kHz,v_ua0_measured_V,v_pump_V_(=2*ua0)\n0,0.065,0.130\n10,0.236,0.472\n50,0.643,1.286\n")
    data = load_csv(path, units={"f_clk_kHz": "kHz", "v_ua0_measured_V": "V", "v_pump_V_(=2*ua0)": "V"})
    assert data["f_clk_kHz"][2] == pytest.approx(50e3)  # 50 kHz row of the published table
    np.testing.assert_allclose(data["v_pump_V_(=2*ua0)"], 2 * data["v_ua0_measured_V"], atol=1.5e-3)


def test_embedded_datasets_load_in_si_with_their_provenance():
    assert "dickson_tt07" in imcphys.dataset_names()
    data = imcphys.load_dataset("dickson_tt07")
    assert data["f_clk"][2] == pytest.approx(50e3)  # the 50 kHz row, in Hz
    np.testing.assert_allclose(data["V_out"], 2 * data["V_pin"], atol=1.5e-3)  # the chip halves the output
    note = imcphys.datasets.provenance("dickson_tt07")
    assert "4420d41c16760fd295af623b5e845046f05fb0ba" in note and "Apache-2.0" in note
    assert (imcphys.datasets.dataset_dir("dickson_tt07") / "LICENSE").is_file()
    with pytest.raises(ValueError, match="unknown dataset 'nope'; known: .*dickson_tt07"):
        imcphys.load_dataset("nope")


GOOD_HEADER = "t [s],V [V],I [A]\n"


@pytest.mark.parametrize(
    "text, row, column, message",
    [
        ("", 1, None, "empty file"),
        ("# only a comment\n", 1, None, "empty file"),
        (GOOD_HEADER, 2, None, "no data rows"),
        ("t [s],V [V]\n0,0\n", 1, None, "missing column"),
        ("t [s],V [V],I [zorks]\n0,0,0\n", 1, "I [zorks]", "unknown unit"),
        ("t [s],V [V],I\n0,0,0\n", 1, "I", "no unit"),
        (GOOD_HEADER + "0,0,0\n1e-3,0.1,nan\n", 3, "I [A]", "not finite"),
        (GOOD_HEADER + "0,0,0\n1e-3,inf,1e-6\n", 3, "V [V]", "not finite"),
        (GOOD_HEADER + "0,0,0\n1e-3,0.1,1e-6\n2e-3,0.2,1e-6\n1.5e-3,0.3,1e-6\n", 5, "t [s]", "increase"),
        (GOOD_HEADER + "0,0,0\n0,0.1,1e-6\n", 3, "t [s]", "increase"),
        (GOOD_HEADER + "0,0,0\n1e-3,0.1,one\n", 3, "I [A]", "not a number"),
        (GOOD_HEADER + "0,0,0\n1e-3,,1e-6\n", 3, "V [V]", "empty cell"),
        (GOOD_HEADER + "0,0,0\n1e-3,0.1\n", 3, None, "2 cells"),
        ("t [s],V [V],V [mV]\n0,0,0\n", 1, "V [mV]", "twice"),
    ],
)
def test_malformed_csv_names_file_row_and_column(tmp_path, text, row, column, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load_csv(path, require=["t", "V", "I"])
    msg = str(err.value)
    assert str(path) in msg and f"row {row}" in msg and message in msg, msg
    if column is not None:
        assert f"column {column!r}" in msg, msg


def test_missing_column_names_what_is_missing_and_what_is_there(tmp_path):
    path = write(tmp_path, "t [s],V [V]\n0,0\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) 'I \[unit\]'; columns found: \['t', 'V'\]"):
        load_csv(path, require=["t", "V", "I"])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_csv(tmp_path / "nope.csv")


def test_experiment_columns_are_checked_where_the_data_are_used(tmp_path):
    path = write(tmp_path, "t [s],V [V],G [uS]\n0,0,1\n1,0.1,2\n")
    with pytest.raises(ValueError, match=r"cell07_dc.csv.*missing column\(s\) 'I \[unit\]'"):
        imcphys.dc_sweep(load_csv(path))
    bad = write(tmp_path, "amplitude [V],width [ns],I [A]\n1.5,50,1e-6\n1.5,0,1e-6\n", "pulses.csv")
    with pytest.raises(ValueError, match=r"pulses.csv, row 3, column 'width \[ns\]': pulse width must be > 0"):
        imcphys.pulse_response(load_csv(bad))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbft [ms],V [V],I [uA]\r\n0,0,0\r\n0.5,0.1,2.5\r\n",  # Excel "CSV UTF-8": a byte-order mark
        b"t [ms]\tV [V]\tI [uA]\n0\t0\t0\n0.5\t0.1\t2.5\n",  # "Text (tab delimited)"
        b"t [ms];V [V];I [uA]\n0;0;0\n0,5;0,1;2,5\n",  # "CSV" where the decimal mark is a comma
        "t [ms]\tV [V]\tI [uA]\r\n0\t0\t0\r\n0.5\t0.1\t2.5\r\n".encode("utf-16"),  # "Unicode text": UTF-16 + BOM
    ],
    ids=["utf8-bom", "tab", "semicolon-decimal-comma", "utf16-tab"],
)
def test_spreadsheet_exports_read_like_plain_csv(tmp_path, raw):
    path = tmp_path / "export.csv"
    path.write_bytes(raw)
    data = load_csv(path)
    assert data.names == ["t", "V", "I"]  # no byte-order mark glued to 't'
    np.testing.assert_allclose(data["t"], [0.0, 5e-4], rtol=1e-15)
    np.testing.assert_allclose(data["V"], [0.0, 0.1], rtol=1e-15)
    np.testing.assert_allclose(data["I"], [0.0, 2.5e-6], rtol=1e-15)
    np.testing.assert_array_equal(data.rows, [2, 3])
