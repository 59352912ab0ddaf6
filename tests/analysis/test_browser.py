"""The tiny survey's report in headless Chromium: every figure loads and the summary table is there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
)
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((image) => ({
    src: image.getAttribute("src"), complete: image.complete, width: image.naturalWidth,
  }));
  const table = document.getElementById("summary-table");
  const result = {images, summary: table !== null, rows: table ? table.querySelectorAll("tbody tr").length : 0};
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
    pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")


def _run(arguments: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_report_opens_in_headless_chromium(tiny_report: Path, tmp_path: Path) -> None:
    page = tiny_report.read_text(encoding="utf-8")
    probe = tiny_report.with_name("probe.html")  # beside index.html, so relative figure links resolve alike
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path / "profile-dom")
    finally:
        probe.unlink()
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', dom.stdout, re.S)
    assert match, f"no probe result; chromium said: {dom.stderr[-2000:]}"
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["summary"] and result["rows"] >= 5  # all runs + 4 grid cells
    assert len(result["images"]) >= 8
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0, image

    screenshot = tmp_path / "report.png"
    shot = _run(
        ["--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={screenshot}", tiny_report.as_uri()],
        tmp_path / "profile-shot",
    )
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
