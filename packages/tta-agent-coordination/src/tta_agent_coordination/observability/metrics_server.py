"""Serving a ``CollectorRegistry`` over HTTP for Prometheus to scrape (``/metrics``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, start_http_server

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["HasRegistry", "MetricsServer", "serve_metrics"]


@runtime_checkable
class HasRegistry(Protocol):
    """An exporter that keeps its series in a registry (``PrometheusMetrics`` is one)."""

    @property
    def registry(self) -> CollectorRegistry:
        """The registry holding its series."""
        ...


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP endpoint (a daemon thread); :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when started with port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(
    port: int,
    *,
    registry: HasRegistry | CollectorRegistry | None = None,
    addr: str = "127.0.0.1",
) -> MetricsServer:
    """Serve ``registry`` in the Prometheus text format on ``http://addr:port/``.

    Args:
        port: the TCP port; 0 picks a free one (see :attr:`MetricsServer.port`).
        registry: a ``PrometheusMetrics`` (anything with a ``registry``) or a
            ``CollectorRegistry``;
            ``prometheus_client.REGISTRY`` (process-wide) by default.
        addr: the address to bind; loopback by default, ``0.0.0.0`` to be scraped from
            other hosts.
    """
    if isinstance(registry, HasRegistry):
        target: CollectorRegistry = registry.registry
    elif registry is None:
        from prometheus_client import REGISTRY

        target = REGISTRY
    else:
        target = registry
    server, thread = start_http_server(port, addr=addr, registry=target)
    return MetricsServer(server, thread)
