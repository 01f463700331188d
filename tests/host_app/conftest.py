pytest_plugins = ["tta_agent_coordination.testing.pytest_plugin"]
