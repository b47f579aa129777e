"""The soak's figures: one line per minute while it runs, and the summary at the end (as a dict for
`--json`, or printed)."""

from __future__ import annotations

import argparse

import numpy as np

from .clients import DRAIN_TIMEOUT_S, HEALTH_POLL_S
from .processes import ProcessSample
from .recorder import Recorder, Window


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def window_line(index: int, count: int, window: Window) -> str:
    sample, pushes = window.sample, window.push_ms
    figures = "service gone"
    if sample is not None:
        figures = f"rss {sample.rss_mib:7.1f} MiB  fds {sample.fds:4d}  threads {sample.threads:3d}"
    push = "PushFrame: none"
    if pushes:
        p50, p99 = percentile(pushes, 50), percentile(pushes, 99)
        push = f"PushFrame p50 {p50:7.1f} ms  p99 {p99:7.1f} ms ({len(pushes)})"
    health = ", ".join(f"{name} {n}" for name, n in window.health.most_common())
    codes = ", ".join(f"{name} {n}" for name, n in window.codes.most_common())
    if window.unexpected:
        codes += f" ({window.unexpected} unexpected)"
    events = f"  [{'; '.join(window.events)}]" if window.events else ""
    return f"minute {index + 1:2d}/{count}: {figures} | {push} | health {health} | {codes}{events}"


def report(
    args: argparse.Namespace,
    recorder: Recorder,
    windows: list[Window],
    at_start: ProcessSample | None,
    alive: bool,
    health_at_end: str | None,
    sessions_at_end: int | str | None,
    clients_cut_off: int,
) -> dict:
    # The last figures the service gave: a service that died has none for the minutes after.
    present = [window.sample for window in windows if window.sample is not None]
    first, last = windows[0].sample, (present[-1] if present else None)
    restart = None
    if recorder.redis_stopped_at is not None:
        back = recorder.redis_started_at
        first_start = recorder.first_start_after_restart
        restart = {
            "stopped_at_s": recorder.since_start(recorder.redis_stopped_at),
            "started_at_s": recorder.since_start(back) if back is not None else None,
            "first_start_ok_after_s": round(first_start - back, 2) if first_start and back else None,
        }
    return {
        "benchmark": "soak",
        "streams": args.streams,
        "minutes": args.minutes,
        "window_s": args.window_s,
        "seed": args.seed,
        "frames": args.frames,
        "idle_ttl_s": args.idle_ttl_s,
        "redis_restart": restart,
        "per_minute": [
            {
                "minute": index + 1,
                "rss_mib": round(window.sample.rss_mib, 1) if window.sample else None,
                "fds": window.sample.fds if window.sample else None,
                "threads": window.sample.threads if window.sample else None,
                "pushes": len(window.push_ms),
                "push_p50_ms": percentile(window.push_ms, 50),
                "push_p99_ms": percentile(window.push_ms, 99),
                "health": dict(window.health),
                "codes": dict(window.codes),
                "unexpected": window.unexpected,
                "events": window.events,
            }
            for index, window in enumerate(windows)
        ],
        "rss_mib": {
            "at_start": round(at_start.rss_mib, 1) if at_start else None,
            "minute_1": round(first.rss_mib, 1) if first else None,
            "last": round(last.rss_mib, 1) if last else None,
            "growth_pct": round((last.rss_mib / first.rss_mib - 1) * 100, 1) if first and last else None,
        },
        "fds": {
            "at_start": at_start.fds if at_start else None,
            "minute_1": first.fds if first else None,
            "last": last.fds if last else None,
            "growth": last.fds - first.fds if first and last else None,
        },
        "threads": {"minute_1": first.threads if first else None, "last": last.threads if last else None},
        "push_p99_ms_per_minute": [percentile(window.push_ms, 99) for window in windows],
        "codes": dict(recorder.codes.most_common()),
        "kinds": {kind: dict(codes.most_common()) for kind, codes in sorted(recorder.kinds.items())},
        "unexpected": [
            {"kind": kind, "code": code, "count": outcomes.count, "samples": outcomes.samples}
            for (kind, code), outcomes in sorted(recorder.unexpected.items())
        ],
        "client_errors": [
            {"error": name, "count": outcomes.count, "samples": outcomes.samples}
            for name, outcomes in sorted(recorder.client_errors.items())
        ],
        "clients_cut_off": clients_cut_off,
        "health_changes": [{"at_s": at, "status": status} for at, status in recorder.health_changes],
        "service": {
            "alive": alive,
            "health_at_end": health_at_end,
            "sessions_at_end": sessions_at_end,
        },
    }


def signed(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:+}{unit}"


def print_summary(summary: dict) -> None:
    rss, fds, service, restart = (
        summary["rss_mib"],
        summary["fds"],
        summary["service"],
        summary["redis_restart"],
    )
    weights = ", random weights" if summary["random_weights"] else ""
    print(
        f"soak of {summary['tracker']} ({summary['package']}{weights}): {summary['streams']} client streams, "
        f"{summary['minutes']} min, seed {summary['seed']}"
    )
    print(
        f"  RSS  {rss['minute_1']} MiB at minute 1 -> {rss['last']} MiB at the end: "
        f"{signed(rss['growth_pct'], ' %')} ({rss['at_start']} MiB before the load)"
    )
    print(
        f"  fds  {fds['minute_1']} at minute 1 -> {fds['last']} at the end: {signed(fds['growth'])} "
        f"({fds['at_start']} before the load)"
    )
    print(f"  PushFrame p99 per minute (ms): {', '.join(str(p) for p in summary['push_p99_ms_per_minute'])}")
    if restart:
        after = restart["first_start_ok_after_s"]
        print(
            f"  redis stopped at {restart['stopped_at_s']} s, back at {restart['started_at_s']} s; "
            f"first StartTrack OK {'never' if after is None else f'{after} s'} after it was back"
        )
    changes = ", ".join(f"{change['status']} at {change['at_s']} s" for change in summary["health_changes"])
    print(f"  health (polled every {HEALTH_POLL_S:g} s): {changes}")
    print("  status codes: " + ", ".join(f"{code} {n}" for code, n in summary["codes"].items()))
    print("  per request kind:")
    width = max((len(kind) for kind in summary["kinds"]), default=0)
    for kind, codes in summary["kinds"].items():
        print(f"    {kind:{width}s}  " + ", ".join(f"{code} {n}" for code, n in codes.items()))
    print(f"  outcomes no action expects: {'' if summary['unexpected'] else 'none'}")
    for item in summary["unexpected"]:
        print(f"    {item['kind']}: {item['code']} x{item['count']}, e.g. {' | '.join(item['samples'])}")
    for item in summary["client_errors"]:
        print(f"  client-side error {item['error']} x{item['count']}, e.g. {' | '.join(item['samples'])}")
    if summary["clients_cut_off"]:
        print(
            f"  {summary['clients_cut_off']} clients were still in a call {DRAIN_TIMEOUT_S:g} s after the end"
        )
    if service["alive"]:
        print(
            f"  service: alive at the end, health {service['health_at_end']}, {service['sessions_at_end']} "
            f"sessions listed; exit code {service['stop_exit_code']} after SIGTERM"
        )
    else:
        print(f"  service: DEAD, exit code {service['exit_code']} (see the minute lines for when)")
    log = service["log"]
    print(f"  service log lines: {log['lines_per_level']}, crash markers: {log['crash_markers'] or 'none'}")
    for item in log["warnings_and_errors"]:
        print(f"    x{item['count']}: {item['example']}")
    if "tail" in log:
        print("  service log tail:\n" + log["tail"])
