"""Pieces every distillwatch HTML report is made of. Same input, same bytes."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure

from distillwatch import __version__

matplotlib.use("Agg")  # figures are drawn straight to SVG; never open a window

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
background:#fafafa;margin:0}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:1.35em}.card span{color:#666;font-size:.85em}
.warn{background:#fff6e0;border-left:4px solid #f0b400;padding:8px 14px 8px 30px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{padding:3px 10px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f3f3f3;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:bottom;color:#666;font-size:.85em;text-align:left;padding-top:4px}
figure{margin:8px 0}svg{max-width:100%;height:auto}
.scroll{max-height:480px;overflow:auto}
pre{white-space:pre-wrap;background:#f6f6f6;padding:6px 10px;margin:4px 0;font-size:.85em}
footer{color:#888;font-size:.8em;margin-top:40px}
"""


def esc(text: object) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(text), quote=True)


def svg(fig: Figure, salt: str) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text, ids unique per figure."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg") :], flags=re.S)
    # several figures share one page: matplotlib numbers ids per figure, so prefix them
    for old in (' id="', 'href="#', "url(#"):
        text = text.replace(old, f"{old}{salt}-")
    return text


def figure(svg_text: str | None, empty: str) -> str:
    """A figure, or a note saying why there is none."""
    return f"<figure>{svg_text}</figure>" if svg_text else f'<p class="sub">({esc(empty)})</p>'


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    left: int = 1,
    note: str = "",
    scroll: bool = False,
    raw: bool = False,
) -> str:
    """An HTML table; the first ``left`` columns are text, the rest right-aligned numbers.
    ``raw`` cells are inserted as HTML (the caller escaped them)."""

    def cls(i: int) -> str:
        return "" if i < left else ' class="n"'

    def cell(c: object) -> str:
        return str(c) if raw else esc(c)

    head = "".join(f"<th{cls(i)}>{esc(c)}</th>" for i, c in enumerate(columns))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{cell(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    caption = f"<caption>{esc(note)}</caption>" if note else ""
    out = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


def document(title: str, body: Sequence[str], tool: str) -> str:
    """A whole HTML page around ``body`` parts."""
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width,initial-scale=1">\n'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>\n"
        f"<h1>{esc(title)}</h1>"
    )
    foot = f"<footer>distillwatch {esc(__version__)} · {esc(tool)}</footer></main></body></html>"
    return "\n".join([head, *body, foot]) + "\n"
