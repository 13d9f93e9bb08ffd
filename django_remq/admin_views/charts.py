"""Per-minute trend charts as inline SVG, drawn on the server: no script, no CDN, no
library; colours from the pages' CSS variables, so light and dark themes both read.

One bar per minute, completed below and failed stacked on top; hovering a bar names the
minute and its counts (an SVG ``<title>``), and the chart's label sums it up for screen
readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from ..core.sdk.metrics import MINUTE

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 150, 34, 18, 8


def trend_svg(completed: Sequence[int], failed: Sequence[int], last_minute_ms: int,
              label: str) -> SafeString:
    """The chart of ``completed`` / ``failed`` per minute, oldest first, the last one
    being the minute that began at ``last_minute_ms``."""
    n = len(completed)
    tz = timezone.get_current_timezone()
    first_ms = last_minute_ms - (n - 1) * MINUTE
    peak = max((c + f for c, f in zip(completed, failed, strict=True)), default=0)
    top = _nice(peak)
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_w / max(n, 1)
    bar = max(step - (1 if step > 3 else 0), 1)

    def hhmm(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M")

    def y(v: float) -> float:
        return TOP + plot_h - (v / top * plot_h if top else 0)

    total_c, total_f = sum(completed), sum(failed)
    hours = n / 60
    span = f"{hours:g} hour{'s' if hours != 1 else ''}" if n >= 60 else f"{n} minutes"
    summary = (f"{label}: {total_c:,} completed and {total_f:,} failed in the last {span}"
               + (f", at most {peak:,} in a minute" if peak else ""))
    out = [f'<svg class="remq-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="{escape(summary)}" preserveAspectRatio="none" '
           'style="width: 100%; height: 100%; display: block" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(summary)}</title>']
    # the grid: 0, half and the top of the scale
    for v in (0, top / 2, top):
        yy = y(v)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH}" y1="{yy:.1f}" y2="{yy:.1f}" '
                   'style="stroke: var(--hairline-color, #ccc)" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 4}" y="{yy + 3:.1f}" text-anchor="end" font-size="9" '
                   f'style="fill: var(--body-quiet-color, #666)">{_count(v)}</text>')
    out += _bars(completed, failed, first_ms, step, bar, y, hhmm)
    # time labels every 30 minutes (every 10 below an hour), on the minute they name
    every = 30 if n > 60 else 10
    for i in range(n):
        ms = first_ms + i * MINUTE
        if (ms // MINUTE) % every == 0:
            x = LEFT + i * step + step / 2
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - 4}" text-anchor="middle" font-size="9" '
                       f'style="fill: var(--body-quiet-color, #666)">{hhmm(ms)}</text>')
    if not peak:
        out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
                   'text-anchor="middle" font-size="11" style="fill: var(--body-quiet-color, '
                   f'#666)">No job finished in the last {span}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # every text in it is escaped or our own


def _bars(completed: Sequence[int], failed: Sequence[int], first_ms: int, step: float,
          bar: float, y: Callable[[float], float], hhmm: Callable[[int], str]) -> list[str]:
    """One group a minute with something finished: completed, failed on top, a tooltip."""
    out = []
    for i, (c, f) in enumerate(zip(completed, failed, strict=True)):
        if not (c or f):
            continue
        x, ms = LEFT + i * step, first_ms + i * MINUTE
        out.append(f'<g class="remq-bar-m" data-minute="{ms}">'
                   f"<title>{hhmm(ms)}: {c:,} completed, {f:,} failed</title>")
        if c:
            out.append(f'<rect class="remq-c" x="{x:.1f}" y="{y(c):.1f}" width="{bar:.1f}" '
                       f'height="{y(0) - y(c):.1f}" style="fill: var(--remq-ok, #2e7d32)"/>')
        if f:
            out.append(f'<rect class="remq-f" x="{x:.1f}" y="{y(c + f):.1f}" width="{bar:.1f}" '
                       f'height="{y(c) - y(c + f):.1f}" style="fill: var(--remq-bad, #ba2121)"/>')
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
