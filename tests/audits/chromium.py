"""Open an HTML report in headless Chromium with the network cut off; report console errors and what rendered;
take a screenshot and read its text back with tesseract (OCR).

Usable from tests and as a script: ``python -m tests.audits.chromium report.html [...]`` prints one line per
file and exits non-zero when a report fails to render.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    # Every host name resolves to nothing: a report that needs a CDN fails to draw here.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
    "--log-level=0",
    "--virtual-time-budget=20000",
)

_CONSOLE = re.compile(r":INFO:CONSOLE[^\]]*\]\s*\"(?P<message>.*)\", source: (?P<source>\S+)")
_EXTERNAL = re.compile(
    r"<(?:script|img|iframe)[^>]+src=[\"']https?://|<link[^>]+href=[\"']https?://|@import\s+url\([\"']?https?://",
    re.IGNORECASE,
)


@dataclass
class Rendered:
    """What Chromium made of a page."""

    path: Path
    dom: str
    console: list[str] = field(default_factory=list)
    external_refs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Console messages that signal a failure (uncaught exceptions, console.error, failed loads)."""
        bad = ("uncaught", "error", "failed to load", "not defined", "refused")
        return [m for m in self.console if any(word in m.lower() for word in bad)]

    @property
    def data_images(self) -> int:
        """Embedded PNG images in the rendered DOM."""
        return self.dom.count('src="data:image/png;base64,')

    @property
    def plotly_plots(self) -> int:
        """Plotly charts drawn by JavaScript (each has an svg.main-svg once drawn)."""
        return len(re.findall(r'class="main-svg"', self.dom))

    @property
    def svg_or_canvas(self) -> int:
        """``<svg>`` and ``<canvas>`` elements in the rendered DOM."""
        return len(re.findall(r"<svg\b|<canvas\b", self.dom))


def chromium_binary() -> str | None:
    """Path of the Chromium executable (Debian package ``chromium``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render(path: Path | str, timeout: float = 120.0) -> Rendered:
    """Load ``path`` in headless Chromium (fresh profile, no network) and return its DOM after scripts ran."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    page = Path(path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page}: no such report")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode} on {page}: {proc.stderr[-2000:]}")
    console = [m.group("message") for m in _CONSOLE.finditer(proc.stderr)]
    source = page.read_text(encoding="utf-8", errors="replace")
    external = [m.group(0) for m in _EXTERNAL.finditer(source)]
    return Rendered(path=page, dom=proc.stdout, console=console, external_refs=external)


def screenshot(
    path: Path | str, png: Path | str, width: int = 1280, height: int = 1600, timeout: float = 120.0
) -> Path:
    """Save a PNG of ``path`` as headless Chromium draws it (no network) in a ``width`` x ``height`` window."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    page = Path(path).resolve()
    out = Path(png).resolve()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [
                binary,
                *CHROMIUM_FLAGS,
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium could not screenshot {page}: {proc.stderr[-2000:]}")
    return out


def ocr(png: Path | str, timeout: float = 120.0) -> str:
    """The text tesseract (Debian's ``tesseract-ocr``) reads in an image."""
    binary = shutil.which("tesseract")
    if binary is None:
        raise FileNotFoundError("tesseract is not installed (make sysdeps installs tesseract-ocr)")
    proc = subprocess.run([binary, str(png), "stdout"], capture_output=True, text=True, timeout=timeout, check=True)
    return proc.stdout


def main(argv: list[str]) -> int:
    """Render each file given; print a summary line per file; return 1 if any has errors or shows no plot."""
    failed = 0
    for arg in argv:
        result = render(arg)
        plots = result.data_images + result.plotly_plots
        ok = not result.errors and not result.external_refs and plots > 0
        failed += not ok
        print(
            f"{'OK  ' if ok else 'FAIL'} {arg}: {result.data_images} embedded PNGs, {result.plotly_plots} plotly "
            f"charts, {result.svg_or_canvas} svg/canvas, {len(result.errors)} console errors "
            f"{result.errors[:3]}, external refs {result.external_refs[:3]}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
