"""Signal sources: synthetic generators, loaders for real history, bundled real data."""
