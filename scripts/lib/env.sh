# Shared set-up for scripts/test, scripts/demo and .ci/run (sourced, not run).
# Installs uv when missing, syncs the locked workspace, and starts Redis when needed.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TTA_COORD_TEST_REDIS_URL="${TTA_COORD_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
export TTA_COORD_TEST_REDIS_URL
# The Postgres of the adapter's tests; trust auth on the loopback lets user postgres in.
TTA_COORD_TEST_POSTGRES_DSN="${TTA_COORD_TEST_POSTGRES_DSN:-postgresql://postgres@127.0.0.1:5432/test}"
export TTA_COORD_TEST_POSTGRES_DSN

log() { printf '==> %s\n' "$*" >&2; }

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then return; fi
  export PATH="$HOME/.local/bin:$PATH"
  if command -v uv >/dev/null 2>&1; then return; fi
  log "installing uv from PyPI"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  command -v uv >/dev/null 2>&1 || { log "uv could not be installed"; return 1; }
}

sync_workspace() {
  log "syncing the locked workspace"
  (cd "$REPO_ROOT" && uv sync --all-packages --all-extras --frozen --quiet)
}

# Only what `tta-coord demo` needs: the core package and FakeRedis (the `testing` extra),
# plus tta-agents for the demo's TTA scene (its pipeline and agent workers); none of the
# dev toolchain (pyright, mkdocs, mutmut, ...). --inexact keeps whatever a full sync
# installed before, so the demo never strips the test tools.
sync_demo() {
  log "syncing the core package and tta-agents for the demo"
  (cd "$REPO_ROOT" && uv sync --frozen --quiet --no-dev --inexact \
    --package tta-agent-coordination --package tta-agents --extra testing)
}

redis_answers() {
  (cd "$REPO_ROOT" && uv run --frozen python - "$TTA_COORD_TEST_REDIS_URL" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
  )
}

# Starts the local Redis used by the tests when it is not answering. Only a server on
# this machine's loopback is ever started; a URL pointing elsewhere is left alone.
ensure_redis() {
  if redis_answers; then return 0; fi
  case "$TTA_COORD_TEST_REDIS_URL" in
    redis://127.0.0.1:6379*|redis://localhost:6379*) ;;
    *) log "Redis at $TTA_COORD_TEST_REDIS_URL is not answering"; return 1 ;;
  esac
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 \
      || { log "could not install redis-server"; return 1; }
  fi
  log "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    if redis_answers; then return 0; fi
    sleep 0.2
  done
  log "redis-server did not come up"
  return 1
}

postgres_answers() {
  (cd "$REPO_ROOT" && uv run --frozen python - "$TTA_COORD_TEST_POSTGRES_DSN" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=2).close()
PY
  )
}

# Starts the local Postgres cluster used by the adapter's tests when it is not answering.
# Only a cluster on this machine's loopback is ever started.
ensure_postgres() {
  if postgres_answers; then return 0; fi
  case "$TTA_COORD_TEST_POSTGRES_DSN" in
    *@127.0.0.1:5432/*|*@localhost:5432/*) ;;
    *) log "Postgres at $TTA_COORD_TEST_POSTGRES_DSN is not answering"; return 1 ;;
  esac
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d /etc/postgresql ]]; then
    log "no local Postgres cluster to start"; return 1
  fi
  log "starting the local Postgres cluster"
  # shellcheck disable=SC2046
  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do
    if postgres_answers; then return 0; fi
    sleep 0.2
  done
  log "Postgres did not come up"
  return 1
}

# Debian's chromium and chromium-driver for the dashboard's browser tests (pytest -m browser).
# Installed with apt-get when missing and this is root (TTA_COORD_CHROMIUM and
# TTA_COORD_CHROMEDRIVER name another Chrome and its driver); otherwise the browser tests skip,
# except with CI=true, where they fail (tests/dashboard/test_browser.py).
ensure_chromium() {
  # A browser chosen by the environment (e.g. a CI runner's preinstalled Chrome).
  if [[ -n "${TTA_COORD_CHROMIUM:-}" && -x "${TTA_COORD_CHROMIUM}" \
        && -n "${TTA_COORD_CHROMEDRIVER:-}" && -x "${TTA_COORD_CHROMEDRIVER}" ]]; then
    return 0
  fi
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "no chromium/chromedriver and cannot install them (not root or no apt-get)"
    return 1
  fi
  log "installing chromium and chromium-driver (browser tests)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
    || { log "could not install chromium"; return 1; }
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}
