"""Admission step 1: check a customer's submission and classify it into one workload type.

A functional core (no IO, no clock) shared by the REST API and the CLI: it takes the fields a
customer sends (:class:`Submission`) and returns the PRD workload type the job runs as
(:class:`Classification`), or errors that name the field and the reason
(:class:`SubmissionError`).

Rules, applied in this order (the realtime bound is ``WORKLOAD_SPECS[REALTIME].max_latency_s``
in ms, 100 ms; the training threshold is :data:`TRAINING_MIN_DURATION_S`, 4 h):

1. ``workload_type`` given: it must be a known type name and it is the type; the fields must
   agree with it (rules 7-10).
2. ``hashrate_ths > 0``: ``bitcoin_mining``.
3. ``max_latency_ms <= realtime bound``: ``ai_inference_realtime``.
4. ``checkpoint_interval_s`` given: ``model_training``.
5. ``estimated_duration_s >= 4 h``: ``model_training``.
6. Otherwise: ``ai_inference_batch``.

Consistency with the type (explicit or inferred) follows its :data:`WORKLOAD_SPECS` entry:

7. Mining (``on_asic``) needs ``hashrate_ths > 0``, ``gpu_count == 0`` and ``gpu_type``
   None; every other type runs on GPUs and needs ``hashrate_ths == 0`` and ``gpu_count >= 1``.
8. ``interruptible``, when given, must equal the type's ``interruptible``: realtime can never
   be ``True``; batch, training and mining can never be ``False`` (only realtime runs
   uninterrupted, so a job that must not be preempted has to be realtime).
9. ``checkpoint_interval_s`` only on a type that ``checkpoints`` (batch, training).
10. ``max_latency_ms`` within the realtime bound only on realtime: no other type starts that
    fast. A looser ``max_latency_ms`` does not pick a type; the job gets its type's bound.

Field checks (each independent of the others): ``workload_type`` a known name;
``gpu_count`` a whole number >= 0; ``gpu_type`` None or a catalog id (``known_gpu_types``,
by default :data:`models.hardware.GPU_CATALOG`); ``data_residency`` None or one of
:data:`models.customers.REGIONS`; ``interruptible`` None or a bool; every number finite,
``estimated_duration_s``, ``deadline_s``, ``checkpoint_interval_s`` and ``max_latency_ms``
> 0, ``hashrate_ths`` and ``data_gb`` >= 0; ``deadline_s >= estimated_duration_s``.

:func:`validate_submission` returns every problem at once (for an API reply). Consistency is
only checked when the fields it reads passed their own checks, and only when the type is
known: the explicit type, or, without one, the inferred type when the fields that decide it
(rules 2-5) are valid. So one typo gives one error, not a cascade. :func:`classify` raises the
first problem of that list; callers that want them all call :func:`validate_submission`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from dataclasses import dataclass

from models.customers import REGIONS
from models.hardware import GPU_CATALOG
from models.workload_types import BATCH, MINING, REALTIME, TRAINING, TYPE_NAMES, WORKLOAD_SPECS

REALTIME_MAX_LATENCY_MS = WORKLOAD_SPECS[REALTIME].max_latency_s * 1000.0
"""Largest ``max_latency_ms`` that classifies as realtime inference [ms] (PRD: 100 ms)."""

TRAINING_MIN_DURATION_S = 4 * 3600.0
"""Estimated duration from which GPU work without another signal is training [s] (4 h)."""

GPU_TYPE_IDS: tuple[str, ...] = tuple(GPU_CATALOG)
"""GPU type ids a submission may ask for by default (the built-in catalog)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """The fields a customer sends for one job.

    Attributes:
        estimated_duration_s: how long the job runs once started [s] (> 0).
        workload_type: explicit type name (one of ``TYPE_NAMES``); None: infer it.
        gpu_count: GPUs asked for (gang size) [-]; 0 for mining.
        gpu_type: GPU catalog id; None: any type.
        hashrate_ths: hashrate asked for [TH/s]; > 0 only for mining.
        max_latency_ms: longest acceptable wait from submission to start [ms]; None: no bound.
        interruptible: whether the job may be preempted; None: no preference.
        deadline_s: time after submission by which the job must complete [s]; None: none.
        checkpoint_interval_s: work between checkpoints [s]; None: no checkpoints.
        data_residency: region the data must stay in (one of ``REGIONS``); None: anywhere.
        data_gb: input data to move if the job runs outside the customer's region [GB].
    """

    estimated_duration_s: float
    workload_type: str | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    hashrate_ths: float = 0.0
    max_latency_ms: float | None = None
    interruptible: bool | None = None
    deadline_s: float | None = None
    checkpoint_interval_s: float | None = None
    data_residency: str | None = None
    data_gb: float = 0.0


@dataclass(frozen=True, slots=True)
class Classification:
    """The workload type a submission runs as.

    Attributes:
        type_code: index into ``WORKLOAD_SPECS`` (``REALTIME`` ... ``MINING``).
        type_name: the type's name, e.g. ``model_training``.
        reason: one sentence saying why, for API replies and logs.
    """

    type_code: int
    type_name: str
    reason: str


class SubmissionError(ValueError):
    """One problem with a submission: the field it concerns and why; ``str`` is
    ``"<field>: <reason>"``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[SubmissionError], tuple[str, str]]:
        """Pickle by (field, reason), so errors cross process boundaries intact."""
        return (SubmissionError, (self.field, self.reason))


def classify(sub: Submission, *, known_gpu_types: Collection[str] = GPU_TYPE_IDS) -> Classification:
    """The workload type ``sub`` runs as, by the rules in the module docstring.

    Raises:
        SubmissionError: the first problem :func:`validate_submission` finds.
    """
    problems = validate_submission(sub, known_gpu_types=known_gpu_types)
    if problems:
        raise problems[0]
    if sub.workload_type is not None:
        code = TYPE_NAMES.index(sub.workload_type)
        return Classification(code, TYPE_NAMES[code], f"declared as {TYPE_NAMES[code]}")
    code, reason = _infer_type(sub)
    return Classification(code, TYPE_NAMES[code], reason)


def validate_submission(
    sub: Submission, *, known_gpu_types: Collection[str] = GPU_TYPE_IDS
) -> list[SubmissionError]:
    """Every problem with ``sub`` (empty if it is valid), field checks first."""
    problems = _field_problems(sub, known_gpu_types)
    bad_fields = {p.field for p in problems}
    code = _known_type_code(sub, bad_fields)
    if code is not None:
        problems += _consistency_problems(sub, code, bad_fields)
    return problems


def _field_problems(sub: Submission, known_gpu_types: Collection[str]) -> list[SubmissionError]:
    """Checks of each field on its own (types, ranges, known names) and deadline vs duration."""
    checks = [
        _name_problem("workload_type", sub.workload_type, TYPE_NAMES, "workload types"),
        _count_problem("gpu_count", sub.gpu_count),
        _name_problem("gpu_type", sub.gpu_type, tuple(known_gpu_types), "GPU types"),
        _number_problem("hashrate_ths", sub.hashrate_ths, positive=False),
        _number_problem("max_latency_ms", sub.max_latency_ms, positive=True, optional=True),
        _flag_problem("interruptible", sub.interruptible),
        _number_problem("estimated_duration_s", sub.estimated_duration_s, positive=True),
        _number_problem("deadline_s", sub.deadline_s, positive=True, optional=True),
        _number_problem(
            "checkpoint_interval_s", sub.checkpoint_interval_s, positive=True, optional=True
        ),
        _name_problem("data_residency", sub.data_residency, REGIONS, "regions"),
        _number_problem("data_gb", sub.data_gb, positive=False),
    ]
    problems = [p for p in checks if p is not None]
    bad_fields = {p.field for p in problems}
    if (
        sub.deadline_s is not None
        and not bad_fields & {"deadline_s", "estimated_duration_s"}
        and sub.deadline_s < sub.estimated_duration_s
    ):
        problems.append(
            SubmissionError(
                "deadline_s",
                f"{sub.deadline_s:g} s is shorter than the estimated duration "
                f"({sub.estimated_duration_s:g} s), so the job cannot complete in time",
            )
        )
    return problems


def _known_type_code(sub: Submission, bad_fields: set[str]) -> int | None:
    """The explicit type, else the inferred one; None when the deciding fields are invalid."""
    if sub.workload_type is not None:
        return None if "workload_type" in bad_fields else TYPE_NAMES.index(sub.workload_type)
    deciding = {"hashrate_ths", "max_latency_ms", "checkpoint_interval_s", "estimated_duration_s"}
    if bad_fields & deciding:
        return None
    return _infer_type(sub)[0]


def _infer_type(sub: Submission) -> tuple[int, str]:
    """Type code and reason by rules 2-6, for a submission whose deciding fields are valid."""
    if sub.hashrate_ths > 0:
        return MINING, f"asks for {sub.hashrate_ths:g} TH/s of hashrate, which only ASICs provide"
    if sub.max_latency_ms is not None and sub.max_latency_ms <= REALTIME_MAX_LATENCY_MS:
        return REALTIME, (
            f"asks for {sub.max_latency_ms:g} ms max latency, within the realtime bound "
            f"of {REALTIME_MAX_LATENCY_MS:g} ms"
        )
    if sub.checkpoint_interval_s is not None:
        return TRAINING, (
            f"takes a checkpoint every {sub.checkpoint_interval_s:g} s, as training does"
        )
    if sub.estimated_duration_s >= TRAINING_MIN_DURATION_S:
        return TRAINING, (
            f"runs an estimated {sub.estimated_duration_s / 3600:g} h, at least the "
            f"{TRAINING_MIN_DURATION_S / 3600:g} h from which GPU work counts as training"
        )
    return BATCH, (
        f"GPU work with no realtime latency bound, no checkpoints and under "
        f"{TRAINING_MIN_DURATION_S / 3600:g} h, so it runs as interruptible batch inference"
    )


def _consistency_problems(
    sub: Submission, code: int, bad_fields: set[str]
) -> list[SubmissionError]:
    """Rules 7-10: fields that contradict type ``code``; fields in ``bad_fields`` are skipped
    (their values may not even be numbers)."""
    spec = WORKLOAD_SPECS[code]
    problems: list[SubmissionError] = []

    def usable(field: str, value: object) -> bool:
        return field not in bad_fields and value is not None

    if spec.on_asic:
        if usable("hashrate_ths", sub.hashrate_ths) and not sub.hashrate_ths > 0:
            problems.append(SubmissionError("hashrate_ths", f"{spec.name} needs hashrate_ths > 0"))
        if usable("gpu_count", sub.gpu_count) and sub.gpu_count != 0:
            problems.append(
                SubmissionError(
                    "gpu_count",
                    f"{spec.name} runs on ASICs, so gpu_count must be 0 (got {sub.gpu_count})",
                )
            )
        if usable("gpu_type", sub.gpu_type):
            problems.append(
                SubmissionError(
                    "gpu_type",
                    f"{spec.name} runs on ASICs, so gpu_type must be empty (got {sub.gpu_type!r})",
                )
            )
    else:
        if usable("hashrate_ths", sub.hashrate_ths) and sub.hashrate_ths != 0:
            problems.append(
                SubmissionError(
                    "hashrate_ths",
                    f"{spec.name} runs on GPUs; only {TYPE_NAMES[MINING]} asks for hashrate "
                    f"(got {sub.hashrate_ths:g} TH/s)",
                )
            )
        if usable("gpu_count", sub.gpu_count) and sub.gpu_count < 1:
            problems.append(
                SubmissionError("gpu_count", f"{spec.name} runs on GPUs and needs gpu_count >= 1")
            )
    if usable("interruptible", sub.interruptible) and sub.interruptible != spec.interruptible:
        reason = (
            f"{spec.name} jobs may be preempted; only {TYPE_NAMES[REALTIME]} "
            f"(max_latency_ms <= {REALTIME_MAX_LATENCY_MS:g}) runs uninterrupted"
            if spec.interruptible
            else f"{spec.name} jobs are never preempted"
        )
        problems.append(SubmissionError("interruptible", reason))
    if usable("checkpoint_interval_s", sub.checkpoint_interval_s) and not spec.checkpoints:
        problems.append(
            SubmissionError("checkpoint_interval_s", f"{spec.name} jobs take no checkpoints")
        )
    latency_ms = sub.max_latency_ms
    if (
        code != REALTIME
        and latency_ms is not None
        and usable("max_latency_ms", latency_ms)
        and latency_ms <= REALTIME_MAX_LATENCY_MS
    ):
        problems.append(
            SubmissionError(
                "max_latency_ms",
                f"a start within {REALTIME_MAX_LATENCY_MS:g} ms is only offered to "
                f"{TYPE_NAMES[REALTIME]}, not to {spec.name}",
            )
        )
    return problems


def _name_problem(
    field: str, value: object, known: tuple[str, ...], what: str
) -> SubmissionError | None:
    """None or a name from ``known``."""
    if value is None or (isinstance(value, str) and value in known):
        return None
    return SubmissionError(field, f"unknown value {value!r}; known {what}: {', '.join(known)}")


def _count_problem(field: str, value: object) -> SubmissionError | None:
    """A whole number >= 0 (bools are refused: ``true`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return SubmissionError(field, f"must be a whole number, got {value!r}")
    if value < 0:
        return SubmissionError(field, f"must be >= 0, got {value}")
    return None


def _flag_problem(field: str, value: object) -> SubmissionError | None:
    """None or a bool."""
    if value is None or isinstance(value, bool):
        return None
    return SubmissionError(field, f"must be true, false or empty, got {value!r}")


def _number_problem(
    field: str, value: object, *, positive: bool, optional: bool = False
) -> SubmissionError | None:
    """A finite real number, > 0 if ``positive`` else >= 0; None allowed if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return SubmissionError(field, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        return SubmissionError(field, f"must be finite, got {number}")
    if positive and number <= 0:
        return SubmissionError(field, f"must be > 0, got {number:g}")
    if not positive and number < 0:
        return SubmissionError(field, f"must be >= 0, got {number:g}")
    return None
