"""The demo report opens in a headless browser (Debian's chromium) without errors: the page parses, every figure
decodes, and the console stays silent. Skipped cleanly when chromium is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from imcphys.experiments import Figure, Section
from imcphys.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

#: Appended to a copy of the page: once everything has loaded, report how many images decoded.
PROBE = (
    "<script>window.addEventListener('load', () => { const im = Array.from(document.images); "
    "console.log('imcphys-probe images=' + im.length + ' broken=' + "
    "im.filter(i => !(i.complete && i.naturalWidth > 0)).length); });</script>"
)


def _open(page: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless chromium: (the DOM after load, the console messages)."""
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [m.group(1) for m in re.finditer(r":CONSOLE[^\]]*\] \"(.*)\", source:", proc.stderr)]
    return proc.stdout, console


def _probed(html: Path) -> Path:
    page = html.with_name("probed.html")
    page.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    return page


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A small report written by the demo's own writer: two sections, two figures, nested numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = tmp_path_factory.mktemp("report")
    sections = []
    for k, name in enumerate(("reram", "pcm_drift")):
        fig, ax = plt.subplots(figsize=(3, 2))
        t = np.logspace(0, 6, 20)
        ax.loglog(t, t ** -(0.05 * (k + 1)))
        path = out / f"{name}.png"
        fig.savefig(path, dpi=60)
        plt.close(fig)
        sections.append(
            Section(
                name=name,
                title=f"Section {name} <&>",
                text='Text with <b>markup</b> & quotes "',
                numbers={"a": 1.5, "nested": {"b": [1, 2, 3], "c": "x<y"}},
                figures=[Figure(path, f"caption {k}")],
                seconds=0.1,
            )
        )
    return write_report(sections, out)


def test_report_loads_without_errors(report):
    dom, console = _open(_probed(report))
    assert "imcphys demo report" in dom and dom.count("<h2") == 2 and dom.count("<img") == 2
    assert "<b>markup</b>" not in dom  # section text is escaped, not interpreted
    probes = [m for m in console if m.startswith("imcphys-probe")]
    assert probes == ["imcphys-probe images=2 broken=0"], console
    assert [m for m in console if not m.startswith("imcphys-probe")] == []


def test_broken_page_is_detected(tmp_path):
    """The harness sees what it must catch: a script error and an image that does not decode."""
    page = tmp_path / "index.html"
    page.write_text(
        "<!doctype html><html><body><img src='data:image/png;base64,AAAA'>"
        "<script>undefined_function();</script></body></html>"
    )
    _, console = _open(_probed(page))
    assert any("Uncaught ReferenceError" in m for m in console)
    assert "imcphys-probe images=1 broken=1" in console
