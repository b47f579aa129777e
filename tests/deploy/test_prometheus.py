"""Prometheus scrape config and alert rules: promtool accepts them, each alert fires in its unit test."""

from __future__ import annotations

import yaml

from tests.deploy.metric_names import known_metric_names, referenced_metrics
from tests.deploy.tools import ROOT, require_tool, run_tool

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
EXPECTED_ALERTS = {
    "SiamStreamCameraStale",
    "SiamStreamHighErrorRate",
    "SiamStreamFrameLatencyHigh",
    "SiamStreamRedisDown",
    "SiamStreamTritonDown",
}


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_scrape_config() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout + result.stderr


def test_every_alert_fires_in_the_rule_unit_tests() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr

    unit_tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"] for test in unit_tests for case in test["alert_rule_test"] if case["exp_alerts"]
    }
    assert fired == EXPECTED_ALERTS


def test_rules_name_only_exported_metrics_and_scraped_jobs() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    known = known_metric_names()
    for rule in rules:
        metrics = referenced_metrics(rule["expr"])
        assert metrics, f"{rule['alert']} references no exported metric"
        assert metrics <= known, f"{rule['alert']} references unknown metrics {metrics - known}"

    scraped_jobs = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert scraped_jobs == {"siamstream-session", "siamstream-ingest", "redis", "triton"}
    for rule in rules:
        for job in ("redis", "triton"):
            if f'job="{job}"' in rule["expr"]:
                assert job in scraped_jobs
