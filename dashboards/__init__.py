"""Streamlit dashboards: read results or the API; hold no model logic."""
