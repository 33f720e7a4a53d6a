"""ASIC and GPU fleets: layout, commands, physics, ramp energy, caches and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.fleet import (
    ACTIVE,
    FAILED,
    N_GPU_USES,
    OFF,
    SLEEPING,
    SPOT_LOAD_FRACTION,
    AsicFleet,
    FleetError,
    GpuFleet,
    GpuHealth,
    GpuUse,
    asic_efficiency_j_per_th,
    asic_hashrate_ths,
    gpu_throughput_factor,
    ramp_mean_progress,
    ramp_progress,
)
from models.hardware import ASIC_CATALOG, GPU_CATALOG, AsicSpec, GpuSpec

S9 = ASIC_CATALOG["antminer_s9"]
S21 = ASIC_CATALOG["antminer_s21"]
M60S = ASIC_CATALOG["whatsminer_m60s"]
H100 = GPU_CATALOG["h100_sxm"]
L40S = GPU_CATALOG["l40s"]
TEST_MINER = AsicSpec("test_miner", "Test miner", 100.0, 3000.0, 0.5, 40.0, 120.0)


def _one_class(count: int = 10, spec: AsicSpec = TEST_MINER, fraction: float = 1.0) -> AsicFleet:
    return AsicFleet.from_groups([(0, spec, count, fraction)])


def _brute_force_power_kw(fleet: AsicFleet) -> np.ndarray:
    """Class power from the state column alone (no caches), ``[n_facilities, n_models]``."""
    nameplate = np.array([m.power_w for m in fleet.models])[fleet.model]
    sleep = np.array([m.sleep_power_w for m in fleet.models])[fleet.model]
    power = np.where(
        fleet.state == ACTIVE,
        nameplate * fleet.power_fraction.astype(np.float64),
        np.where(fleet.state == SLEEPING, sleep, 0.0),
    )
    out = np.zeros((fleet.n_facilities, len(fleet.models)))
    np.add.at(out, (fleet.facility, fleet.model), power / 1000.0)
    return out


# --------------------------------------------------------------------------- layout


def test_from_groups_makes_contiguous_classes_with_compact_dtypes() -> None:
    """Groups merge per (facility, model), classes sit in contiguous slices ordered by
    facility, and columns use int16/int8/float32."""
    fleet = AsicFleet.from_groups(
        [(1, S21, 3, 0.8), (0, S9, 2, 1.0), (1, S9, 4, 1.0), (1, S21, 2, 1.0)]
    )
    assert [m.model_id for m in fleet.models] == ["antminer_s21", "antminer_s9"]
    assert fleet.n_devices == 11 and fleet.n_facilities == 2 and fleet.n_classes == 3
    assert fleet.facility.dtype == np.int16 and fleet.model.dtype == np.int16
    assert fleet.state.dtype == np.int8 and fleet.power_fraction.dtype == np.float32
    assert fleet.power_w.dtype == np.float32 and fleet.ramp_start_s.dtype == np.float64
    assert fleet.facility.tolist() == [0, 0] + [1] * 9
    assert fleet.model.tolist() == [1, 1] + [0] * 5 + [1] * 4
    s21_rows = fleet.class_slice(fleet.class_index(1, "antminer_s21"))
    assert fleet.power_fraction[s21_rows].tolist() == pytest.approx([0.8] * 3 + [1.0] * 2)
    assert fleet.class_grid[0, 0] == -1
    assert np.all(fleet.state == ACTIVE) and np.all(np.isnan(fleet.ramp_start_s))


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([(0, S21, -1, 1.0)], "count"),
        ([(-1, S21, 1, 1.0)], "facility"),
        ([(0, S21, 1, 0.3)], "power_target_fraction"),
        ([(0, S21, 1, 1.2)], "power_target_fraction"),
        ([(0, S21, 1, 1.0), (0, AsicSpec("antminer_s21", "fake", 1.0, 1.0), 1, 1.0)], "spec"),
    ],
)
def test_from_groups_rejects_bad_groups(groups: list, message: str) -> None:
    """Bad groups raise FleetError naming the group and field."""
    with pytest.raises(FleetError, match=message):
        AsicFleet.from_groups(groups)


def test_columns_are_read_only() -> None:
    """Public columns cannot be written: state changes go through commands."""
    fleet = _one_class()
    with pytest.raises(ValueError):
        fleet.state[0] = SLEEPING


# --------------------------------------------------------------------------- physics


@settings(max_examples=60, deadline=None)
@given(
    spec=st.sampled_from(list(ASIC_CATALOG.values())),
    low=st.floats(0.0, 1.0),
    high=st.floats(0.0, 1.0),
)
def test_underclocking_improves_efficiency(spec: AsicSpec, low: float, high: float) -> None:
    """A lower power target gives fewer TH/s but better (lower) J/TH."""
    lowest = spec.min_power_fraction
    f_low, f_high = sorted((lowest + low * (1.0 - lowest), lowest + high * (1.0 - lowest)))
    if f_high - f_low < 1e-3:
        return
    assert asic_efficiency_j_per_th(spec, f_low) < asic_efficiency_j_per_th(spec, f_high)
    assert asic_hashrate_ths(spec.hashrate_ths, f_low, 0.8) < asic_hashrate_ths(
        spec.hashrate_ths, f_high, 0.8
    )


def test_steady_step_draws_nameplate_times_fraction() -> None:
    """Hashing miners draw nameplate x target and hash nameplate x target**exponent; the
    interval energy is mean power x duration."""
    fleet = AsicFleet.from_groups([(0, S21, 7, 0.75), (0, S9, 3, 1.0)])
    result = fleet.step(0.0, 300.0, np.array([20.0]))
    s21, s9 = fleet.model_index("antminer_s21"), fleet.model_index("antminer_s9")
    assert result.mean_power_kw[0, s21] == pytest.approx(7 * 3500.0 * 0.75 / 1000.0)
    assert result.mean_power_kw[0, s9] == pytest.approx(3 * 1323.0 / 1000.0)
    assert result.mean_hashrate_ths[0, s21] == pytest.approx(7 * 200.0 * 0.75**0.8, rel=1e-6)
    assert np.array_equal(result.energy_kwh, result.mean_power_kw * 300.0 / 3600.0)
    assert result.active[0].tolist() == [7, 3] and result.ramping.sum() == 0


def test_sleeping_off_and_failed_draw() -> None:
    """Sleeping miners draw their sleep power and no hashrate; OFF and failed draw nothing."""
    fleet = _one_class(10)
    fleet.set_active_count(0, "test_miner", 4, 0.0)
    fleet.power_off([4, 5])
    fleet.fail([6])
    result = fleet.step(1000.0, 300.0, np.array([25.0]))
    assert (result.active[0, 0], result.sleeping[0, 0]) == (4, 3)
    assert (result.off[0, 0], result.failed[0, 0]) == (2, 1)
    assert result.mean_power_kw[0, 0] == pytest.approx((4 * 3000.0 + 3 * 40.0) / 1000.0)
    assert result.mean_hashrate_ths[0, 0] == pytest.approx(400.0)
    assert fleet.power_w[6] == 0.0 and fleet.power_w[4] == 0.0 and fleet.power_w[9] == 40.0


def test_set_active_count_wakes_lowest_and_sleeps_highest_index() -> None:
    """Sleeping takes the highest-index hashing miners, waking the lowest-index sleeping
    ones; failed miners are skipped and the count is capped by the healthy ones."""
    fleet = _one_class(10)
    assert fleet.set_active_count(0, "test_miner", 4, 0.0) == 6
    assert np.flatnonzero(fleet.state == ACTIVE).tolist() == [0, 1, 2, 3]
    fleet.fail([4])
    assert fleet.set_active_count(0, 0, 6, 10.0) == 2
    assert np.flatnonzero(fleet.state == ACTIVE).tolist() == [0, 1, 2, 3, 5, 6]
    assert fleet.ramp_start_s[5] == 10.0 and np.isnan(fleet.ramp_start_s[0])
    assert fleet.set_active_count(0, 0, 100, 20.0) == 3
    assert np.count_nonzero(fleet.state == ACTIVE) == 9
    assert fleet.set_active_count(0, 0, 9, 30.0) == 0


def test_set_active_count_rejects_bad_requests() -> None:
    """Negative counts and unknown classes raise FleetError."""
    fleet = _one_class()
    with pytest.raises(FleetError, match="active_count"):
        fleet.set_active_count(0, "test_miner", -1, 0.0)
    with pytest.raises(FleetError, match="antminer_s9"):
        fleet.set_active_count(0, "antminer_s9", 1, 0.0)
    with pytest.raises(FleetError, match="no ASICs"):
        fleet.set_active_count(3, "test_miner", 1, 0.0)


def test_set_power_fraction_clamps_and_reports() -> None:
    """A target outside [min_power_fraction, 1] is clamped and the result says so."""
    fleet = _one_class()
    low = fleet.set_power_fraction(0, "test_miner", 0.2, 0.0)
    assert low.clamped and low.applied == 0.5 and np.all(fleet.power_fraction == 0.5)
    high = fleet.set_power_fraction(0, "test_miner", 1.5, 0.0)
    assert high.clamped and high.applied == 1.0
    inside = fleet.set_power_fraction(0, "test_miner", 0.7, 0.0)
    assert not inside.clamped and inside.applied == 0.7
    with pytest.raises(FleetError, match="power_fraction"):
        fleet.set_power_fraction(0, "test_miner", float("nan"), 0.0)


def test_ramp_progress_functions() -> None:
    """Progress is 0 before the start, linear during the ramp, 1 after; its interval mean
    matches a direct average, and a zero-length ramp is a step."""
    assert ramp_progress(50.0, 0.0, 100.0) == pytest.approx(0.5)
    assert ramp_progress(-1.0, 0.0, 100.0) == 0.0 and ramp_progress(500.0, 0.0, 100.0) == 1.0
    grid = np.linspace(-50.0, 250.0, 300_001)
    direct = ramp_progress(grid, 0.0, 100.0).mean()
    assert ramp_mean_progress(-50.0, 250.0, 0.0, 100.0) == pytest.approx(direct, rel=1e-4)
    assert ramp_mean_progress(0.0, 100.0, 25.0, 0.0) == pytest.approx(0.75)


# --------------------------------------------------------------------------- ramps


@settings(max_examples=40, deadline=None)
@given(
    wake_offset_s=st.floats(-400.0, 280.0),
    ramp_s=st.floats(1.0, 600.0),
    fraction=st.floats(0.5, 1.0),
    waking=st.integers(1, 6),
)
def test_ramp_energy_matches_numerical_integration(
    wake_offset_s: float, ramp_s: float, fraction: float, waking: int
) -> None:
    """The step's analytic interval energy of waking miners equals a fine trapezoid
    integration of instantaneous power (and hashrate) over the interval."""
    spec = AsicSpec("ramp_miner", "Ramp", 100.0, 3000.0, 0.5, 40.0, ramp_s)
    fleet = AsicFleet.from_groups([(0, spec, 8, fraction)])
    t0_s, dt_s = 1000.0, 300.0
    fleet.set_active_count(0, 0, 1, 0.0)
    fleet.step(0.0, t0_s + min(0.0, wake_offset_s), np.array([25.0]))
    fleet.set_active_count(0, 0, 1 + waking, t0_s + wake_offset_s)
    # power is piecewise linear: with its kinks on the grid the trapezoid rule is exact
    kinks = np.array([t0_s + wake_offset_s, t0_s + wake_offset_s + ramp_s])
    inside = kinks[(kinks > t0_s) & (kinks < t0_s + dt_s)]
    times = np.union1d(np.linspace(t0_s, t0_s + dt_s, 1001), inside)
    power = np.array([fleet.power_w_at(t).sum(dtype=np.float64) for t in times])
    hashrate = np.array([fleet.hashrate_ths_at(t).sum(dtype=np.float64) for t in times])
    result = fleet.step(t0_s, dt_s, np.array([25.0]))
    expected_kwh = np.trapezoid(power, times) / 3.6e6
    assert result.energy_kwh[0, 0] == pytest.approx(expected_kwh, rel=1e-6)
    assert result.mean_hashrate_ths[0, 0] == pytest.approx(
        np.trapezoid(hashrate, times) / dt_s, rel=1e-6
    )
    assert fleet.power_w.sum(dtype=np.float64) == pytest.approx(power[-1], rel=1e-6)


def test_ramp_readings_counts_and_clearing() -> None:
    """During a ramp the readings sit between sleep and target and the class reports the
    miners as ramping; once the ramp is over the ramp start is cleared."""
    fleet = _one_class(4)
    fleet.set_active_count(0, 0, 0, 0.0)
    fleet.set_active_count(0, 0, 4, 0.0)
    first = fleet.step(0.0, 60.0, np.array([25.0]))
    assert first.ramping[0, 0] == 4
    assert fleet.power_w[0] == pytest.approx(40.0 + (3000.0 - 40.0) * 0.5)
    assert first.mean_power_kw[0, 0] == pytest.approx(4 * (40.0 + 2960.0 * 0.25) / 1000.0)
    assert np.all(fleet.ramp_start_s == 0.0)
    second = fleet.step(60.0, 60.0, np.array([25.0]))
    assert second.ramping[0, 0] == 4 and np.all(np.isnan(fleet.ramp_start_s))
    third = fleet.step(120.0, 60.0, np.array([25.0]))
    assert third.ramping[0, 0] == 0
    assert third.mean_power_kw[0, 0] == pytest.approx(12.0)


def test_one_step_equals_many_small_steps() -> None:
    """Energy is additive: one 300 s step equals ten 30 s steps across a ramp."""
    fleets = [AsicFleet.from_groups([(0, S21, 5, 0.9), (0, S9, 5, 1.0)]) for _ in range(2)]
    for fleet in fleets:
        fleet.set_active_count(0, "antminer_s21", 1, 0.0)
        fleet.set_active_count(0, "antminer_s21", 5, 45.0)
    whole = fleets[0].step(0.0, 300.0, np.array([30.0])).energy_kwh
    parts = sum(fleets[1].step(30.0 * i, 30.0, np.array([30.0])).energy_kwh for i in range(10))
    np.testing.assert_allclose(whole, parts, rtol=1e-9)


def test_temperature_relaxes_to_steady_state() -> None:
    """Chip temperature moves monotonically towards ambient + thermal_c_per_kw x kW."""
    fleet = _one_class(2)
    fleet.set_active_count(0, 0, 1, 0.0)
    ambient = np.array([35.0])
    steady_c = 35.0 + 12.0 * np.array([3.0, 0.04])
    previous = fleet.temp_c.copy()
    for i in range(30):
        fleet.step(300.0 * i, 300.0, ambient)
        assert np.all(np.abs(fleet.temp_c - steady_c) <= np.abs(previous - steady_c) + 1e-4)
        previous = fleet.temp_c.copy()
    np.testing.assert_allclose(fleet.temp_c, steady_c, atol=1e-3)


# --------------------------------------------------------------------------- caches


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 12), min_size=3, max_size=3),
    actions=st.lists(
        st.tuples(
            st.sampled_from(["active", "fraction", "fail", "repair", "off"]),
            st.integers(0, 2),
            st.integers(0, 20),
            st.floats(0.0, 1.2),
        ),
        max_size=25,
    ),
)
def test_commands_keep_counts_and_power_consistent(
    counts: list[int], actions: list[tuple[str, int, int, float]]
) -> None:
    """After any command sequence: the active count is min(request, healthy), and the step's
    class counts and steady power equal a brute-force recount of the state column."""
    specs = [S9, S21, M60S]
    fleet = AsicFleet.from_groups(
        [(i % 2, spec, n, 1.0) for i, (spec, n) in enumerate(zip(specs, counts, strict=True))]
    )
    rng = np.random.default_rng(0)
    for t, (kind, which, number, fraction) in enumerate(actions):
        facility, spec = which % 2, specs[which]
        rows = fleet.class_slice(fleet.class_index(facility, spec.model_id))
        if kind == "active":
            fleet.set_active_count(facility, spec.model_id, number, float(t))
            healthy = np.count_nonzero(fleet.state[rows] != FAILED)
            assert np.count_nonzero(fleet.state[rows] == ACTIVE) == min(number, healthy)
        elif kind == "fraction":
            fleet.set_power_fraction(facility, spec.model_id, fraction, float(t))
        elif rows.stop > rows.start:
            picked = rng.integers(rows.start, rows.stop, size=min(number, 3))
            {"fail": fleet.fail, "repair": fleet.repair, "off": fleet.power_off}[kind](picked)
    result = fleet.step(1e6, 300.0, np.array([20.0, 30.0]))
    assert result.ramping.sum() == 0
    for state, column in (
        (ACTIVE, result.active),
        (SLEEPING, result.sleeping),
        (OFF, result.off),
        (FAILED, result.failed),
    ):
        brute = np.zeros_like(column)
        np.add.at(brute, (fleet.facility, fleet.model), fleet.state == state)
        assert np.array_equal(column, brute)
    np.testing.assert_allclose(result.mean_power_kw, _brute_force_power_kw(fleet), rtol=1e-6)


def test_determinism() -> None:
    """Two fleets driven by the same seeded command sequence give identical results."""

    def run() -> list[np.ndarray]:
        rng = np.random.default_rng(42)
        fleet = AsicFleet.from_groups([(0, S21, 50, 1.0), (1, S9, 30, 1.0)])
        out = []
        for i in range(20):
            fleet.set_active_count(0, "antminer_s21", int(rng.integers(0, 60)), 300.0 * i)
            fleet.set_power_fraction(1, "antminer_s9", float(rng.uniform(0.5, 1.0)), 300.0 * i)
            fleet.fail(rng.integers(0, 80, size=1))
            result = fleet.step(300.0 * i, 300.0, rng.uniform(10, 40, size=2))
            out += [result.energy_kwh, result.mean_hashrate_ths, fleet.temp_c.copy()]
        return out

    for first, second in zip(run(), run(), strict=True):
        assert np.array_equal(first, second)


def test_step_validates_and_pads_facilities() -> None:
    """Bad intervals and short ambient arrays raise; a longer ambient array adds rows."""
    fleet = _one_class()
    with pytest.raises(FleetError, match="dt_s"):
        fleet.step(0.0, 0.0, np.array([20.0]))
    with pytest.raises(FleetError, match="ambient"):
        fleet.step(0.0, 300.0, np.array([]))
    result = fleet.step(0.0, 300.0, np.array([20.0, 25.0, 30.0]))
    assert result.mean_power_kw.shape == (3, 1) and result.mean_power_kw[1:].sum() == 0.0
    empty = AsicFleet.from_groups([])
    assert empty.step(0.0, 300.0, np.array([20.0])).mean_power_kw.shape == (1, 0)


# --------------------------------------------------------------------------- GPUs


def _gpus() -> GpuFleet:
    return GpuFleet.from_groups([(1, L40S, 8, 4), (0, H100, 16, 8), (1, H100, 8, 8)])


def test_gpu_pools_and_nodes() -> None:
    """Pools are contiguous (facility, type) slices; nodes number node_size GPUs each."""
    fleet = _gpus()
    assert fleet.n_pools == 3 and fleet.n_devices == 32
    assert fleet.pool_facility.tolist() == [0, 1, 1]
    assert [fleet.types[t].type_id for t in fleet.pool_type] == ["h100_sxm", "l40s", "h100_sxm"]
    assert fleet.node.dtype == np.int32 and fleet.use.dtype == np.int8
    assert fleet.node.tolist() == [0] * 8 + [1] * 8 + [2] * 4 + [3] * 4 + [4] * 8
    with pytest.raises(FleetError, match="multiple"):
        GpuFleet.from_groups([(0, H100, 12, 8)])


def test_apply_uses_labels_first_healthy_gpus_and_reports_shortfall() -> None:
    """Uses go on the first healthy GPUs in use order, OFF on the last, the rest idle;
    asking for more than is healthy is reported as a shortfall."""
    fleet = _gpus()
    pool = fleet.pool_index(0, "h100_sxm")
    fleet.fail([1])
    done = fleet.apply_uses(pool, {GpuUse.INFERENCE: 2.4, GpuUse.TRAINING: 3, GpuUse.OFF: 2})
    assert done.shortfall == 0 and done.applied[GpuUse.IDLE] == 15 - 7
    uses = fleet.use[fleet.pool_slice(pool)].tolist()
    assert uses[:7] == [1, 5, 1, 3, 3, 3, 0] and uses[-2:] == [5, 5]
    short = fleet.apply_uses(pool, {GpuUse.BATCH: 10, GpuUse.SPOT: 10})
    assert short.applied[GpuUse.BATCH] == 10 and short.applied[GpuUse.SPOT] == 5
    assert short.shortfall == 5 and fleet.counts_by_use()[pool, GpuUse.IDLE] == 0
    with pytest.raises(FleetError, match="use"):
        fleet.apply_uses(pool, {9: 1})


def test_gpu_step_power_by_use() -> None:
    """Busy GPUs draw TDP x cap, the rest of their use idles, spot draws 0.85 TDP (capped),
    idle draws idle_w, OFF and failed nothing."""
    fleet = GpuFleet.from_groups([(0, H100, 16, 8)])
    fleet.set_power_limit(0, 0.8)
    fleet.apply_uses(0, {GpuUse.TRAINING: 4, GpuUse.SPOT: 2, GpuUse.OFF: 3})
    fleet.fail([15])
    busy = np.zeros((1, N_GPU_USES))
    busy[0, GpuUse.TRAINING] = 3 * 300.0
    result = fleet.step(0.0, 300.0, busy, np.array([25.0]))
    kw = result.mean_power_kw_by_use[0]
    assert kw[GpuUse.TRAINING] == pytest.approx((3 * 700.0 * 0.8 + 1 * 80.0) / 1000.0)
    assert kw[GpuUse.SPOT] == pytest.approx(2 * 700.0 * min(SPOT_LOAD_FRACTION, 0.8) / 1000.0)
    assert kw[GpuUse.IDLE] == pytest.approx(7 * 80.0 / 1000.0)
    assert kw[GpuUse.OFF] == 0.0 and result.failed[0] == 1
    assert result.gpus_by_use[0].tolist() == [7, 0, 0, 4, 2, 2]
    assert np.array_equal(result.energy_kwh_by_use, result.mean_power_kw_by_use / 12.0)
    assert fleet.util[fleet.use == GpuUse.TRAINING].tolist() == pytest.approx([0.75] * 4)
    assert result.by_facility(result.mean_power_kw)[0] == pytest.approx(result.mean_power_kw[0])


def test_gpu_busy_time_is_clipped_to_labelled_gpus() -> None:
    """Busy GPU-seconds beyond labelled GPUs x dt are not counted and are reported."""
    fleet = GpuFleet.from_groups([(0, H100, 8, 8)])
    fleet.apply_uses(0, {GpuUse.INFERENCE: 2})
    busy = np.zeros((1, N_GPU_USES))
    busy[0, GpuUse.INFERENCE] = 1000.0
    result = fleet.step(0.0, 300.0, busy, np.array([25.0]))
    assert result.busy_gpu_s[0, GpuUse.INFERENCE] == 600.0
    assert result.clipped_busy_gpu_s[0, GpuUse.INFERENCE] == 400.0
    assert result.mean_power_kw_by_use[0, GpuUse.INFERENCE] == pytest.approx(1.4)
    with pytest.raises(FleetError, match="shape"):
        fleet.step(0.0, 300.0, np.zeros((2, N_GPU_USES)), np.array([25.0]))


def test_gpu_power_limit_clamp_and_throughput() -> None:
    """The cap is clamped to [min_power_fraction, 1]; throughput falls less than power."""
    fleet = GpuFleet.from_groups([(0, H100, 8, 8)])
    clamp = fleet.set_power_limit(0, 0.1)
    assert clamp.clamped and clamp.applied == H100.min_power_fraction
    assert np.all(fleet.power_limit_fraction == np.float32(H100.min_power_fraction))
    factor = gpu_throughput_factor(0.7, H100.throughput_exponent)
    assert 0.7 < factor < 1.0 and gpu_throughput_factor(1.0, 0.6) == 1.0


def test_gpu_fail_and_repair() -> None:
    """Failed GPUs leave the use counts and come back idle when repaired."""
    fleet = GpuFleet.from_groups([(0, H100, 8, 8)])
    fleet.apply_uses(0, {GpuUse.BATCH: 8})
    fleet.fail([0, 1])
    assert fleet.counts_by_use()[0, GpuUse.BATCH] == 6
    assert fleet.failed_by_pool().tolist() == [2]
    fleet.repair([0, 1, 2])
    assert fleet.state[2] == GpuHealth.OK and fleet.use[0] == GpuUse.IDLE
    assert fleet.counts_by_use()[0].tolist() == [2, 0, 6, 0, 0, 0]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 10), min_size=N_GPU_USES, max_size=N_GPU_USES),
    busy_share=st.lists(st.floats(0.0, 1.5), min_size=N_GPU_USES, max_size=N_GPU_USES),
    limit=st.floats(0.0, 1.0),
)
def test_gpu_power_stays_between_zero_and_capped_tdp(
    counts: list[int], busy_share: list[float], limit: float
) -> None:
    """Pool power never exceeds healthy GPUs x TDP x cap (or idle power when that is more)
    and energy is mean power x duration."""
    spec = GpuSpec("test_gpu", "Test GPU", 700.0, 80.0, 80.0)
    fleet = GpuFleet.from_groups([(0, spec, 32, 8)])
    fleet.set_power_limit(0, limit)
    fleet.apply_uses(0, dict(enumerate(counts)))
    busy = np.array(busy_share)[None, :] * 300.0 * np.array(counts)[None, :]
    result = fleet.step(0.0, 300.0, busy, np.array([25.0]))
    cap_w = 32 * max(700.0 * float(fleet.power_limit_fraction[0]), 80.0)
    assert 0.0 <= result.mean_power_kw[0] * 1000.0 <= cap_w + 1e-6
    assert np.allclose(result.energy_kwh_by_use, result.mean_power_kw_by_use * 300.0 / 3600.0)
    assert result.gpus_by_use.sum() == 32


def _three_pool_fleet() -> GpuFleet:
    return GpuFleet.from_groups([(0, H100, 16, 8), (1, L40S, 8, 4), (1, H100, 8, 8)])


@settings(max_examples=40, deadline=None)
@given(
    requests=st.lists(
        st.lists(st.floats(0.0, 20.0), min_size=N_GPU_USES, max_size=N_GPU_USES),
        min_size=3,
        max_size=3,
    ),
    failed=st.lists(st.integers(0, 31), max_size=6),
)
def test_apply_uses_all_labels_like_apply_uses_pool_by_pool(
    requests: list[list[float]], failed: list[int]
) -> None:
    """Labelling every pool at once gives the same labels and counts as one apply_uses per
    pool, failed GPUs included."""
    one_by_one, all_at_once = _three_pool_fleet(), _three_pool_fleet()
    for fleet in (one_by_one, all_at_once):
        fleet.fail(failed)
    expected = [
        one_by_one.apply_uses(p, dict(enumerate(r))).applied for p, r in enumerate(requests)
    ]
    applied = all_at_once.apply_uses_all(np.array(requests))
    assert applied.tolist() == [list(a) for a in expected]
    assert np.array_equal(all_at_once.use, one_by_one.use)
    assert np.array_equal(all_at_once.counts_by_use(), one_by_one.counts_by_use())
    assert np.array_equal(all_at_once.counts_by_use(), applied)


def test_apply_uses_all_refuses_bad_input() -> None:
    """A wrong shape or a negative or non-finite count raises FleetError naming it."""
    fleet = _three_pool_fleet()
    with pytest.raises(FleetError, match="shape"):
        fleet.apply_uses_all(np.zeros((2, N_GPU_USES)))
    bad = np.zeros((3, N_GPU_USES))
    bad[1, GpuUse.SPOT] = np.nan
    with pytest.raises(FleetError, match=r"\[1, SPOT\]"):
        fleet.apply_uses_all(bad)


@settings(max_examples=40, deadline=None)
@given(
    requests=st.lists(st.integers(0, 16), min_size=3 * N_GPU_USES, max_size=3 * N_GPU_USES),
    busy_share=st.lists(st.floats(0.0, 1.2), min_size=N_GPU_USES, max_size=N_GPU_USES),
    limits=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    failed=st.lists(st.integers(0, 31), max_size=6),
)
def test_gpu_step_readings_match_a_per_device_computation(
    requests: list[int], busy_share: list[float], limits: list[float], failed: list[int]
) -> None:
    """The step's per-(pool, use) power table gathered onto devices equals the per-device
    formula: busy share x TDP x cap (spot load capped) + rest at idle, 0 when OFF or failed;
    pool means are the per-device sums."""
    fleet = _three_pool_fleet()
    for pool, limit in enumerate(limits):
        fleet.set_power_limit(pool, limit)
    fleet.fail(failed)
    fleet.apply_uses_all(np.array(requests, dtype=float).reshape(3, N_GPU_USES))
    counts = fleet.counts_by_use()
    busy = counts * 300.0 * np.array(busy_share)[None, :]
    result = fleet.step(0.0, 300.0, busy, np.array([25.0, 30.0]))

    share = np.divide(
        result.busy_gpu_s, counts * 300.0, out=np.zeros(counts.shape), where=counts > 0
    )
    pool = np.repeat(np.arange(3), np.diff(fleet.pool_start))
    util = share[pool, fleet.use] * (fleet.use != GpuUse.OFF)
    tdp = np.array([t.tdp_w for t in fleet.types])[fleet.type]
    idle = np.array([t.idle_w for t in fleet.types])[fleet.type]
    cap = fleet.power_limit_fraction.astype(float)
    cap = np.where(fleet.use == GpuUse.SPOT, np.minimum(cap, SPOT_LOAD_FRACTION), cap)
    power = (util * tdp * cap + (1 - util) * idle) * (fleet.use != GpuUse.OFF)
    assert np.all(power[fleet.state == GpuHealth.FAILED] == 0.0)
    np.testing.assert_allclose(fleet.power_w, power, rtol=1e-5, atol=1e-6)  # float32 readings
    np.testing.assert_allclose(fleet.util, util, rtol=1e-5, atol=1e-6)
    by_cell = np.zeros((3, N_GPU_USES))
    np.add.at(by_cell, (pool, fleet.use), power / 1000.0)
    np.testing.assert_allclose(result.mean_power_kw_by_use, by_cell, rtol=1e-5, atol=1e-9)


def test_setting_the_same_power_target_again_changes_nothing() -> None:
    """Re-sending a class's current power target is a no-op; a class built from groups with
    different targets takes one target for all when set."""
    fleet = AsicFleet.from_groups([(0, S21, 4, 0.8), (0, S21, 4, 1.0)])
    assert sorted(set(fleet.power_fraction.tolist())) == pytest.approx([0.8, 1.0])
    before = fleet.step(0.0, 300.0, np.array([25.0])).mean_power_kw.copy()
    again = fleet.set_power_fraction(0, "antminer_s21", 1.0, 300.0)
    assert not again.clamped
    assert np.all(fleet.power_fraction == np.float32(1.0))
    after = fleet.step(300.0, 300.0, np.array([25.0])).mean_power_kw
    assert after[0, 0] > before[0, 0]
    fleet.set_power_fraction(0, "antminer_s21", 1.0, 600.0)
    assert np.array_equal(fleet.step(600.0, 300.0, np.array([25.0])).mean_power_kw, after)
    np.testing.assert_allclose(after, _brute_force_power_kw(fleet), rtol=1e-6)
