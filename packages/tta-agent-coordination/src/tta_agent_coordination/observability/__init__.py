"""Metrics and structured logging helpers."""

from .logging import get_logger
from .metrics import InMemoryMessageMetrics, MessageMetrics, NoOpMessageMetrics

__all__ = ["InMemoryMessageMetrics", "MessageMetrics", "NoOpMessageMetrics", "get_logger"]
