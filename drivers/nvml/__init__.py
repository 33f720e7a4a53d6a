"""Real GPUs through NVML (nvidia-ml-py), and a fake NVML library for machines without one.

- :mod:`drivers.nvml.driver`: :class:`NvmlGpuDriver`, the :class:`drivers.base.GpuDriver`
  of the GPUs on this host (needs the ``drivers`` extra).
- :mod:`drivers.nvml.fake_library`: builds ``fake_nvml.c`` into a ``libnvidia-ml.so.1``
  backed by a state file the twin writes, and makes the unmodified pynvml load it.
"""

from drivers.nvml.driver import NvmlGpuDriver

__all__ = ["NvmlGpuDriver"]
