"""The hands: the only way the controller touches hardware (simulated, pyasic, NVML)."""
