"""The pre-flight report as text: per pool, offerings per AZ, vCPU quotas, capacity reservations."""

from __future__ import annotations

from plan.preflight.check import PreflightReport


def format_report(report: PreflightReport) -> str:
    azs = report.availability_zones
    lines = [f"Capacity pre-flight: region {report.region or '?'}, AZs {', '.join(azs) or '-'}"]
    lines += [f"FAIL  {msg}" for msg in report.failures]
    for pr in report.pools:
        lines += ["", f"Pool {pr.name}: {'OK' if pr.ok else 'FAILED'}"]
        if pr.offerings:
            width = max(len(t) for t in pr.offerings)
            lines.append("  offered in:")
            for t, where in pr.offerings.items():
                cells = "  ".join(az if az in where else "-" * len(az) for az in azs)
                lines.append(f"    {t:<{width}}  {cells}")
        if pr.quotas:
            lines.append("  vCPU quotas (needed / quota):")
            for q in pr.quotas:
                avail = "?" if q.available_vcpus is None else f"{q.available_vcpus:g}"
                status = "ok" if q.ok else "SHORT" if q.available_vcpus is not None else "UNREAD"
                lines.append(f"    {q.family_group} {q.capacity_type:<9} {q.quota_code}  {q.needed_vcpus} / {avail} "
                             f"({q.source})  {status}  [{q.basis}]")
        if pr.reservations:
            lines.append("  capacity reservations (available / total):")
            lines += [f"    {r.id}  {r.kind:<14} {r.instance_type:<14} {r.zone}  {r.state:<9} {r.available} / {r.total}"
                      for r in pr.reservations]
        lines += [f"  FAIL  {msg}" for msg in pr.failures]
        lines += [f"  WARN  {msg}" for msg in pr.warnings]
    if report.warnings:
        lines.append("")
        lines += [f"WARN  {msg}" for msg in report.warnings]
    n_fail = len(report.failures) + sum(len(p.failures) for p in report.pools)
    n_warn = len(report.warnings) + sum(len(p.warnings) for p in report.pools)
    lines += ["", f"Result: {'OK' if report.ok else 'FAILED'} ({n_fail} failures, {n_warn} warnings)"]
    return "\n".join(lines)
