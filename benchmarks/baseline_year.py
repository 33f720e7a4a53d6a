"""One simulated year of scenarios/baseline.yaml (three sites, a few thousand devices).

Target on the 2-core reference machine: <= 120 s wall.
Usage: python benchmarks/baseline_year.py [--profile] [--days D]
"""

from measure import ROOT, run_benchmark

if __name__ == "__main__":
    run_benchmark(ROOT / "scenarios" / "baseline.yaml", 365.0, {"wall_s": 120})
