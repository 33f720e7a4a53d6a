"""Emulated hardware: virtual miners speaking firmware APIs on loopback, fake NVML."""
