"""RetryPolicy: which errors it retries, its limits, its backoff, when it stops, its logs.

Sleeps are injected where the exact waits are asserted (nothing really waits) and jitter
is set to 0 there, so each test pins one number the documentation (``docs/resilience.md``,
"Retries") promises.
"""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
import redis.exceptions as redis_errors
from structlog.testing import capture_logs

from tta_agent_coordination.errors import CircuitBreakerOpenError, ConfigurationError
from tta_agent_coordination.resilience import RetryPolicy, is_transient


class Failing:
    """Raises ``error`` on the first ``failures`` calls, then returns "done"."""

    def __init__(self, failures: int, error: type[BaseException] = OSError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "done"


class Flaky:
    """Fails with ``errors`` in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fast_policy(**kw) -> RetryPolicy:
    kw.setdefault("initial_s", 0.001)
    kw.setdefault("max_s", 0.002)
    return RetryPolicy(**kw)


# --- which errors are retried ---------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ConnectionError("reset"),
        redis_errors.TimeoutError("slow"),
        redis_errors.BusyLoadingError("loading"),
        redis_errors.ClusterDownError("CLUSTERDOWN"),
        redis_errors.TryAgainError("TRYAGAIN"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
async def test_retries_transient_errors(error: BaseException) -> None:
    fn = Flaky(error, error)
    assert await fast_policy().call(fn) == "done"
    assert fn.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ResponseError("WRONGTYPE"),
        CircuitBreakerOpenError("redis"),
        redis_errors.AuthenticationError("bad password"),
        ValueError("bad"),
        RuntimeError("bug"),
    ],
)
async def test_does_not_retry_other_errors(error: BaseException) -> None:
    fn = Flaky(error)
    with pytest.raises(type(error)):
        await fast_policy().call(fn)
    assert fn.calls == 1
    assert not is_transient(error)


def test_is_transient_excludes_auth_errors_that_subclass_connection_error() -> None:
    assert is_transient(redis_errors.ConnectionError())
    assert is_transient(OSError())
    assert not is_transient(redis_errors.AuthenticationError())
    assert not is_transient(redis_errors.AuthorizationError())
    assert not is_transient(ValueError())


async def test_breaker_open_is_never_retried_even_if_listed() -> None:
    fn = Flaky(CircuitBreakerOpenError("x"))
    with pytest.raises(CircuitBreakerOpenError):
        await fast_policy(retry_on=(Exception,)).call(fn)
    assert fn.calls == 1


async def test_a_non_retryable_error_after_a_retry_ends_the_retries() -> None:
    errors: list[BaseException] = [OSError("first"), ValueError("second"), OSError("third")]
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        raise errors[calls - 1]

    with capture_logs() as logs, pytest.raises(ValueError, match="second"):
        await RetryPolicy(attempts=5, sleep=Sleeps()).call(fn, operation="op")
    assert calls == 2
    assert [e["attempts"] for e in logs if e["event"] == "retry_gave_up"] == [2]


async def test_an_error_raised_while_the_task_is_cancelled_is_not_retried() -> None:
    fn = Failing(5, redis_errors.ConnectionError)
    policy = RetryPolicy(attempts=5, sleep=Sleeps())
    outcome: list[object] = []
    started = asyncio.Event()

    async def victim() -> None:
        try:
            started.set()
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            outcome.append(policy.should_retry(redis_errors.ConnectionError()))
            try:
                await policy.call(fn)
            except redis_errors.ConnectionError as exc:
                outcome.append(exc)
            raise

    task = asyncio.create_task(victim())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome[0] is False
    assert isinstance(outcome[1], redis_errors.ConnectionError)
    assert fn.calls == 1
    assert policy.should_retry(redis_errors.ConnectionError())  # not cancelled here


# --- settings: defaults, limits, validation -------------------------------------------


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 3
    assert policy.deadline_s == 5.0
    assert policy.initial_s == 0.05
    assert policy.max_s == 1.0
    assert policy.exp_base == 2.0
    assert policy.jitter_s == 0.05  # defaults to initial_s
    assert policy.name == "retry"
    assert policy.retry_on == (
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        redis_errors.BusyLoadingError,
        redis_errors.ClusterDownError,
        redis_errors.TryAgainError,
        OSError,
        asyncio.TimeoutError,
    )
    assert repr(policy) == (
        "RetryPolicy(name='retry', attempts=3, deadline_s=5.0, initial_s=0.05, max_s=1.0)"
    )


def test_explicit_settings_are_kept() -> None:
    policy = RetryPolicy(
        attempts=7,
        deadline_s=None,
        initial_s=0.2,
        max_s=3.0,
        exp_base=1.5,
        jitter_s=0.0,
        retry_on=(KeyError,),
        name="p",
    )
    assert (policy.attempts, policy.deadline_s, policy.initial_s, policy.max_s) == (
        7,
        None,
        0.2,
        3.0,
    )
    assert (policy.exp_base, policy.jitter_s, policy.retry_on, policy.name) == (
        1.5,
        0.0,
        (KeyError,),
        "p",
    )
    assert repr(policy) == (
        "RetryPolicy(name='p', attempts=7, deadline_s=None, initial_s=0.2, max_s=3.0)"
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"attempts": 1},
        {"attempts": None, "deadline_s": 0.001},
        {"deadline_s": None},
        {"initial_s": 0.0, "max_s": 0.0},
        {"initial_s": 0.5, "max_s": 0.5},
        {"exp_base": 1.0},
        {"jitter_s": 0.0},
    ],
)
def test_limits_are_inclusive(settings: dict[str, float | None]) -> None:
    RetryPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"attempts": None, "deadline_s": None},
            "set attempts, deadline_s or both (otherwise it retries forever)",
        ),
        ({"attempts": 0}, "attempts must be >= 1, got 0"),
        ({"deadline_s": 0}, "deadline_s must be > 0, got 0"),
        ({"deadline_s": -1.0}, "deadline_s must be > 0, got -1.0"),
        ({"initial_s": -0.1}, "need 0 <= initial_s <= max_s, got -0.1, 1.0"),
        ({"initial_s": 2.0, "max_s": 1.0}, "need 0 <= initial_s <= max_s, got 2.0, 1.0"),
        ({"exp_base": 0.5}, "exp_base must be >= 1, got 0.5"),
        ({"jitter_s": -0.01}, "jitter_s must be >= 0, got -0.01"),
    ],
)
def test_each_invalid_setting_is_named(settings: dict[str, float | None], problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RetryPolicy(**settings)  # type: ignore[arg-type]
    assert str(caught.value) == f"invalid retry policy: {problem}"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RetryPolicy(attempts=0, deadline_s=-1, initial_s=-1, exp_base=0, jitter_s=-1)
    assert str(caught.value) == (
        "invalid retry policy: attempts must be >= 1, got 0; deadline_s must be > 0, got -1; "
        "need 0 <= initial_s <= max_s, got -1, 1.0; exp_base must be >= 1, got 0; "
        "jitter_s must be >= 0, got -1"
    )


# --- backoff --------------------------------------------------------------------------


async def test_waits_grow_exponentially_up_to_the_cap() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(
        attempts=7, deadline_s=None, initial_s=0.1, max_s=1.0, jitter_s=0, sleep=sleeps
    )
    fn = Failing(6)
    assert await policy.call(fn) == "done"
    assert fn.calls == 7
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


async def test_exp_base_sets_the_growth() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(
        attempts=4,
        deadline_s=None,
        initial_s=0.01,
        max_s=10.0,
        exp_base=3,
        jitter_s=0,
        sleep=sleeps,
    )
    assert await policy.call(Failing(3)) == "done"
    assert sleeps == pytest.approx([0.01, 0.03, 0.09])


async def test_a_huge_backoff_is_capped_instead_of_overflowing() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(
        attempts=4,
        deadline_s=None,
        initial_s=1.0,
        max_s=2.0,
        exp_base=1e300,
        jitter_s=0,
        sleep=sleeps,
    )
    assert await policy.call(Failing(3)) == "done"
    assert sleeps == [1.0, 2.0, 2.0]  # 1e300 ** 2 overflows a float


async def test_jitter_adds_at_most_jitter_s_to_each_exponential_wait() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(
        attempts=6, deadline_s=None, initial_s=0.1, max_s=1.0, jitter_s=0.05, sleep=sleeps
    )
    with pytest.raises(OSError, match="gone"):
        await policy.call(Flaky(*[OSError("gone") for _ in range(6)]))
    assert len(sleeps) == 5
    for n, slept in enumerate(sleeps):
        base = min(0.1 * 2**n, 1.0)
        assert base <= slept <= min(base + 0.05, 1.0)


async def test_jitter_adds_up_to_jitter_s_and_never_exceeds_the_cap() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(
        attempts=201, deadline_s=None, initial_s=0.0, max_s=1.0, jitter_s=0.5, sleep=sleeps
    )
    assert await policy.call(Failing(200)) == "done"
    assert len(sleeps) == 200
    assert all(0.0 <= s <= 0.5 for s in sleeps)
    assert max(sleeps) > 0.4  # the whole range is used, not a constant
    assert min(sleeps) < 0.1
    capped = Sleeps()
    policy = RetryPolicy(
        attempts=51, deadline_s=None, initial_s=0.9, max_s=1.0, jitter_s=5.0, sleep=capped
    )
    await policy.call(Failing(50))
    assert all(0.9 <= s <= 1.0 for s in capped)
    assert capped.count(1.0) > 25


# --- when it stops --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "deadline_s"),
    [(3, 100.0), (4, 5.0)],  # a long deadline, and the default one
)
async def test_attempts_bound_the_calls_and_the_last_error_is_reraised(
    attempts: int, deadline_s: float
) -> None:
    fn = Failing(10, redis_errors.ConnectionError)
    policy = RetryPolicy(
        attempts=attempts, deadline_s=deadline_s, initial_s=0, jitter_s=0, sleep=Sleeps()
    )
    with pytest.raises(redis_errors.ConnectionError, match=f"failure {attempts}$"):
        await policy.call(fn)
    assert fn.calls == attempts


async def test_the_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    # No real time passes (the sleep is injected): only the upcoming wait counts, and a
    # 1 s wait would end after the 0.5 s deadline, so the first failure is the last.
    for attempts in (5, None):
        fn = Failing(10)
        sleeps = Sleeps()
        policy = RetryPolicy(
            attempts=attempts, deadline_s=0.5, initial_s=1.0, max_s=1.0, jitter_s=0, sleep=sleeps
        )
        with pytest.raises(OSError, match="failure 1"):
            await policy.call(fn)
        assert fn.calls == 1
        assert sleeps == []


async def test_a_wait_that_ends_before_the_deadline_is_taken() -> None:
    fn = Failing(2)
    sleeps = Sleeps()
    policy = RetryPolicy(
        attempts=None, deadline_s=1.5, initial_s=1.0, max_s=1.0, jitter_s=0, sleep=sleeps
    )
    assert await policy.call(fn) == "done"
    assert sleeps == [1.0, 1.0]


async def test_the_deadline_bounds_the_real_time_spent() -> None:
    fn = Flaky(*[redis_errors.ConnectionError() for _ in range(1000)])
    policy = RetryPolicy(attempts=None, deadline_s=0.3, initial_s=0.05, max_s=0.05, jitter_s=0)
    start = time.monotonic()
    with pytest.raises(redis_errors.ConnectionError):
        await policy.call(fn)
    elapsed = time.monotonic() - start
    assert elapsed < 0.3 + 0.05
    assert 3 <= fn.calls <= 7


# --- logs -----------------------------------------------------------------------------


async def test_one_attempt_means_no_retry_and_no_give_up_log() -> None:
    fn = Failing(5)
    with capture_logs() as logs, pytest.raises(OSError, match="failure 1"):
        await RetryPolicy(attempts=1, sleep=Sleeps()).call(fn)
    assert fn.calls == 1
    assert logs == []


async def test_success_on_the_first_attempt_calls_once_and_logs_nothing() -> None:
    fn = Failing(0)
    with capture_logs() as logs:
        assert await RetryPolicy(sleep=Sleeps()).call(fn) == "done"
    assert fn.calls == 1
    assert logs == []


async def test_each_retry_and_the_give_up_are_logged_with_the_exact_fields() -> None:
    with capture_logs() as logs, pytest.raises(OSError, match="failure 3"):
        await RetryPolicy(
            attempts=3, initial_s=0.123456, max_s=1.0, jitter_s=0, name="pol", sleep=Sleeps()
        ).call(Failing(5), operation="fetch")
    assert logs == [
        {
            "event": "retrying",
            "log_level": "warning",
            "policy": "pol",
            "operation": "fetch",
            "attempt": 1,
            "sleep_s": 0.1235,
            "error": "OSError('failure 1')",
        },
        {
            "event": "retrying",
            "log_level": "warning",
            "policy": "pol",
            "operation": "fetch",
            "attempt": 2,
            "sleep_s": 0.2469,
            "error": "OSError('failure 2')",
        },
        {
            "event": "retry_gave_up",
            "log_level": "warning",
            "policy": "pol",
            "operation": "fetch",
            "attempts": 3,
            "error": "OSError('failure 3')",
        },
    ]


async def test_the_default_operation_name_is_call() -> None:
    with capture_logs() as logs, pytest.raises(OSError, match="failure 2"):
        await RetryPolicy(attempts=2, sleep=Sleeps()).call(Failing(5))
    assert {e["operation"] for e in logs} == {"call"}


# --- wrap -----------------------------------------------------------------------------


async def test_wrap_preserves_signature_and_retries() -> None:
    calls = 0

    async def fetch(key: str, *, default: int = 0) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis_errors.ConnectionError
        return f"{key}:{default}"

    wrapped = fast_policy().wrap(fetch)
    assert wrapped.__name__ == "fetch"
    assert await wrapped("k", default=2) == "k:2"
    assert calls == 2


async def test_wrap_names_the_operation_after_the_function_or_the_argument() -> None:
    async def load(fail: list[int]) -> str:
        if fail:
            fail.pop()
            raise OSError("down")
        return "loaded"

    policy = RetryPolicy(attempts=2, sleep=Sleeps())
    with capture_logs() as logs:
        assert await policy.wrap(load)([1]) == "loaded"
        assert await policy.wrap(load, operation="explicit")(fail=[1]) == "loaded"
    assert [e["operation"] for e in logs] == [load.__qualname__, "explicit"]
    assert load.__qualname__.endswith("<locals>.load")


async def test_wrap_names_a_callable_without_qualname_by_its_repr() -> None:
    async def load(fail: list[int]) -> str:
        if fail:
            fail.pop()
            raise OSError("down")
        return "loaded"

    bound = functools.partial(load)
    assert not hasattr(bound, "__qualname__")
    with capture_logs() as logs:
        assert await RetryPolicy(attempts=2, sleep=Sleeps()).wrap(bound)([1]) == "loaded"
    assert [e["operation"] for e in logs] == [repr(bound)]


async def test_the_deadline_counts_from_the_first_attempt_even_a_slow_one() -> None:
    """A first attempt that took longer than the deadline is not followed by another.

    Issue 23 item 6: a send that hung for the whole socket timeout (10 s) during a Redis
    freeze was retried, and hung again, because the deadline started after the first
    failure instead of before the first attempt.
    """
    calls = 0

    async def slow_then_fail() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.15)
        raise redis_errors.TimeoutError("Timeout reading from socket")

    policy = RetryPolicy(attempts=3, deadline_s=0.1, initial_s=0.001, max_s=0.001, jitter_s=0)
    start = time.monotonic()
    with pytest.raises(redis_errors.TimeoutError):
        await policy.call(slow_then_fail)
    assert calls == 1
    assert time.monotonic() - start < 0.25
