"""report.html opens in headless Chromium, its scripts run and the Pareto plot is drawn.

Skips when no ``chromium`` (or ``chromium-browser``) binary is on PATH; ``.ci/run`` installs
Debian's. Set ``WATTLM_KEEP_SCREENSHOT=1`` to keep the screenshot at
``runs/report-screenshot.png`` (relative to the repository root).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from wattlm.report.optimize_plot import pareto_figure
from wattlm.report.optimize_report import write_reports
from wattlm.report.optimize_view import OptimizeView
from wattlm.testing.optimize_record import sample_optimize_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 2000
KEPT = Path(__file__).resolve().parents[2] / "runs" / "report-screenshot.png"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium or chromium-browser on PATH (Debian: apt-get install chromium)",
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=5000",  # let the page's scripts finish before the capture
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("optimize-report")
    html, _ = write_reports(sample_optimize_record(), out)
    return html


def test_screenshot_is_taken(report, tmp_path):
    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", report.as_uri())
    assert shot.is_file(), f"no screenshot; chromium said:\n{run.stderr[-2000:]}"
    assert _png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few kB
    if os.environ.get("WATTLM_KEEP_SCREENSHOT"):
        KEPT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, KEPT)


def test_plot_is_rendered_by_its_scripts(report, tmp_path):
    """The DOM after the scripts ran holds plotly's SVG and one path per plotted point:
    none of it is in the file, so this fails when the scripts do not run."""
    source = report.read_text(encoding="utf-8")
    assert 'class="main-svg"' not in source  # not drawn before the browser runs plotly
    run = _chromium(tmp_path, "--dump-dom", report.as_uri())
    dom = run.stdout
    assert "<body" in dom, f"no DOM dumped; chromium said:\n{run.stderr[-2000:]}"
    assert dom.count('class="main-svg"') >= 2
    fig = pareto_figure(OptimizeView(sample_optimize_record()))
    points = sum(len(t["x"]) for t in fig["data"] if t["mode"] == "markers")
    assert points == 13
    assert dom.count('class="point"') == points
    assert 'class="js-line"' in dom  # the Pareto front
    assert "recommended: #10 prune-ffn 10% + int4 g32, batch 8" in dom  # the star's note
    assert "budget +2% (perplexity ≤ 17.85)" in dom
    assert 'class="legendtext"' in dom and ">llama.cpp default, batch 1<" in dom


_CLICK = """<script>
(function () {
  var heads = document.querySelectorAll("#trials-table thead th");
  var energy = Array.prototype.filter.call(heads, function (th) {
    return th.textContent.indexOf("energy") === 0;
  })[0];
  for (var i = 0; i < CLICKS; i++) energy.querySelector("button").click();
  var order = Array.prototype.map.call(
    document.querySelectorAll("#trials-table tbody tr"),
    function (tr) { return tr.cells[0].textContent.trim(); });
  document.body.setAttribute("data-order", order.join(","));
  document.body.setAttribute("data-sorted", energy.getAttribute("aria-sort"));
})();
</script></body>"""


@pytest.mark.parametrize(
    ("clicks", "direction", "order"),
    [
        (1, "ascending", "10,12,4,6,9,8,2,5,3,1,7,0,11"),
        (2, "descending", "0,7,1,3,5,2,8,9,4,6,12,10,11"),
    ],
)
def test_clicking_a_header_sorts_the_trials(report, tmp_path, clicks, direction, order):
    """The table's own script sorts by the clicked column; trials with no figure go last."""
    page = tmp_path / "clicked.html"
    text = report.read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", _CLICK.replace("CLICKS", str(clicks))))
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert f'data-sorted="{direction}"' in dom
    assert f'data-order="{order}"' in dom
