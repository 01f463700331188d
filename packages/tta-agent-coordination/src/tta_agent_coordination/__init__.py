"""tta-agent-coordination."""
