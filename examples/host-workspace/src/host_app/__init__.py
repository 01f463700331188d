"""An example host application built on tta-agent-coordination."""

from host_app.agents import CALCULATOR, make_worker

__all__ = ["CALCULATOR", "make_worker"]
