"""Global options after the command: ``tta-coord queues --redis-url URL`` works too.

Click only parses a group's options before the subcommand's name, so
``tta-coord queues --redis-url URL`` would fail with "No such option" although people
type it that way all the time. :class:`GlobalOptionsGroup` moves such options to the
root before the subcommand parses its arguments. A command that declares an option of
the same name (``demo --redis-url``, ``store restore --redis-url``) keeps it: its own
option wins, exactly as before.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

__all__ = ["GlobalOptionsGroup"]


def _option_strings(command: Any) -> set[str]:
    return {s for p in command.params for s in (*p.opts, *p.secondary_opts)}


class GlobalOptionsGroup(TyperGroup):
    """The root group of ``tta-coord``: accepts its options after the subcommand too."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """Resolve the subcommand, then take the root's options out of its arguments."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is None:
            return name, command, rest
        return name, command, self._take_global_options(ctx, self._leaf(ctx, command, rest), rest)

    @staticmethod
    def _leaf(ctx: Any, command: Any, rest: list[str]) -> Any:
        """The command that will parse ``rest`` (``dlq list``: the ``list`` command)."""
        leaf = command
        for arg in rest:
            if arg.startswith("-") or not hasattr(leaf, "get_command"):
                break
            sub = leaf.get_command(ctx, arg)
            if sub is None:
                break
            leaf = sub
        return leaf

    def _take_global_options(self, ctx: Any, leaf: Any, rest: list[str]) -> list[str]:
        own = _option_strings(leaf)
        movable = {
            opt: param
            for param in self.params
            if param.name != "version" and getattr(param, "expose_value", True)
            for opt in (*param.opts, *param.secondary_opts)
            if opt.startswith("--") and opt not in own
        }
        kept: list[str] = []
        i = 0
        while i < len(rest):
            arg = rest[i]
            if arg == "--":  # everything after it is an argument
                kept.extend(rest[i:])
                break
            opt, has_value, inline = arg.partition("=")
            param = movable.get(opt)
            if param is None:
                kept.append(arg)
                i += 1
                continue
            if getattr(param, "is_flag", False):
                ctx.params[param.name] = opt in param.opts
                i += 1
                continue
            if not has_value and i + 1 >= len(rest):
                ctx.fail(f"Option '{opt}' requires an argument.")
            if has_value:
                raw = inline
            else:
                raw = rest[i + 1]
                i += 1
            # The root's value options are all plain strings, checked later by the settings.
            ctx.params[param.name] = raw
            i += 1
        return kept
