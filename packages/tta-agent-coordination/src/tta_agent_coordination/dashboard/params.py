"""Reading a page's query parameters, with a clear 400 for a bad value."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["query_int"]


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """The whole-number query parameter ``name`` within ``low..high`` (``default`` if absent).

    Raises:
        HTTPException: 400 when it is not a whole number or out of range.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be within {low}..{high}, got {value}")
    return value
