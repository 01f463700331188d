import pytest

from tta_agent_coordination import AgentId, AgentWorker, MessageContext
from tta_agent_coordination.errors import ConfigurationError
from tta_agent_coordination.settings import CoordinationSettings


async def test_settings_build_the_components_they_configure(coordination_redis, key_prefix):
    settings = CoordinationSettings(
        key_prefix=key_prefix,
        heartbeat_ttl_s=6,
        concurrency=3,
        visibility_timeout_s=12,
        grace_period_s=1,
    )
    coord = settings.build_coordinator(coordination_redis, queue_size=5)
    registry = settings.build_registry(coordination_redis, coordinator=coord)
    assert coord.keys.prefix == key_prefix
    assert coord.config.queue_size == 5
    assert registry.keys.prefix == key_prefix
    assert registry.heartbeat_ttl_s == 6
    assert settings.worker_options() == {
        "concurrency": 3,
        "visibility_timeout": 12,
        "grace_period": 1,
        "takeover": False,
    }

    worker = AgentWorker(coord, registry, AgentId("svc"), **settings.worker_options())
    got: list[int] = []

    @worker.on_request()
    async def answer(ctx: MessageContext[dict[str, int]]) -> int:
        got.append(ctx.payload["n"])
        return ctx.payload["n"] + 1

    async with worker:
        reply = await coord.request(AgentId("caller"), AgentId("svc"), {"n": 1}, timeout=5)
    assert reply.payload == {"result": 2}
    assert got == [1]
    await registry.aclose()
    await coord.aclose()


async def test_wait_replicas_from_the_environment_reach_the_coordinator(
    coordination_redis, key_prefix, monkeypatch
):
    monkeypatch.setenv("TTA_COORD_WAIT_REPLICAS", "1")
    monkeypatch.setenv("TTA_COORD_WAIT_TIMEOUT_S", "0.25")
    coord = CoordinationSettings(key_prefix=key_prefix).build_coordinator(coordination_redis)
    assert (coord.config.wait_replicas, coord.config.wait_timeout_s) == (1, 0.25)
    # An override wins over the settings.
    other = CoordinationSettings(key_prefix=key_prefix).build_coordinator(
        coordination_redis, wait_replicas=0
    )
    assert other.config.wait_replicas == 0
    await coord.aclose()
    await other.aclose()


def test_wait_settings_out_of_range_are_named():
    with pytest.raises(ConfigurationError) as caught:
        CoordinationSettings(wait_replicas=-1, wait_timeout_s=0)
    message = str(caught.value)
    assert "TTA_COORD_WAIT_REPLICAS" in message
    assert "must be >= 0, got -1" in message
    assert "TTA_COORD_WAIT_TIMEOUT_S" in message
    assert "must be > 0, got 0" in message
