"""Hardware catalog: ASIC miner and GPU specifications with units and sources.

Nameplate figures are at stock tuning. Sources: manufacturer spec sheets as summarised in
the design handbook (DESIGN.md, "Domain facts"). Efficiency is ``power_w / hashrate_ths``
in J/TH. Everything else in the twin reads specs from here; custom specs in a scenario are
validated into the same dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AsicSpec:
    """One ASIC miner model.

    Attributes:
        model_id: catalog key, e.g. ``antminer_s21``.
        name: display name, e.g. ``Antminer S21``.
        hashrate_ths: nameplate hashrate [TH/s].
        power_w: nameplate wall power at stock tuning [W].
        min_power_fraction: lowest power target the firmware accepts, as a fraction of
            ``power_w`` [-].
        sleep_power_w: draw while sleeping, fans and control board [W].
        ramp_s: time to go from sleep to full hashrate [s].
        efficiency_exponent: hashrate scales as ``power_fraction ** efficiency_exponent``
            when underclocked (< 1 means J/TH improves as power drops) [-].
        thermal_c_per_kw: steady-state chip temperature rise over inlet per kW drawn [°C/kW].
        source: where the nameplate figures come from.
    """

    model_id: str
    name: str
    hashrate_ths: float
    power_w: float
    min_power_fraction: float = 0.6
    sleep_power_w: float = 25.0
    ramp_s: float = 120.0
    efficiency_exponent: float = 0.8
    thermal_c_per_kw: float = 12.0
    source: str = "DESIGN.md domain facts (manufacturer nameplate)"

    @property
    def efficiency_j_per_th(self) -> float:
        """Nameplate efficiency [J/TH]."""
        return self.power_w / self.hashrate_ths

    def breakeven_usd_per_mwh(self, hashprice_usd_per_ths_day: float) -> float:
        """Electricity price at which mining revenue equals energy cost [USD/MWh].

        ``hashprice / (J/TH * 24 h / 1e6)``: one TH/s for a day uses ``J/TH * 86400`` J =
        ``J/TH * 24 / 1e6`` MWh.
        """
        return hashprice_usd_per_ths_day / (self.efficiency_j_per_th * 24.0 / 1e6)


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU type.

    Attributes:
        type_id: catalog key, e.g. ``h100_sxm``.
        name: display name.
        tdp_w: board power limit at stock [W].
        idle_w: draw when idle but powered [W].
        memory_gb: HBM capacity [GB].
        min_power_fraction: lowest NVML power limit as a fraction of TDP [-].
        throughput_exponent: throughput scales as ``power_fraction ** throughput_exponent``
            under a power cap (< 1: throughput falls less than power near the top) [-].
        rental_index_usd_per_gpu_hour: reference on-demand rental price [USD/GPU-h].
        source: where the figures come from.
    """

    type_id: str
    name: str
    tdp_w: float
    idle_w: float
    memory_gb: float
    min_power_fraction: float = 0.5
    throughput_exponent: float = 0.6
    rental_index_usd_per_gpu_hour: float = 2.0
    source: str = "DESIGN.md domain facts (vendor datasheets, 2025 rental indices)"


ASIC_CATALOG: dict[str, AsicSpec] = {
    spec.model_id: spec
    for spec in (
        AsicSpec("antminer_s9", "Antminer S9", 13.5, 1323.0, ramp_s=180.0),
        AsicSpec("antminer_s19j_pro", "Antminer S19j Pro", 104.0, 3068.0),
        AsicSpec("whatsminer_m50s", "Whatsminer M50S", 126.0, 3276.0),
        AsicSpec("antminer_s19_xp", "Antminer S19 XP", 140.0, 3010.0),
        AsicSpec("whatsminer_m60s", "Whatsminer M60S", 186.0, 3441.0),
        AsicSpec("antminer_s21", "Antminer S21", 200.0, 3500.0),
        AsicSpec("antminer_s21_pro", "Antminer S21 Pro", 234.0, 3510.0),
    )
}

GPU_CATALOG: dict[str, GpuSpec] = {
    spec.type_id: spec
    for spec in (
        GpuSpec(
            "h100_sxm", "NVIDIA H100 SXM 80GB", 700.0, 80.0, 80.0, rental_index_usd_per_gpu_hour=2.1
        ),
        GpuSpec("h200", "NVIDIA H200 141GB", 700.0, 80.0, 141.0, rental_index_usd_per_gpu_hour=2.8),
        GpuSpec(
            "a100_sxm", "NVIDIA A100 SXM 80GB", 400.0, 60.0, 80.0, rental_index_usd_per_gpu_hour=1.3
        ),
        GpuSpec("l40s", "NVIDIA L40S 48GB", 350.0, 60.0, 48.0, rental_index_usd_per_gpu_hour=0.9),
        GpuSpec(
            "b200", "NVIDIA B200 192GB", 1000.0, 100.0, 192.0, rental_index_usd_per_gpu_hour=4.5
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Catalog:
    """The specs a scenario uses: the built-in catalog plus its custom specs."""

    asics: dict[str, AsicSpec] = field(default_factory=lambda: dict(ASIC_CATALOG))
    gpus: dict[str, GpuSpec] = field(default_factory=lambda: dict(GPU_CATALOG))
