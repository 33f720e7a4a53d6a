"""The runtime that composes models, optimizer, drivers and signals into a runnable twin."""
