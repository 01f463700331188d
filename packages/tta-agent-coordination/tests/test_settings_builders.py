from tta_agent_coordination import AgentId, AgentWorker, MessageContext
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
