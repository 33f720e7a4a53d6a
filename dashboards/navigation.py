"""The pages of the dashboards app, in menu order (dashboards/app.py shows them).

To add a page: write ``dashboards/views/<page>.py`` (a Streamlit script that reads saved
results or the API through dashboards.results / dashboards.cache, with its figures in
dashboards.charts) and add one :class:`PageEntry` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DASHBOARDS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PageEntry:
    """One page of the menu.

    Attributes:
        section: menu heading the page is listed under (who the page is for).
        script: the page's script, relative to dashboards/.
        title: menu and browser-tab title.
        icon: a Material icon (``:material/name:``) or an emoji.
        default: the page opened first (exactly one entry).
    """

    section: str
    script: str
    title: str
    icon: str
    default: bool = False

    @property
    def path(self) -> Path:
        """The page script's absolute path."""
        return DASHBOARDS_DIR / self.script


PAGES: tuple[PageEntry, ...] = (
    PageEntry("Planning", "views/scenario_lab.py", "Scenario lab", ":material/science:", True),
    PageEntry("Engineering", "views/policy_lab.py", "Policy lab", ":material/tune:"),
    PageEntry("Operations", "views/operations.py", "Operations", ":material/monitor_heart:"),
    PageEntry("Business", "views/executive.py", "Executive", ":material/finance:"),
    PageEntry("Business", "views/customers.py", "Customers", ":material/groups:"),
    PageEntry("Business", "views/energy.py", "Energy", ":material/bolt:"),
)
"""Every page, in menu order; sections appear in the order of their first page."""


def sections(pages: tuple[PageEntry, ...] = PAGES) -> dict[str, list[PageEntry]]:
    """The pages grouped by section, keeping the order of ``pages``."""
    grouped: dict[str, list[PageEntry]] = {}
    for page in pages:
        grouped.setdefault(page.section, []).append(page)
    return grouped
