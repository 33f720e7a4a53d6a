"""HCP Twin dashboards: the Streamlit entry point (``python run.py dashboard``).

Shows the pages of dashboards.navigation.PAGES in a sidebar menu grouped by audience.
Where results and scenarios are read from comes from the environment
(dashboards.settings), set by the ``dashboard`` command.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # `streamlit run dashboards/app.py` puts only dashboards/
    sys.path.insert(0, str(PROJECT_ROOT))

import streamlit as st  # noqa: E402

from dashboards.navigation import sections  # noqa: E402
from dashboards.settings import DashboardSettings  # noqa: E402

st.set_page_config(page_title="HCP Twin", page_icon=":material/bolt:", layout="wide")
menu = {
    heading: [
        st.Page(page.path, title=page.title, icon=page.icon, default=page.default) for page in pages
    ]
    for heading, pages in sections().items()
}
settings = DashboardSettings.from_env()
with st.sidebar:
    st.caption(f"results: `{settings.results_dir}`  \nscenarios: `{settings.scenarios_dir}`")
st.navigation(menu).run()
