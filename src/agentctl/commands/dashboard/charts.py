"""Charts as inline SVG, drawn on the server: no script, no third-party file.

Every label is escaped here (the SVG goes into the page as markup); amounts are shown
to the cent and kept exact in a ``data-usd`` attribute, which the browser test reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

from markupsafe import Markup

BAR = 18  # px per horizontal bar
WIDTH = 560


def money(value: Decimal | float | None) -> str:
    if value is None:
        return "-"
    amount = Decimal(str(value))
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def bars(rows: Sequence[dict[str, Any]], *, title: str) -> Markup:
    """One horizontal bar per row (``key``, ``cost_usd``), longest = the dearest."""
    top = max((Decimal(str(r["cost_usd"])) for r in rows), default=Decimal(0)) or Decimal(1)
    height = BAR * max(len(rows), 1) + 8
    parts = [
        f'<svg class="chart" role="img" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>'
    ]
    for i, row in enumerate(rows):
        cost = Decimal(str(row["cost_usd"]))
        length = int(300 * cost / top)
        y = 4 + i * BAR
        parts.append(
            f'<g class="bar" data-key="{escape(str(row["key"]))}" data-usd="{cost}">'
            f'<text x="0" y="{y + 13}">{escape(str(row["key"]))[:28]}</text>'
            f'<rect x="170" y="{y + 2}" width="{max(length, 1)}" height="{BAR - 5}"></rect>'
            f'<text x="{176 + length}" y="{y + 13}">{escape(money(cost))}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(rows: Sequence[dict[str, Any]], *, title: str) -> Markup:
    """One column per day (``key`` a date), oldest left."""
    ordered = sorted(rows, key=lambda r: str(r["key"]))
    top = max((Decimal(str(r["cost_usd"])) for r in ordered), default=Decimal(0)) or Decimal(1)
    step = min(max(WIDTH // max(len(ordered), 1), 8), 40)  # a lone day is a column, not a wall
    parts = [
        f'<svg class="chart" role="img" width="{WIDTH}" height="150" viewBox="0 0 {WIDTH} 150">'
        f"<title>{escape(title)}</title>"
    ]
    for i, row in enumerate(ordered):
        cost = Decimal(str(row["cost_usd"]))
        high = int(120 * cost / top)
        parts.append(
            f'<g class="bar" data-key="{escape(str(row["key"]))}" data-usd="{cost}">'
            f'<rect x="{i * step + 2}" y="{130 - high}" width="{step - 4}" height="{max(high, 1)}">'
            f"<title>{escape(str(row['key']))}: {escape(money(cost))}</title></rect>"
            f'<text x="{i * step + 2}" y="145">{escape(str(row["key"])[5:])}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def gauge(spent: float | None, cap: float | None) -> Markup:
    """Spend against a cap: a bar that fills, amber past 60 %, red past 90 % (SVG, so no
    inline style is needed under the page's content security policy)."""
    if cap is None or not cap:
        return Markup('<span class="nocap">no cap</span>')
    share = min((spent or 0) / cap, 1.0)
    level = "high" if share >= 0.9 else "mid" if share >= 0.6 else "low"
    label = f"{money(spent)} of {money(cap)}"
    return Markup(
        f'<svg class="gauge {level}" width="120" height="10" role="img" viewBox="0 0 120 10">'
        f"<title>{escape(label)}</title>"
        f'<rect class="track" width="120" height="10"></rect>'
        f'<rect class="fill" width="{share * 120:.0f}" height="10"></rect></svg>'
    )
