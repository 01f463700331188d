"""``python -m tta_agent_coordination.cli``: the same as the ``tta-coord`` command."""

from tta_agent_coordination.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
