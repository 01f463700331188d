#!/usr/bin/env bash
# Build one workspace package and check that what would be published works:
#   scripts/validate-package.sh tta-agent-coordination [--keep]
# 1. uv build: sdist and wheel;  2. twine check --strict;  3. metadata policy (classifiers,
# readme, license, URLs, requires-python, every dependency with a lower bound, workspace
# siblings with an upper bound too, semantic version);  4. install the wheel into a fresh
# venv with only its declared dependencies;  5. smoke test: import, `tta-coord --version`,
# and a send/receive on FakeRedis through the testing extra.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
cd "$REPO_ROOT"

package="${1:?usage: scripts/validate-package.sh <package> [--keep]}"
keep="${2:-}"
ensure_uv
# Any member of the workspace (the root pyproject.toml), so a new package needs no edit here.
members="$(bash "$REPO_ROOT/scripts/check-install-routes" --list-packages)"
if ! grep -qx -- "$package" <<<"$members"; then
  log "unknown package $package (the workspace has: $(echo $members))"
  exit 2
fi
module="${package//-/_}"

work="$(mktemp -d)"
if [[ "$keep" != "--keep" ]]; then trap 'rm -rf "$work"' EXIT; else log "keeping $work"; fi

log "build $package"
uv build --quiet --package "$package" --out-dir "$work/dist"
if [[ "$package" != tta-agent-coordination ]]; then
  # A package built on the core depends on it (and maybe on other members), which are
  # installed from their own wheels (not PyPI).
  uv build --quiet --wheel --all-packages --out-dir "$work/siblings"
fi
wheel="$(ls "$work"/dist/*.whl)"
sdist="$(ls "$work"/dist/*.tar.gz)"

log "twine check --strict"
uv run --frozen twine check --strict "$wheel" "$sdist"

log "metadata policy"
uv run --frozen python - "$wheel" "$sdist" <<'PY'
import re
import sys
import tarfile
import zipfile
from email.parser import Parser

wheel, sdist = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(name).decode())
    files = zf.namelist()
problems = []
version = meta["Version"]
if not re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", version):
    problems.append(f"version {version!r} is not MAJOR.MINOR.PATCH")
for field in ("Summary", "Requires-Python", "Description-Content-Type"):
    if not meta.get(field):
        problems.append(f"no {field}")
if meta.get("Requires-Python") != ">=3.11":
    problems.append(f"Requires-Python is {meta.get('Requires-Python')!r}, expected '>=3.11'")
if not (meta.get("License-Expression") or meta.get("License")):
    problems.append("no license")
if not any(f.endswith("licenses/LICENSE") or f.endswith("/LICENSE") for f in files):
    problems.append("no LICENSE file in the wheel")
if len(meta.get_payload() or "") < 200:
    problems.append("the README (long description) is missing or tiny")
urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
for label in ("Homepage", "Source"):
    if label not in urls:
        problems.append(f"no Project-URL {label}")
classifiers = meta.get_all("Classifier") or []
for needed in ("Programming Language :: Python :: 3.11", "Typing :: Typed"):
    if needed not in classifiers:
        problems.append(f"classifier {needed!r} missing")
if not any(c.startswith("Development Status ::") for c in classifiers):
    problems.append("no Development Status classifier")
for req in meta.get_all("Requires-Dist") or []:
    spec = req.split(";")[0]
    dist = re.split(r"[\s\[<>=!~;(]", spec, maxsplit=1)[0]
    if ">=" not in spec and "==" not in spec and "~=" not in spec:
        problems.append(f"dependency {spec.strip()!r} has no lower bound")
    if dist.startswith("tta-agent-coordination") and "<" not in spec:
        problems.append(f"workspace dependency {spec.strip()!r} has no upper bound")
if not any(f.endswith("py.typed") for f in files):
    problems.append("no py.typed marker")
with tarfile.open(sdist) as tf:
    names = tf.getnames()
for needed in ("pyproject.toml", "README.md", "LICENSE"):
    if not any(n.endswith("/" + needed) for n in names):
        problems.append(f"the sdist has no {needed}")
if problems:
    sys.exit("metadata problems:\n  " + "\n  ".join(problems))
print(f"{meta['Name']} {version}: metadata ok ({len(meta.get_all('Requires-Dist') or [])} requirements)")
PY

log "install the wheel into a fresh venv (declared dependencies only)"
uv venv --quiet --python "${UV_PYTHON:-3.11}" "$work/venv"
py="$work/venv/bin/python"
if [[ "$package" == tta-agent-coordination ]]; then
  uv pip install --quiet --python "$py" "${wheel}[testing]"
else
  uv pip install --quiet --python "$py" --find-links "$work/siblings" \
    "tta-agent-coordination[testing]" "$wheel"
fi

log "smoke test"
"$work/venv/bin/tta-coord" --version
if [[ "$package" == tta-agent-coordination-postgres ]]; then
  "$work/venv/bin/tta-coord" store --help >/dev/null
fi
"$py" - "$module" <<'PY'
import asyncio
import importlib
import sys

module = importlib.import_module(sys.argv[1])
print(f"import {module.__name__} {module.__version__}: ok")

import tta_agent_coordination as core
from tta_agent_coordination.testing import fake_redis

features = core.features()
assert features["fakeredis"].usable, features["fakeredis"]
if sys.argv[1] == "tta_agent_coordination_postgres":
    assert features["postgres"].usable, features["postgres"]
    from tta_agent_coordination.plugins import load_store

    assert type(load_store("postgres", dsn="postgresql://x@127.0.0.1:1/x")).__name__ == "PostgresMessageStore"


async def main() -> None:
    client = fake_redis()
    coordinator = core.RedisMessageCoordinator(client, key_prefix="smoke")
    sender, recipient = core.AgentId("smoke", "a"), core.AgentId("smoke", "b")
    message = core.AgentMessage(
        sender=sender, recipient=recipient, message_type=core.MessageType.REQUEST, payload={"n": 1}
    )
    assert (await coordinator.send_message(sender, recipient, message)).delivered
    received = await coordinator.receive(recipient)
    assert received is not None and received.message.payload == {"n": 1}
    assert await coordinator.ack(recipient, received.token)
    await coordinator.aclose()
    await client.aclose()
    print("send/receive/ack on FakeRedis: ok")


asyncio.run(main())
PY
log "$package: valid"
