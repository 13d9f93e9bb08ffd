"""Per-minute trend charts as inline SVG, drawn on the server: no script, no CDN, no
library; colours from the pages' CSS variables, so light and dark themes both read.

One bar per minute, completed below and failed stacked on top; hovering a bar names the
minute and its counts (an SVG ``<title>``), and the chart's label sums it up for screen
readers. Coordinates are whole units (a bar is 4 wide) and the styles are set once, so
three hours of busy minutes stay small (the live refresh sends the chart every time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from ..core.sdk.metrics import MINUTE

STEP, HEIGHT, LEFT, BOTTOM, TOP = 4, 150, 34, 18, 8
PLOT_H = HEIGHT - BOTTOM - TOP
STYLE = ("<style>.remq-chart .remq-c{fill:var(--remq-ok,#2e7d32)}"
         ".remq-chart .remq-f{fill:var(--remq-bad,#ba2121)}"
         ".remq-chart line{stroke:var(--hairline-color,#ccc)}"
         ".remq-chart text{fill:var(--body-quiet-color,#666);font-size:9px}</style>")


def trend_svg(completed: Sequence[int], failed: Sequence[int], last_minute_ms: int,
              label: str) -> SafeString:
    """The chart of ``completed`` / ``failed`` per minute, oldest first, the last one
    being the minute that began at ``last_minute_ms``."""
    n = len(completed)
    width = LEFT + n * STEP
    tz = timezone.get_current_timezone()
    first_ms = last_minute_ms - (n - 1) * MINUTE
    peak = max((c + f for c, f in zip(completed, failed, strict=True)), default=0)
    top = _nice(peak)

    def hhmm(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M")

    def y(v: float) -> int:
        return round(TOP + PLOT_H - (v / top * PLOT_H if top else 0))

    hours = n / 60
    span = f"{hours:g} hour{'s' if hours != 1 else ''}" if n >= 60 else f"{n} minutes"
    summary = escape(f"{label}: {sum(completed):,} completed and {sum(failed):,} failed in the "
                     f"last {span}" + (f", at most {peak:,} in a minute" if peak else ""))
    out = [f'<svg class="remq-chart" viewBox="0 0 {width} {HEIGHT}" role="img" '
           f'aria-label="{summary}" preserveAspectRatio="none" '
           'style="width:100%;height:100%;display:block" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{summary}</title>{STYLE}']
    for v in (0, top / 2, top):  # the grid: 0, half and the top of the scale
        out.append(f'<line x1="{LEFT}" x2="{width}" y1="{y(v)}" y2="{y(v)}"/>'
                   f'<text x="{LEFT - 4}" y="{y(v) + 3}" text-anchor="end">{_count(v)}</text>')
    out += _bars(completed, failed, first_ms, y, hhmm)
    every = 30 if n > 60 else 10  # a time every 30 minutes (10 below an hour)
    for i in range(n):
        ms = first_ms + i * MINUTE
        if (ms // MINUTE) % every == 0:
            out.append(f'<text x="{LEFT + i * STEP + STEP // 2}" y="{HEIGHT - 4}" '
                       f'text-anchor="middle">{hhmm(ms)}</text>')
    if not peak:
        out.append(f'<text x="{LEFT + n * STEP // 2}" y="{TOP + PLOT_H // 2}" '
                   f'text-anchor="middle">No job finished in the last {span}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # every text in it is escaped or our own


def _bars(completed: Sequence[int], failed: Sequence[int], first_ms: int,
          y: Callable[[float], int], hhmm: Callable[[int], str]) -> list[str]:
    """One group a minute with something finished: completed, failed on top, a tooltip."""
    out = []
    for i, (c, f) in enumerate(zip(completed, failed, strict=True)):
        if not (c or f):
            continue
        x = LEFT + i * STEP
        out.append(f'<g class="remq-bar-m"><title>{hhmm(first_ms + i * MINUTE)}: {c:,} '
                   f"completed, {f:,} failed</title>")
        if c:
            out.append(f'<rect class="remq-c" x="{x}" y="{y(c)}" width="{STEP - 1}" '
                       f'height="{max(y(0) - y(c), 1)}"/>')
        if f:
            out.append(f'<rect class="remq-f" x="{x}" y="{y(c + f)}" width="{STEP - 1}" '
                       f'height="{max(y(c) - y(c + f), 1)}"/>')
        out.append("</g>")
    return out


def _nice(peak: int) -> int:
    """A round top for the scale, at least the peak: 1, 2, 5, 10, 20, 50, ..."""
    if peak <= 0:
        return 0
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= peak:
                return m * scale
        scale *= 10


def _count(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"
