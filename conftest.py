"""Workspace-wide pytest set-up: the FakeRedis / real Redis fixtures of the core package."""

pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]
