"""Metric names that the alert rules and the dashboard may reference, by the process that exports them.

The session service's and the ingest worker's names are read from their real registries, so a renamed
metric breaks these tests.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from siamstream_services.core.metrics import ServiceMetrics
from siamstream_services.ingest.metrics import IngestMetrics

# redis_exporter (oliver006/redis_exporter) and Triton's metrics endpoint, as documented upstream.
REDIS_EXPORTER_METRICS = frozenset({"redis_up"})
TRITON_METRICS = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_gpu_utilization",
    }
)
# Prometheus' own series per scrape target.
PROMETHEUS_METRICS = frozenset({"up"})

# Prefixes of the exporters above: an identifier with one of them in an expression must be a known name.
METRIC_PREFIXES = ("siamstream_", "nv_", "redis_")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a registry exposes on /metrics, whether or not a sample has been recorded yet."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def known_metric_names() -> set[str]:
    return (
        exposed_names(ServiceMetrics().registry)
        | exposed_names(IngestMetrics().registry)
        | REDIS_EXPORTER_METRICS
        | TRITON_METRICS
        | PROMETHEUS_METRICS
    )


def referenced_metrics(expression: str) -> set[str]:
    """The exporter metric names (and `up`) in a PromQL expression; label names and functions are left out."""
    without_label_values = re.sub(r'"[^"]*"', "", expression)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_label_values)
    tokens = set(_IDENTIFIER.findall(without_matchers))
    return {t for t in tokens if t.startswith(METRIC_PREFIXES) or t in PROMETHEUS_METRICS}
