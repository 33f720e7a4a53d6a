"""Admission classification: submissions map to one PRD workload type or name what is wrong."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.customers import REGIONS
from models.hardware import GPU_CATALOG
from models.workload_types import BATCH, MINING, REALTIME, TRAINING, TYPE_NAMES, WORKLOAD_SPECS
from optimizer.classify import (
    Submission,
    SubmissionError,
    classify,
    validate_submission,
)

BOUND_MS = WORKLOAD_SPECS[REALTIME].max_latency_s * 1000.0
"""The realtime latency bound from the PRD table [ms]."""

FOUR_HOURS_S = 4 * 3600.0

VALID_CASES = [
    # Latency within the realtime bound: realtime inference.
    (Submission(60.0, gpu_count=1, max_latency_ms=50.0), REALTIME),
    # The bound itself still counts as within it.
    (Submission(60.0, gpu_count=1, max_latency_ms=BOUND_MS), REALTIME),
    # A realtime endpoint may serve for a day; latency decides before duration does.
    (Submission(86400.0, gpu_count=2, max_latency_ms=20.0, interruptible=False), REALTIME),
    # Just above the bound and short: batch inference.
    (Submission(600.0, gpu_count=8, max_latency_ms=BOUND_MS + 0.5), BATCH),
    # Plain short GPU work with placement constraints and a feasible deadline: batch.
    (
        Submission(
            3600.0,
            gpu_count=2,
            gpu_type="h100_sxm",
            interruptible=True,
            deadline_s=7200.0,
            data_residency=REGIONS[0],
            data_gb=50.0,
        ),
        BATCH,
    ),
    # One second under the training threshold: still batch.
    (Submission(FOUR_HOURS_S - 1.0, gpu_count=8), BATCH),
    # At the 4 h threshold: training.
    (Submission(FOUR_HOURS_S, gpu_count=8), TRAINING),
    # Checkpoints mark training even for a short job.
    (Submission(600.0, gpu_count=1, checkpoint_interval_s=300.0), TRAINING),
    # Hashrate asked for: mining, and a latency looser than the realtime bound is fine.
    (Submission(3600.0, hashrate_ths=500.0), MINING),
    (Submission(3600.0, hashrate_ths=500.0, interruptible=True, max_latency_ms=30_000.0), MINING),
    # An explicit type wins over the duration and checkpoint rules when consistent.
    (Submission(36_000.0, workload_type=TYPE_NAMES[BATCH], gpu_count=4), BATCH),
    (
        Submission(600.0, workload_type=TYPE_NAMES[BATCH], gpu_count=4, checkpoint_interval_s=60.0),
        BATCH,
    ),
    (Submission(600.0, workload_type=TYPE_NAMES[TRAINING], gpu_count=4), TRAINING),
    (Submission(600.0, workload_type=TYPE_NAMES[REALTIME], gpu_count=1), REALTIME),
    (Submission(600.0, workload_type=TYPE_NAMES[MINING], hashrate_ths=1.0), MINING),
]


@pytest.mark.parametrize(("sub", "expected"), VALID_CASES)
def test_valid_submissions_classify_by_the_rules(sub: Submission, expected: int) -> None:
    """Each valid submission has no problems and gets the type its fields call for."""
    assert validate_submission(sub) == []
    result = classify(sub)
    assert result.type_code == expected
    assert result.type_name == TYPE_NAMES[expected]
    assert result.reason


def test_reason_names_the_deciding_value() -> None:
    """The reason sentence quotes the value that decided the type."""
    assert "60 ms" in classify(Submission(60.0, gpu_count=1, max_latency_ms=60.0)).reason
    assert "250 TH/s" in classify(Submission(60.0, hashrate_ths=250.0)).reason
    assert "900 s" in classify(Submission(60.0, gpu_count=1, checkpoint_interval_s=900.0)).reason
    assert (
        TYPE_NAMES[TRAINING]
        in classify(Submission(60.0, workload_type=TYPE_NAMES[TRAINING], gpu_count=1)).reason
    )


INVALID_CASES = [
    (Submission(60.0, gpu_count=1, gpu_type="h100"), "gpu_type"),
    (Submission(60.0, gpu_count=1, data_residency="eu-west"), "data_residency"),
    (Submission(0.0, gpu_count=1), "estimated_duration_s"),
    (Submission(float("nan"), gpu_count=1), "estimated_duration_s"),
    (Submission("1h", gpu_count=1), "estimated_duration_s"),  # type: ignore[arg-type]
    (Submission(60.0, hashrate_ths=-1.0), "hashrate_ths"),
    (Submission(60.0, gpu_count=1, data_gb=float("inf")), "data_gb"),
    (Submission(60.0, gpu_count=1, max_latency_ms=0.0), "max_latency_ms"),
    (Submission(60.0, gpu_count=1, max_latency_ms=-5.0), "max_latency_ms"),
    (Submission(60.0, gpu_count=1, checkpoint_interval_s=-1.0), "checkpoint_interval_s"),
    (Submission(200.0, gpu_count=1, deadline_s=100.0), "deadline_s"),
    (Submission(60.0, gpu_count=-1), "gpu_count"),
    (Submission(60.0, gpu_count=1.5), "gpu_count"),  # type: ignore[arg-type]
    (Submission(60.0, gpu_count=True), "gpu_count"),
    (Submission(60.0, gpu_count=1, interruptible="yes"), "interruptible"),  # type: ignore[arg-type]
    (Submission(60.0, workload_type="inference", gpu_count=1), "workload_type"),
    # Neither GPUs nor hashrate: nothing to run on.
    (Submission(60.0), "gpu_count"),
    # Hashrate makes it mining, which takes no GPUs.
    (Submission(60.0, hashrate_ths=100.0, gpu_count=4), "gpu_count"),
    (Submission(60.0, hashrate_ths=100.0, gpu_type="h200"), "gpu_type"),
    (Submission(60.0, hashrate_ths=100.0, checkpoint_interval_s=60.0), "checkpoint_interval_s"),
    (Submission(60.0, hashrate_ths=100.0, max_latency_ms=50.0), "max_latency_ms"),
    # A realtime latency makes it realtime, which is never preempted and keeps no checkpoints.
    (Submission(60.0, gpu_count=1, max_latency_ms=50.0, interruptible=True), "interruptible"),
    (
        Submission(60.0, gpu_count=1, max_latency_ms=50.0, checkpoint_interval_s=30.0),
        "checkpoint_interval_s",
    ),
    # Only realtime runs uninterrupted; a short job without a realtime bound is batch.
    (Submission(60.0, gpu_count=1, interruptible=False), "interruptible"),
]


@pytest.mark.parametrize(("sub", "field"), INVALID_CASES)
def test_invalid_submissions_name_the_field(sub: Submission, field: str) -> None:
    """Each invalid submission has exactly one problem, on the expected field, and classify
    raises it."""
    problems = validate_submission(sub)
    assert [p.field for p in problems] == [field]
    with pytest.raises(SubmissionError) as caught:
        classify(sub)
    assert caught.value.field == field
    assert str(caught.value) == f"{field}: {caught.value.reason}"


def test_messages_list_the_known_values() -> None:
    """Unknown GPU types, regions and type names are answered with the known ones."""
    (gpu_error,) = validate_submission(Submission(60.0, gpu_count=1, gpu_type="h100"))
    assert all(type_id in gpu_error.reason for type_id in GPU_CATALOG)
    (region_error,) = validate_submission(Submission(60.0, gpu_count=1, data_residency="eu"))
    assert all(region in region_error.reason for region in REGIONS)
    (type_error,) = validate_submission(Submission(60.0, workload_type="x", gpu_count=1))
    assert all(name in type_error.reason for name in TYPE_NAMES)
    (deadline_error,) = validate_submission(Submission(200.0, gpu_count=1, deadline_s=100.0))
    assert "shorter than the estimated duration" in deadline_error.reason


EXPLICIT_CONFLICTS = [
    (TYPE_NAMES[REALTIME], {"gpu_count": 1, "interruptible": True}, "interruptible"),
    (
        TYPE_NAMES[REALTIME],
        {"gpu_count": 1, "checkpoint_interval_s": 60.0},
        "checkpoint_interval_s",
    ),
    (TYPE_NAMES[MINING], {"hashrate_ths": 100.0, "gpu_count": 4}, "gpu_count"),
    (TYPE_NAMES[MINING], {}, "hashrate_ths"),
    (TYPE_NAMES[MINING], {"hashrate_ths": 100.0, "interruptible": False}, "interruptible"),
    (TYPE_NAMES[TRAINING], {"gpu_count": 8, "hashrate_ths": 100.0}, "hashrate_ths"),
    (TYPE_NAMES[TRAINING], {"gpu_count": 8, "interruptible": False}, "interruptible"),
    (TYPE_NAMES[TRAINING], {"gpu_count": 0}, "gpu_count"),
    (TYPE_NAMES[BATCH], {"gpu_count": 1, "max_latency_ms": 50.0}, "max_latency_ms"),
]


@pytest.mark.parametrize(("name", "fields", "field"), EXPLICIT_CONFLICTS)
def test_explicit_type_must_agree_with_the_fields(
    name: str, fields: dict[str, object], field: str
) -> None:
    """An explicit type that the fields contradict is refused on the contradicting field,
    and the reason names the declared type."""
    sub = Submission(600.0, workload_type=name, **fields)  # type: ignore[arg-type]
    problems = validate_submission(sub)
    assert [p.field for p in problems] == [field]
    assert name in problems[0].reason


def test_all_problems_are_reported_at_once() -> None:
    """A submission with six problems gets six errors, one per field; classify raises the
    first of them."""
    sub = Submission(
        -1.0,
        workload_type=TYPE_NAMES[TRAINING],
        gpu_count=0,
        gpu_type="tpu",
        interruptible=False,
        data_residency="mars",
        data_gb=-2.0,
    )
    problems = validate_submission(sub)
    expected = {
        "estimated_duration_s",
        "gpu_type",
        "data_residency",
        "data_gb",
        "interruptible",
        "gpu_count",
    }
    assert sorted(p.field for p in problems) == sorted(expected)
    with pytest.raises(SubmissionError) as caught:
        classify(sub)
    assert str(caught.value) == str(problems[0])


def test_a_bad_deciding_field_does_not_cascade() -> None:
    """A negative hashrate (meant as mining) is one error, not also a missing-GPU error,
    because the type cannot be known from an invalid hashrate."""
    problems = validate_submission(Submission(60.0, hashrate_ths=-5.0))
    assert [p.field for p in problems] == ["hashrate_ths"]


def test_custom_gpu_types_can_be_allowed() -> None:
    """A scenario's own GPU ids are accepted when passed as the known types."""
    sub = Submission(60.0, gpu_count=1, gpu_type="mi300x")
    assert [p.field for p in validate_submission(sub)] == ["gpu_type"]
    allowed = (*GPU_CATALOG, "mi300x")
    assert validate_submission(sub, known_gpu_types=allowed) == []
    assert classify(sub, known_gpu_types=allowed).type_code == BATCH


def test_submission_error_is_a_value_error_that_pickles() -> None:
    """SubmissionError is a ValueError with field and reason that survive pickling."""
    error = SubmissionError("gpu_count", "must be >= 0, got -1")
    assert isinstance(error, ValueError)
    assert str(error) == "gpu_count: must be >= 0, got -1"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.reason, str(copy)) == (error.field, error.reason, str(error))


@st.composite
def submissions(draw: st.DrawFn) -> Submission:
    """Random submissions, mostly plausible, with conflicts mixed in."""
    on_asic = draw(st.booleans())
    duration_s = draw(st.floats(1.0, 48 * 3600.0))
    optional_positive = st.none() | st.floats(1.0, 100_000.0)
    return Submission(
        duration_s,
        workload_type=draw(st.none() | st.none() | st.sampled_from(TYPE_NAMES)),
        gpu_count=0 if on_asic else draw(st.integers(0, 16)),
        gpu_type=None if on_asic else draw(st.none() | st.sampled_from(tuple(GPU_CATALOG))),
        hashrate_ths=draw(st.floats(0.001, 1e6)) if on_asic else 0.0,
        max_latency_ms=draw(st.none() | st.floats(1.0, 2 * BOUND_MS) | st.floats(1.0, 1e5)),
        interruptible=draw(st.none() | st.booleans()),
        deadline_s=draw(st.none() | st.floats(duration_s, 4 * duration_s)),
        checkpoint_interval_s=draw(st.none() | st.none() | optional_positive),
        data_residency=draw(st.none() | st.sampled_from(REGIONS)),
        data_gb=draw(st.floats(0.0, 1e4)),
    )


@settings(max_examples=300, deadline=None)
@given(sub=submissions())
def test_every_valid_submission_gets_exactly_one_consistent_type(sub: Submission) -> None:
    """A valid submission classifies into one type whose PRD spec agrees with its fields:
    mining iff hashrate > 0, a given interruptible flag matches the type (so realtime is never
    interruptible=True), checkpoints only where the type keeps them, a realtime latency only
    on realtime, an explicit type kept, and without one the documented rule order."""
    assume(not validate_submission(sub))
    result = classify(sub)
    assert result.type_code in range(len(WORKLOAD_SPECS))
    spec = WORKLOAD_SPECS[result.type_code]
    assert result.type_name == spec.name
    assert spec.on_asic == (sub.hashrate_ths > 0)
    assert spec.on_asic == (sub.gpu_count == 0)
    if sub.interruptible is not None:
        assert spec.interruptible == sub.interruptible
    if result.type_code == REALTIME:
        assert sub.interruptible is not True
    if sub.checkpoint_interval_s is not None:
        assert spec.checkpoints
    if sub.max_latency_ms is not None and sub.max_latency_ms <= BOUND_MS:
        assert result.type_code == REALTIME
    if sub.workload_type is not None:
        assert result.type_name == sub.workload_type
    elif not spec.on_asic and result.type_code != REALTIME:
        is_training = sub.checkpoint_interval_s is not None or (
            sub.estimated_duration_s >= FOUR_HOURS_S
        )
        assert result.type_code == (TRAINING if is_training else BATCH)


@settings(max_examples=200, deadline=None)
@given(sub=submissions())
def test_classify_raises_exactly_when_validation_finds_problems(sub: Submission) -> None:
    """classify succeeds iff validate_submission is empty, and otherwise raises its first
    problem."""
    problems = validate_submission(sub)
    if problems:
        with pytest.raises(SubmissionError) as caught:
            classify(sub)
        assert (caught.value.field, caught.value.reason) == (
            problems[0].field,
            problems[0].reason,
        )
    else:
        assert classify(sub).type_code in range(len(WORKLOAD_SPECS))
