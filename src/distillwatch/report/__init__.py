"""Self-contained HTML reports: inline CSS, matplotlib figures as inline SVG, nothing fetched."""

from distillwatch.report.html import CSS, document, esc, figure, svg, table

__all__ = ["CSS", "document", "esc", "figure", "svg", "table"]
