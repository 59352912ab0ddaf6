"""Reports in headless Chromium: answers on the first screen, no empty figure, captions with n, readable numbers.

The tiny survey's report is always checked; ``saddle_to_saddle`` runs here at a reduced size unless
``results/saddle_to_saddle/survey.zarr`` exists, and ``default`` is checked when
``results/default/survey.zarr`` exists (``bash run.sh survey``). A screenshot of each report's first
screen is kept as a CI artefact: ``results/browser/<survey>-first-screen.png``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread

from analysis.formatting import RAW_SUFFIX
from pipeline.workflow.commands import report as report_command
from tests.analysis.helpers import REPO, run_in_process
from tests.analysis.test_report import NUMBER, significant_digits

SCREEN = (1280, 900)
"""Window of the first screen (width, height) in CSS pixels."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    f"--window-size={SCREEN[0]},{SCREEN[1]}",
)
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((image) => {
    const figure = image.closest("figure");
    const caption = figure ? figure.querySelector("figcaption") : null;
    return {src: image.getAttribute("src"), complete: image.complete, width: image.naturalWidth,
            alt: image.getAttribute("alt") || "", caption: caption ? caption.textContent : ""};
  });
  const answers = document.querySelector("section.answers");
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll("code, pre, script, style").forEach((node) => node.remove());
  const walker = document.createTreeWalker(prose, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode.data);
  const table = document.getElementById("summary");
  const result = {
    images,
    answers: answers ? answers.innerText : "",
    answersBottom: answers ? answers.getBoundingClientRect().bottom : -1,
    viewport: window.innerHeight,
    text: texts.join(" "),
    summaryRows: table ? table.querySelectorAll("tbody tr").length : 0,
  };
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (bash .ci/chromium-up)")


def _run(arguments: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _reduced_saddle_to_saddle(folder: Path) -> Path:
    """``surveys/saddle_to_saddle.yaml`` with fewer seeds and steps, run in-process; returns the store."""
    spec = yaml.safe_load((REPO / "surveys" / "saddle_to_saddle.yaml").read_text())
    spec["seeds"] = {"data": 2, "init": 4}
    spec["fixed"]["max_steps"] = 20_000
    folder.mkdir(parents=True)
    survey = folder / "saddle_to_saddle.yaml"
    survey.write_text(yaml.safe_dump(spec))
    return run_in_process(survey, folder)


@pytest.fixture(params=["tiny", "saddle_to_saddle", "default"])
def report_page(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(survey name, index.html) of each report the test opens."""
    name = request.param
    if name == "tiny":
        return name, request.getfixturevalue("tiny_report")
    store = REPO / "results" / name / "survey.zarr"
    folder = tmp_path_factory.mktemp(name)
    if not store.exists():
        if name != "saddle_to_saddle":
            pytest.skip(f"{store} does not exist (bash run.sh survey {name})")
        store = _reduced_saddle_to_saddle(folder / "survey")
    assert report_command.main([str(store), "--out", str(folder / "report")]) == 0
    return name, folder / "report" / "index.html"


def _probe(page: Path, profile: Path) -> dict:
    probe = page.with_name("probe.html")  # beside index.html, so relative figure links resolve alike
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], profile)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', dom.stdout, re.S)
    assert match, f"no probe result; chromium said: {dom.stderr[-2000:]}"
    text = match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*cannot be verified")  # results/ stores written before store checksums
def test_report_in_headless_chromium(report_page: tuple[str, Path], tmp_path: Path) -> None:
    name, page = report_page
    result = _probe(page, tmp_path / "profile-dom")
    assert result["answers"].count("%") >= 6
    for question in ("Where runs end.", "On the way.", "Escape neurons.", "Settings."):
        assert question in result["answers"]
    assert 0 < result["answersBottom"] <= result["viewport"], "the answers do not fit on the first screen"
    assert result["summaryRows"] >= 1
    assert len(result["images"]) >= 3
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0, image
        assert len(image["alt"]) > 10 and re.search(r"n = \d", image["caption"]), image
        pixels = imread(page.parent / image["src"])
        assert np.ptp(pixels[..., :3]) > 0.5, f"{image['src']} is blank"
        table = page.parent / "tables" / (Path(image["src"]).stem + ".csv")
        if table.exists() and "label" in (data := pd.read_csv(table)).columns:
            assert (data.groupby("label")[f"count{RAW_SUFFIX}"].sum() > 0).sum() >= 2, f"{image['src']}: one category"
    assert "no runs in this category" not in result["text"]
    crowded = [number for number in NUMBER.findall(result["text"]) if significant_digits(number) > 4]
    assert crowded == []

    screenshot = REPO / "results" / "browser" / f"{name}-first-screen.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = _run([f"--screenshot={screenshot}", page.as_uri()], tmp_path / "profile-shot")
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
