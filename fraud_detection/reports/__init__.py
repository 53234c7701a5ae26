"""Rendering of the audits' results into files: self-contained HTML reports, PNG figures, JSON and markdown.

One module per audit (:mod:`.poison`, :mod:`.fairness`, :mod:`.drift`) turns that audit's typed result into
files in an output folder and returns the paths it wrote; this package holds the helpers they share.

Every report is one HTML file with its figures embedded as base64 PNG ``<img>`` tags and its style inline,
so it renders in the KFP UI, in MLflow's artifact viewer and from a laptop with no network.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from fraud_detection.audits.jsonable import json_safe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; }
p.lead { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f6f8fa; }
td.text, th.text { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
.note { background: #fff8c5; border: 1px solid #d4a72c; padding: 0.6rem 0.9rem; border-radius: 4px; }
.ok { color: #1a7f37; font-weight: 600; }
.bad { color: #cf222e; font-weight: 600; }
"""


@dataclass(frozen=True)
class ReportFiles:
    """What a report renderer writes: one path per field, all in one folder, the HTML report first."""

    NAMES: ClassVar[tuple[str, ...]] = ()
    """The file names, in field order (each renderer's subclass declares its own)."""

    report_html: Path
    """The self-contained HTML report."""

    @classmethod
    def in_folder(cls, out_dir: Path | str) -> Self:
        """The files of :attr:`NAMES` in ``out_dir``, which is created if needed."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return cls(*(out / name for name in cls.NAMES))

    def paths(self) -> list[Path]:
        """Every file written, report first."""
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class Link:
    """A table cell that links somewhere: ``<a>`` in HTML, ``[text](url)`` in markdown."""

    text: str
    url: str

    def __str__(self) -> str:
        return self.text


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (figures are never left open)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    """A matplotlib figure drawn with the non-interactive Agg backend (safe in pods and tests)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def img_tag(png: bytes, alt: str) -> str:
    """An ``<img>`` tag embedding PNG bytes as a base64 data URI."""
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def format_value(value: Any, digits: int = 4) -> str:
    """Human-readable cell text: floats to ``digits`` significant places, NaN/None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value.is_integer() and abs(value) >= 1:
            return f"{int(value):d}"
        return f"{value:.{digits}g}"
    return str(value)


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """An HTML table from a list of dicts (columns default to the first row's keys)."""
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(columns or rows[0].keys())

    def cell(tag: str, value: Any) -> str:
        if isinstance(value, Link):
            return f'<{tag} class="text"><a href="{html.escape(value.url)}">{html.escape(value.text)}</a></{tag}>'
        css = ' class="text"' if isinstance(value, str) else ""
        return f"<{tag}{css}>{html.escape(format_value(value, digits))}</{tag}>"

    head = "".join(f'<th class="text">{html.escape(c)}</th>' for c in cols)
    body = "".join("<tr>" + "".join(cell("td", row.get(c)) for c in cols) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """The same table as GitHub-flavoured markdown (for run summaries and docs)."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]

    def cell(value: Any) -> str:
        return f"[{value.text}]({value.url})" if isinstance(value, Link) else format_value(value, digits)

    lines += ["| " + " | ".join(cell(row.get(c)) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def html_page(title: str, sections: Iterable[str], subtitle: str = "") -> str:
    """A complete, self-contained HTML document: inline style, no external scripts, fonts or images."""
    lead = f'<p class="lead">{html.escape(subtitle)}</p>' if subtitle else ""
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>{lead}\n{body}\n</body></html>\n"
    )


def section(heading: str, *parts: str) -> str:
    """An ``<h2>`` section made of already-rendered HTML parts."""
    return f"<section><h2>{html.escape(heading)}</h2>\n" + "\n".join(parts) + "\n</section>"


def paragraph(text: str, css_class: str = "") -> str:
    """An escaped ``<p>`` (optionally with a CSS class such as ``note``)."""
    css = f' class="{css_class}"' if css_class else ""
    return f"<p{css}>{html.escape(text)}</p>"


def write_json(data: Any, path: Path | str) -> Path:
    """Write ``data`` as indented JSON (numpy values and NaN made JSON-safe) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(data), indent=2, sort_keys=False) + "\n")
    return out


__all__ = [
    "Link",
    "ReportFiles",
    "figure_png",
    "format_value",
    "html_page",
    "img_tag",
    "markdown_table",
    "new_figure",
    "paragraph",
    "section",
    "table_html",
    "write_json",
]
