"""RuntimeFlags: the seed's flag names as environment variables, and a stable A/B split."""

import pytest
from pydantic import ValidationError

from tta_agent_coordination.plans import RuntimeFlags, session_bucket


def test_defaults_keep_the_enhanced_runtime_off():
    flags = RuntimeFlags()
    assert not flags.enhanced
    assert not flags.enhanced_for("anyone")
    assert flags.planning_threshold == "multi_step"


def test_the_seeds_flag_names_work_as_environment_variables(monkeypatch):
    monkeypatch.setenv("ENHANCED_RUNTIME", "true")
    monkeypatch.setenv("CONVERSATION_MODE", "1")
    monkeypatch.setenv("PLANNING_THRESHOLD", "always")
    monkeypatch.setenv("REFLECTION_ENABLED", "yes")
    flags = RuntimeFlags()
    assert flags.enhanced
    assert flags.conversation
    assert flags.reflection
    assert flags.planning_threshold == "always"


def test_the_prefixed_names_work_too(monkeypatch):
    monkeypatch.setenv("TTA_COORD_RUNTIME_ENHANCED_FRACTION", "0.25")
    monkeypatch.setenv("TTA_COORD_RUNTIME_MAX_STEPS", "7")
    flags = RuntimeFlags()
    assert flags.enhanced_fraction == 0.25
    assert flags.max_steps == 7


@pytest.mark.parametrize(
    "bad",
    [{"planning_threshold": "sometimes"}, {"enhanced_fraction": 1.5}, {"max_steps": 0}],
)
def test_bad_values_are_refused(bad):
    with pytest.raises(ValidationError):
        RuntimeFlags(**bad)


def test_the_ab_split_is_stable_per_session_and_close_to_its_fraction():
    flags = RuntimeFlags(enhanced=True, enhanced_fraction=0.3)
    sessions = [f"user-{i}" for i in range(4000)]
    first = [flags.enhanced_for(s) for s in sessions]
    assert first == [flags.enhanced_for(s) for s in sessions]
    share = sum(first) / len(first)
    assert 0.26 < share < 0.34
    # A session keeps its side when the rollout grows (buckets are fixed).
    wider = RuntimeFlags(enhanced=True, enhanced_fraction=0.6)
    assert all(wider.enhanced_for(s) for s, on in zip(sessions, first, strict=True) if on)


def test_the_bucket_is_the_same_in_every_process():
    import hashlib

    digest = hashlib.sha256(b"alice").digest()
    assert session_bucket("alice") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0 <= session_bucket("") < 1
