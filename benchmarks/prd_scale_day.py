"""One simulated day of scenarios/prd_scale.yaml (50k GPUs, 250k ASICs, 1M workloads/day).

Target on the 2-core reference machine: <= 60 s wall and <= 4 GiB peak memory.
Usage: python benchmarks/prd_scale_day.py [--profile] [--days D]
"""

from measure import ROOT, run_benchmark

if __name__ == "__main__":
    run_benchmark(ROOT / "scenarios" / "prd_scale.yaml", 1.0, {"wall_s": 60, "peak_rss_gib": 4})
