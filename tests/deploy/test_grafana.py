"""The Grafana dashboard is valid JSON whose every panel queries metrics that the processes export."""

from __future__ import annotations

import json

from siamstream_services.core.metrics import ServiceMetrics
from tests.deploy.metric_names import known_metric_names, referenced_metrics
from tests.deploy.tools import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "siamstream.json"


def test_dashboard_panels_query_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert dashboard["uid"] and len(panels) >= 10
    assert len({panel["id"] for panel in panels}) == len(panels)
    known = known_metric_names()
    used = set()
    for panel in panels:
        expressions = [target["expr"] for target in panel["targets"]]
        assert expressions, f"panel {panel['title']!r} has no query"
        for expression in expressions:
            metrics = referenced_metrics(expression)
            assert metrics, f"panel {panel['title']!r}: {expression!r} names no exported metric"
            assert metrics <= known, f"panel {panel['title']!r} queries unknown metrics {metrics - known}"
            used |= metrics
    # Every metric of the session service appears on the dashboard in some form.
    session_families = {family.name for family in ServiceMetrics().registry.collect()}
    assert len(session_families) == 11
    assert all(any(name.startswith(family) for name in used) for family in session_families)
