"""``/metrics``: the server's counters in the Prometheus text format, with ``prometheus-client``.

Rules:
1. Nothing is counted here. The core and the edges keep plain integers
   (``ServerCore.messages_relayed``, :class:`~relaychat.server.stats.EdgeStats`); the
   :class:`RelaychatCollector` reads them when Prometheus scrapes, so the hot path never calls
   into the Prometheus library.
2. Each server has its own registry (tests run several servers in one process); the process
   collector adds memory, CPU and open files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from relaychat.server.connection import Connection
from relaychat.server.core import ServerCore
from relaychat.server.plain import PlainConnection
from relaychat.server.stats import EdgeStats
from relaychat.web.websocket import WebSocketConnection

__all__ = ["CONTENT_TYPE_LATEST", "TRANSPORTS", "Metrics", "RelaychatCollector", "transport_of"]

#: The ``transport`` label's values.
TRANSPORTS = ("tcp", "tls", "plain", "websocket")


def transport_of(conn: Connection) -> str:
    """Which transport ``conn`` came over (wss counts as websocket)."""
    if isinstance(conn, WebSocketConnection):
        return "websocket"
    if isinstance(conn, PlainConnection):
        return "plain"
    transport = conn.transport
    if transport is not None and transport.get_extra_info("ssl_object") is not None:
        return "tls"
    return "tcp"


class RelaychatCollector(Collector):
    """Reads the server's plain counters at scrape time (rule 1).

    Args:
        core: the server core (users, channels, messages relayed).
        connections: every open client connection.
        stats: the edges' counters.
        extra: more counters by name (e.g. webhook posts), read as they are at scrape time.
    """

    def __init__(
        self,
        core: ServerCore,
        connections: set[Connection],
        stats: EdgeStats,
        extra: Iterable[tuple[str, str, dict[str, int]]] = (),
    ) -> None:
        self.core = core
        self.connections = connections
        self.stats = stats
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        core, stats = self.core, self.stats
        by_transport = dict.fromkeys(TRANSPORTS, 0)
        for conn in list(self.connections):
            by_transport[transport_of(conn)] += 1
        conns = GaugeMetricFamily(
            "relaychat_connections", "Open client connections, by transport", labels=["transport"]
        )
        for name, count in by_transport.items():
            conns.add_metric([name], count)
        yield conns
        yield GaugeMetricFamily(
            "relaychat_registered_users", "Users that completed registration", core.registered_count
        )
        yield GaugeMetricFamily("relaychat_channels", "Channels that exist", len(core.channels))
        yield CounterMetricFamily(
            "relaychat_messages_relayed",
            "PRIVMSG, NOTICE and TAGMSG relayed, once per target",
            core.messages_relayed,
        )
        yield CounterMetricFamily(
            "relaychat_bytes_out", "Bytes written to clients, all transports", stats.bytes_out
        )
        yield CounterMetricFamily(
            "relaychat_sendq_drops", "Clients dropped for SendQ exceeded", stats.sendq_drops
        )
        yield CounterMetricFamily(
            "relaychat_flood_throttles",
            "Times a client's input started being delayed by flood control",
            stats.flood_throttles,
        )
        hist = stats.commit_latency
        yield HistogramMetricFamily(
            "relaychat_history_commit_seconds",
            "History group commit latency, from hand-over to the writer thread until done",
            buckets=hist.cumulative(),
            sum_value=hist.sum,
        )
        yield GaugeMetricFamily(
            "relaychat_event_loop_lag_seconds",
            "How late the event loop last woke a timer",
            stats.loop_lag,
        )
        yield GaugeMetricFamily(
            "relaychat_event_loop_lag_max_seconds",
            "The largest event loop lag seen since start",
            stats.loop_lag_max,
        )
        for name, text, values in self.extra:
            yield CounterMetricFamily(name, text, sum(values.values()))


class Metrics:
    """A server's registry: its collector and the process collector (rule 2)."""

    def __init__(self, collector: RelaychatCollector) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.registry.register(ProcessCollector(registry=None))

    def render(self) -> bytes:
        """The exposition text (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)
