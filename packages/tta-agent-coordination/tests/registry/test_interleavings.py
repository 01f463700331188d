import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_agent_coordination.agents import AgentCapability
from tta_agent_coordination.errors import AgentAlreadyRegisteredError, StaleRegistrationError
from tta_agent_coordination.models import AgentId
from tta_agent_coordination.redis.agent_registry import RedisAgentRegistry
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
        holder: int | None = None  # the model: who holds A in Redis
        believes: set[int] = set()  # the owners whose registry still holds a lease of A
        for op, i in ops:
            registry = owners[i]
            try:
                if op in ("register", "takeover"):
                    await registry.register_id(A, name=f"o{i}", takeover=op == "takeover")
                    assert op == "takeover" or holder is None
                    holder = i
                    believes.add(i)
                elif op in ("heartbeat", "status"):
                    if op == "heartbeat":
                        await registry.heartbeat(A)
                    else:
                        await registry.set_status(A, f"s{i}")
                    assert holder == i
                elif op == "deregister":
                    removed = await registry.deregister(A)
                    # True whenever this owner held a lease, even if the record is gone
                    assert removed == (i in believes)
                    assert holder in (None, i) or i not in believes
                    believes.discard(i)
                    if holder == i:
                        holder = None
                else:
                    await registry.evict(A)
                    holder = None
                    believes.discard(i)
            except AgentAlreadyRegisteredError:
                assert holder is not None
                assert op == "register"
            except StaleRegistrationError as exc:
                reason = exc.reason
                assert holder != i
                if i not in believes:
                    assert reason == "not_registered"
                elif holder is None:
                    assert reason == "deregistered"
                else:
                    assert reason == "replaced"
                believes.discard(i)  # a stale owner lets go of its lease
            assert owners[i].held() == ([A] if i in believes else [])
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
