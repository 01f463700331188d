"""The library's pytest plugin: FakeRedis-backed fixtures, no Redis server needed."""

pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]
