"""The world: hardware, fleets, facilities, grid, market and workloads; pure, vectorized, seeded."""
