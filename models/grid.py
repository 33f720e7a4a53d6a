"""ERCOT-style grid: settlement point prices, ancillary prices, 4CP intervals, grid events.

Prices and ancillary prices come in as signals (synthetic or historical, built by
``datasets/``); this module adds what ERCOT's rules make of them:

* **4CP**: transmission charges are allocated by a load's demand in the four 15-minute
  system-peak intervals of June-September. The twin picks one interval per configured month
  on the weekday whose system price (mean across settlement points) is highest at the
  configured local peak hour, because peaks coincide with scarcity pricing.
* **Grid events**: explicit events from the scenario plus synthetic ones (Poisson, mostly
  summer afternoons and winter mornings) that ask facilities to curtail for a payment.

Everything is on the model clock ``t_s`` (seconds since scenario start). The calendar
(America/Chicago local time, weekdays, months) is consulted once, in the constructor, to turn
4CP peak hours and event dates into ``t_s``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from datasets.signals import Signal

if TYPE_CHECKING:
    from twin.scenario import Grid as GridConfig

ERCOT_TIMEZONE = ZoneInfo("America/Chicago")
"""Central Prevailing Time, ERCOT's market clock."""
FOUR_CP_INTERVAL_S = 900.0
"""Length of a 4CP interval [s]: one 15-minute settlement interval."""
FOUR_CP_INTERVALS_PER_YEAR = 4
SECONDS_PER_YEAR = 365.25 * 86400.0

SYNTHETIC_EVENT_KIND = "dr"
"""Synthetic events are paid demand response: ``payment_usd_per_mwh`` for energy not drawn."""
SYNTHETIC_EVENT_MIN_DURATION_S = 3600.0
SYNTHETIC_EVENT_MAX_DURATION_S = 4 * 3600.0
SYNTHETIC_EVENT_ROUNDING_S = 900.0
"""Synthetic event durations are whole 15-minute intervals [s]."""
SUMMER_MONTHS = (6, 7, 8, 9)
SUMMER_EVENT_HOURS_LOCAL = (14, 20)
"""Summer afternoon window [start, end) in local hours, when hot-weather peaks strain supply."""
WINTER_MONTHS = (12, 1, 2)
WINTER_EVENT_HOURS_LOCAL = (6, 10)
"""Winter morning window [start, end) in local hours, when cold-weather peaks strain supply."""
OFF_PEAK_EVENT_WEIGHT = 0.05
"""Relative likelihood of an event starting outside those windows [-]; with it about three
quarters of synthetic events start in a summer afternoon or winter morning."""


class GridError(ValueError):
    """A grid input is invalid or a query names something the grid does not know."""


@dataclass(frozen=True, slots=True)
class CurtailRequest:
    """What the grid asks of one facility now.

    Attributes:
        fraction: share of the facility's flexible load to shed [0-1]; 0 when no event.
        payment_usd_per_mwh: paid per MWh not drawn while complying [USD/MWh].
        kind: event kind (``eea``, ``ers``, ``dr``) or ``none``.
    """

    fraction: float
    payment_usd_per_mwh: float
    kind: str


NO_CURTAILMENT = CurtailRequest(0.0, 0.0, "none")


class GridEventRow(NamedTuple):
    """One grid event for the report: ``[start_s, end_s)`` [s], kind, fraction [0-1] and
    the facilities it applies to."""

    start_s: float
    end_s: float
    kind: str
    fraction: float
    facilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Event:
    start_s: float
    end_s: float
    kind: str
    fraction: float
    payment_usd_per_mwh: float
    facilities: tuple[str, ...]


class Grid:
    """The grid a scenario's facilities connect to.

    Args:
        cfg: the scenario's ``grid`` block.
        start: scenario start (timezone-aware); used only in the constructor to place 4CP
            intervals and explicit events on the model clock.
        duration_s: run length [s].
        step_s: dispatch interval [s]; an interval ``[t_s, t_s + step_s)`` that overlaps a
            4CP interval counts as 4CP; synthetic events start on this grid.
        prices: real-time price [USD/MWh] per settlement point.
        ancillary: capacity price [USD/MW-h] per service (``REGUP``, ``RRS``, ``ECRS`` ...).
        facility_ids: ids of the facilities that events may address.
        rng: the grid's random generator (synthetic events, 4CP ties).
    """

    def __init__(
        self,
        cfg: GridConfig,
        start: datetime,
        duration_s: float,
        step_s: float,
        prices: Mapping[str, Signal],
        ancillary: Mapping[str, Signal],
        facility_ids: Sequence[str],
        rng: np.random.Generator,
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise GridError(f"start: needs a timezone, got naive {start.isoformat()}")
        if not duration_s > 0:
            raise GridError(f"duration_s: must be > 0, got {duration_s}")
        if not step_s > 0:
            raise GridError(f"step_s: must be > 0, got {step_s}")
        if len(set(facility_ids)) != len(facility_ids):
            raise GridError(f"facility_ids: ids must be unique, got {list(facility_ids)}")
        self.cfg = cfg
        self.start = start
        self.duration_s = float(duration_s)
        self.step_s = float(step_s)
        self.prices = dict(prices)
        self.ancillary = dict(ancillary)
        self.facility_ids = tuple(facility_ids)
        self._facility_index = {fid: i for i, fid in enumerate(self.facility_ids)}

        events = self._explicit_events() + self._synthetic_events(rng)
        events.sort(key=lambda e: (e.start_s, e.end_s))
        self._events = tuple(events)
        self._event_start_s = np.array([e.start_s for e in events], dtype=float)
        self._event_end_s = np.array([e.end_s for e in events], dtype=float)
        self._event_fraction = np.array([e.fraction for e in events], dtype=float)
        self._event_applies = np.zeros((len(events), len(self.facility_ids)), dtype=bool)
        for row, event in enumerate(events):
            for fid in event.facilities:
                self._event_applies[row, self._facility_index[fid]] = True
        # plain-Python copies for the per-interval lookup (a handful of events, queried
        # every dispatch interval: numpy's per-call overhead would dominate)
        self._start_list: list[float] = self._event_start_s.tolist()
        self._latest_end_list: list[float] = np.maximum.accumulate(self._event_end_s).tolist()
        self._applies_list: list[list[bool]] = self._event_applies.tolist()

        self._four_cp_start_s = np.array(self._choose_four_cp_intervals(rng), dtype=float)

    # ------------------------------------------------------------------ prices

    def price_usd_per_mwh(self, settlement_point: str, t_s: float) -> float:
        """Real-time price at ``settlement_point`` at ``t_s`` [USD/MWh]."""
        signal = self.prices.get(settlement_point)
        if signal is None:
            known = ", ".join(sorted(self.prices)) or "none"
            raise GridError(f"unknown settlement point {settlement_point!r}; known: {known}")
        return float(signal.at(t_s))

    def ancillary_usd_per_mw_h(self, t_s: float) -> dict[str, float]:
        """Capacity price of each ancillary service available at ``t_s`` [USD/MW-h].

        A service is omitted when it does not exist yet (``t_s`` before its signal starts,
        e.g. ECRS before 2023-06-10) or its value is NaN. After a signal's end the query
        raises :class:`~datasets.signals.SignalRangeError`: that is missing data, not a
        missing service.
        """
        offered: dict[str, float] = {}
        for service, signal in self.ancillary.items():
            if t_s < signal.start_s:
                continue
            value = float(signal.at(t_s))
            if not math.isnan(value):
                offered[service] = value
        return offered

    # ------------------------------------------------------------------ 4CP

    @property
    def four_cp_intervals_s(self) -> tuple[float, ...]:
        """Start times of the run's 4CP intervals [s], ascending; each lasts 900 s."""
        return tuple(float(t) for t in self._four_cp_start_s)

    def is_four_cp(self, t_s: float) -> bool:
        """True when the dispatch interval ``[t_s, t_s + step_s)`` overlaps a 4CP interval."""
        starts = self._four_cp_start_s
        index = int(np.searchsorted(starts, t_s + self.step_s, side="left")) - 1
        return index >= 0 and starts[index] + FOUR_CP_INTERVAL_S > t_s

    def four_cp_charge_usd(self, facility_mw_at_interval: float) -> float:
        """Transmission charge accrued by drawing ``facility_mw_at_interval`` [MW] during one
        4CP interval [USD].

        ERCOT bills ``rate_usd_per_kw_year`` times the mean demand over the year's four
        intervals, so each interval accrues a quarter of the annual charge at its demand:
        ``rate * kW / 4``.
        """
        if not facility_mw_at_interval >= 0:
            raise GridError(f"facility_mw_at_interval: must be >= 0, got {facility_mw_at_interval}")
        kw = facility_mw_at_interval * 1000.0
        return self.cfg.four_cp.rate_usd_per_kw_year * kw / FOUR_CP_INTERVALS_PER_YEAR

    def _choose_four_cp_intervals(self, rng: np.random.Generator) -> list[float]:
        """One interval per configured month in the run: the weekday at the local peak time
        (aligned down to 15 minutes) with the highest mean system price; ties by ``rng``."""
        four_cp = self.cfg.four_cp
        if not four_cp.enabled:
            return []
        quarter_hours = int(four_cp.peak_hour_local * 4)
        hour, minute = divmod(quarter_hours * 15, 60)
        candidates: dict[tuple[int, int], list[float]] = {}
        for day in self._local_days():
            if day.month not in four_cp.months or day.weekday() >= 5:
                continue
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ERCOT_TIMEZONE)
            t_s = local.timestamp() - self.start.timestamp()
            if t_s >= 0.0 and t_s + FOUR_CP_INTERVAL_S <= self.duration_s:
                candidates.setdefault((day.year, day.month), []).append(t_s)
        chosen = []
        for month in sorted(candidates):
            times = np.array(candidates[month])
            scores = np.array([self._system_price_usd_per_mwh(t) for t in times])
            best = np.flatnonzero(scores >= scores.max() - 1e-9 * max(1.0, abs(scores.max())))
            chosen.append(float(times[best[rng.integers(best.size)]]))
        return chosen

    def _system_price_usd_per_mwh(self, t_s: float) -> float:
        """Mean price across settlement points over the 15 minutes from ``t_s`` [USD/MWh]."""
        if not self.prices:
            return 0.0
        means = [
            float(np.mean(signal.over(t_s, t_s + FOUR_CP_INTERVAL_S, self.step_s)))
            for signal in self.prices.values()
        ]
        return float(np.mean(means))

    def _local_days(self) -> Iterator[date]:
        """Every local calendar day the run touches."""
        first = self.start.astimezone(ERCOT_TIMEZONE).date()
        last = (self.start + timedelta(seconds=self.duration_s)).astimezone(ERCOT_TIMEZONE).date()
        for offset in range((last - first).days + 1):
            yield first + timedelta(days=offset)

    # ------------------------------------------------------------------ events

    def curtail_request(self, facility_id: str, t_s: float) -> CurtailRequest:
        """What the grid asks of ``facility_id`` at ``t_s``: the active event applying to it
        with the largest curtailment fraction, or :data:`NO_CURTAILMENT`."""
        column = self._facility_index.get(facility_id)
        if column is None:
            known = ", ".join(self.facility_ids) or "none"
            raise GridError(f"unknown facility {facility_id!r}; known: {known}")
        started = bisect_right(self._start_list, t_s)
        if started == 0 or self._latest_end_list[started - 1] <= t_s:
            return NO_CURTAILMENT  # no event has started, or all that have are over
        chosen: _Event | None = None
        for row in range(started):
            event = self._events[row]
            applies = t_s < event.end_s and self._applies_list[row][column]
            if applies and (chosen is None or event.fraction > chosen.fraction):
                chosen = event
        if chosen is None:
            return NO_CURTAILMENT
        return CurtailRequest(chosen.fraction, chosen.payment_usd_per_mwh, chosen.kind)

    def events_table(self) -> list[GridEventRow]:
        """Every event of the run (explicit and synthetic), by start time, for the report."""
        return [
            GridEventRow(e.start_s, e.end_s, e.kind, e.fraction, e.facilities) for e in self._events
        ]

    def _explicit_events(self) -> list[_Event]:
        events = []
        for i, event in enumerate(self.cfg.events):
            facilities = self.facility_ids if event.facilities is None else tuple(event.facilities)
            unknown = [fid for fid in facilities if fid not in self._facility_index]
            if unknown:
                raise GridError(f"grid.events[{i}].facilities: unknown facility {unknown[0]!r}")
            start_s = event.start.timestamp() - self.start.timestamp()
            events.append(
                _Event(
                    start_s=start_s,
                    end_s=start_s + event.duration_h * 3600.0,
                    kind=event.kind,
                    fraction=float(event.curtail_fraction),
                    payment_usd_per_mwh=float(event.payment_usd_per_mwh),
                    facilities=facilities,
                )
            )
        return events

    def _synthetic_events(self, rng: np.random.Generator) -> list[_Event]:
        """``Poisson(rate * years)`` events, each starting at a time drawn by rejection
        sampling with :func:`_event_start_weight`, on the dispatch grid, lasting 1-4 h."""
        rate_per_year = self.cfg.synthetic_events_per_year
        if rate_per_year <= 0:
            return []
        count = int(rng.poisson(rate_per_year * self.duration_s / SECONDS_PER_YEAR))
        start_epoch_s = self.start.timestamp()
        events: list[_Event] = []
        while len(events) < count:
            t_s = float(rng.uniform(0.0, self.duration_s))
            local = datetime.fromtimestamp(start_epoch_s + t_s, tz=ERCOT_TIMEZONE)
            if rng.random() >= _event_start_weight(local):
                continue
            start_s = math.floor(t_s / self.step_s) * self.step_s
            duration_s = float(
                rng.uniform(SYNTHETIC_EVENT_MIN_DURATION_S, SYNTHETIC_EVENT_MAX_DURATION_S)
            )
            duration_s = max(
                SYNTHETIC_EVENT_MIN_DURATION_S,
                round(duration_s / SYNTHETIC_EVENT_ROUNDING_S) * SYNTHETIC_EVENT_ROUNDING_S,
            )
            events.append(
                _Event(
                    start_s=start_s,
                    end_s=start_s + duration_s,
                    kind=SYNTHETIC_EVENT_KIND,
                    fraction=1.0,
                    payment_usd_per_mwh=float(self.cfg.synthetic_event_payment_usd_per_mwh),
                    facilities=self.facility_ids,
                )
            )
        return events


def _event_start_weight(local: datetime) -> float:
    """Relative likelihood [0-1] that a grid event starts at local time ``local``: 1 in
    summer afternoons and winter mornings, :data:`OFF_PEAK_EVENT_WEIGHT` otherwise."""
    summer = _in_window(local, SUMMER_MONTHS, SUMMER_EVENT_HOURS_LOCAL)
    winter = _in_window(local, WINTER_MONTHS, WINTER_EVENT_HOURS_LOCAL)
    return 1.0 if summer or winter else OFF_PEAK_EVENT_WEIGHT


def _in_window(local: datetime, months: tuple[int, ...], hours: tuple[int, int]) -> bool:
    return local.month in months and hours[0] <= local.hour < hours[1]
