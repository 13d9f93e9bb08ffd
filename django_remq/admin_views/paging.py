"""The one pagination helper of the admin pages.

Listings read one page (plus one row, to know whether there is a next page) from the
Sdk's per-status indexes, so no page ever counts or skips rows in Python. ``total``
is known when a status index's size is (the page links then reach the last page);
a search has no total, only previous / next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

MAX_PAGE = 1_000_000


def page_number(raw: str | None) -> int:
    """``?page=`` as a page number: anything odd is page 1, never an error."""
    try:
        number = int(raw or 1)
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


@dataclass(frozen=True)
class Pager:
    number: int
    per_page: int
    total: int | None
    has_next: bool
    base_url: str
    params: tuple[tuple[str, str], ...]

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.per_page

    @property
    def num_pages(self) -> int | None:
        return None if self.total is None else max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    def url(self, number: int) -> str:
        params = [*self.params, *([("page", str(number))] if number > 1 else [])]
        return f"{self.base_url}?{urlencode(params)}" if params else self.base_url

    @property
    def previous_url(self) -> str | None:
        return self.url(self.number - 1) if self.has_previous else None

    @property
    def next_url(self) -> str | None:
        return self.url(self.number + 1) if self.has_next else None

    @property
    def links(self) -> list[tuple[str, str | None, bool]]:
        """(label, url or None for an ellipsis, current) around the current page."""
        last = self.num_pages or (self.number + (1 if self.has_next else 0))
        shown = sorted({1, 2, last - 1, last, *range(self.number - 2, self.number + 3)})
        out: list[tuple[str, str | None, bool]] = []
        prev = 0
        for n in (n for n in shown if 1 <= n <= last):
            if n - prev > 1:
                out.append(("…", None, False))
            out.append((str(n), self.url(n), n == self.number))
            prev = n
        return out


def paginate(raw_page: str | None, per_page: int, *, total: int | None, base_url: str,
             params: Mapping[str, str | None]) -> Pager:
    """A pager before the fetch: read ``per_page + 1`` rows at ``pager.offset``, then
    :func:`fetched` tells it whether there is a next page."""
    number = page_number(raw_page)
    if total is not None:
        number = min(number, max(1, -(-total // per_page)))
    kept = tuple((k, v) for k, v in params.items() if v)
    return Pager(number, per_page, total, False, base_url, kept)


def fetched(pager: Pager, rows: int) -> Pager:
    return Pager(pager.number, pager.per_page, pager.total, rows > pager.per_page,
                 pager.base_url, pager.params)
