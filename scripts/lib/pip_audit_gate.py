"""Run pip-audit on the locked dependencies and decide pass/fail (see docs/quality.md).

Usage: pip_audit_gate.py REQUIREMENTS_FILE

- A known vulnerability fails, unless its id is in scripts/lib/pip-audit-ignore.txt with a
  reason on the same line.
- When the vulnerability service cannot be reached (every dependency "could not be
  audited"), the step warns, and fails only where the service must be reachable: on
  GitHub Actions, or when TTA_COORD_REQUIRE_AUDIT=1. Sandboxed CI runs (CI=true without
  internet access) therefore pass with a warning instead of failing for a network reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

IGNORE_FILE = Path(__file__).with_name("pip-audit-ignore.txt")


def ignored() -> dict[str, str]:
    entries: dict[str, str] = {}
    for raw in IGNORE_FILE.read_text().splitlines() if IGNORE_FILE.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"pip-audit-ignore.txt: {vuln_id} has no reason")
        entries[vuln_id] = reason.strip()
    return entries


def must_reach_service() -> bool:
    flag = os.environ.get("TTA_COORD_REQUIRE_AUDIT")
    if flag is not None:
        return flag.strip().lower() in {"1", "true", "yes"}
    return os.environ.get("GITHUB_ACTIONS") == "true"


def main() -> int:
    requirements = sys.argv[1]
    skip = ignored()
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        requirements,
        "--disable-pip",
        "--no-deps",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--timeout",
        "20",
    ]
    for vuln_id in skip:
        command += ["--ignore-vuln", vuln_id]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(run.stderr.strip()[-2000:], file=sys.stderr)
        print("pip-audit: the vulnerability service could not be queried", file=sys.stderr)
        return 1 if must_reach_service() else 0
    deps = report.get("dependencies", [])
    unaudited = [d["name"] for d in deps if "skip_reason" in d]
    found = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
    for name, version, vuln_id in found:
        print(f"pip-audit: {name} {version}: {vuln_id}", file=sys.stderr)
    if found:
        print(
            "pip-audit: upgrade, or add the id with a reason to "
            f"{IGNORE_FILE.relative_to(Path.cwd())}",
            file=sys.stderr,
        )
        return 1
    audited = len(deps) - len(unaudited)
    if deps and not audited:
        message = "pip-audit: the vulnerability service is unreachable; nothing was audited"
        if must_reach_service():
            print(f"{message} (required here)", file=sys.stderr)
            return 1
        print(f"{message} (warning only: set TTA_COORD_REQUIRE_AUDIT=1 to fail)", file=sys.stderr)
        return 0
    print(
        f"pip-audit: {audited} dependencies audited, no known vulnerability"
        + (f" ({len(unaudited)} not on PyPI: {', '.join(unaudited)})" if unaudited else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
