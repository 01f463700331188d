import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_agent_coordination.errors import AgentAlreadyRegisteredError, StaleRegistrationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.registry import RedisAgentRegistry
from tta_agent_coordination.registry_models import AgentCapability
from tta_agent_coordination.testing import fake_redis

A = AgentId("worker", "a")

operations = st.lists(
    st.tuples(
        st.sampled_from(["register", "takeover", "heartbeat", "status", "deregister", "evict"]),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_random_operations_of_three_owners_keep_one_holder(ops):
    async def run() -> None:
        redis = fake_redis()
        owners = [RedisAgentRegistry(redis, key_prefix="h") for _ in range(3)]
        holder: int | None = None  # the model: who holds A
        for op, i in ops:
            registry = owners[i]
            try:
                if op in ("register", "takeover"):
                    await registry.register_id(A, name=f"o{i}", takeover=op == "takeover")
                    assert op == "takeover" or holder is None
                    holder = i
                elif op == "heartbeat":
                    await registry.heartbeat(A)
                    assert holder == i
                elif op == "status":
                    await registry.set_status(A, f"s{i}")
                    assert holder == i
                elif op == "deregister":
                    removed = await registry.deregister(A)
                    assert removed == (holder == i) or holder is None
                    if holder == i:
                        holder = None
                else:
                    await registry.evict(A)
                    holder = None
            except AgentAlreadyRegisteredError:
                assert holder is not None
                assert op == "register"
            except StaleRegistrationError:
                assert holder != i
            record = await owners[0].get(A)
            if holder is None:
                assert record is None
            else:
                assert record is not None
                assert record.alive
                assert record.name == f"o{holder}"
            assert [r.agent_id for r in await owners[1].list_registered()] == (
                [] if holder is None else [A]
            )
        await redis.aclose()

    asyncio.run(run())


@given(
    name=st.text(min_size=1, max_size=20),
    version=st.text(min_size=1, max_size=10),
)
def test_capability_validation_never_lets_unsafe_names_through(name, version):
    try:
        capability = AgentCapability(name=name, version=version)
    except ValueError:
        return
    assert all(ch.isascii() and (ch.isalnum() or ch in "_.-") for ch in capability.name)
    assert not any(ch in capability.name for ch in "{}*?[] :")
