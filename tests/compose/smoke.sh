#!/usr/bin/env bash
# make compose-smoke: docker-compose.yml for real, on podman with the locally built images
# (make images). Brings the whole file up under a project name of its own, waits for the
# migrations and for every service's /readyz, creates a workspace and a write key through the
# `cli` service, posts a visitor's identify + cart add to the Segment API (/v1/batch, Basic
# auth) on ingest's published port, and waits for the abandoned-cart email in the mail catcher.
# Then `podman-compose down -v`, also on failure (which first prints each container's last
# log lines). Every wait has a deadline; the whole run is bounded by SMOKE_DEADLINE_S.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}"
PY="$ROOT/.venv/bin/python"
PROJECT="${SMOKE_PROJECT:-retarget-smoke}"
DEADLINE_S="${SMOKE_DEADLINE_S:-900}"
LOGS="$ROOT/.devstack/compose-smoke"
COMPOSE=("$ROOT/.venv/bin/podman-compose" -p "$PROJECT" -f "$ROOT/docker-compose.yml")
# Started in the order the file's depends_on says, by hand: podman 4.3 ignores
# `condition: service_healthy`, and starting a container whose --requires chain is two deep
# (ingest -> migrate -> kafka) fails there ("not found in input list"), so every `up` here is
# --no-deps and this script waits for what the conditions would have waited for.
BACKING=(kafka postgres mail prometheus migrate)
SERVICES=(ingest ingest-mailbox segmenter composer sender)
HEALTHCHECKED=(kafka postgres mail ingest ingest-mailbox segmenter composer sender)
WORKSPACE=smoke
RECIPIENT="smoke-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')@example.com"

started=$SECONDS
say() { echo "==> compose-smoke [$((SECONDS - started))s]: $*"; }
left() { local s=$((DEADLINE_S - (SECONDS - started))); echo $((s > 1 ? s : 1)); }
die() { echo "compose-smoke: FAILED: $*" >&2; exit 1; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# secrets and host ports of this run only (the machine may run the local stack or another compose)
RETARGET_LINK_SECRET=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
export RETARGET_LINK_SECRET
export RETARGET_CAMPAIGN_WAITS='{"abandoned_cart": "3s"}'   # instead of the campaign's hours
INGEST_HOST_PORT=$(free_port) MAILBOX_HOST_PORT=$(free_port) PROMETHEUS_HOST_PORT=$(free_port)
export INGEST_HOST_PORT MAILBOX_HOST_PORT PROMETHEUS_HOST_PORT

container_of() {  # the container of a compose service (podman-compose labels them like Docker)
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -1
}

show_logs() {
  local c
  for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
    echo "----- $c ($(podman inspect --format '{{.State.Status}} exit={{.State.ExitCode}} health={{.State.Health.Status}}' "$c" 2>/dev/null)), last 25 lines:"
    podman logs --tail 25 "$c" 2>&1 | cut -c1-400
  done
  [ -f "$LOGS/up.log" ] && { echo "----- podman-compose up, last 15 lines:"; tail -n 15 "$LOGS/up.log"; }
}

HC_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e  # clean up as far as possible, whatever fails
  [ -n "$HC_PID" ] && kill "$HC_PID" 2>/dev/null && wait "$HC_PID" 2>/dev/null
  [ "$rc" -eq 0 ] || show_logs
  say "podman-compose down -v"
  timeout 300 "${COMPOSE[@]}" down -v -t 10 >"$LOGS/down.log" 2>&1 ||
    echo "compose-smoke: warning: down failed, see ${LOGS#"$ROOT"/}/down.log" >&2
  [ "$rc" -eq 0 ] && say "passed in $((SECONDS - started)) s" || say "failed after $((SECONDS - started)) s"
  exit "$rc"
}

# Wait until CONDITION (a shell function) succeeds, or fail naming WHAT after SECONDS.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local until=$((SECONDS + seconds))
  [ $((SECONDS + seconds)) -le $((started + DEADLINE_S)) ] || until=$((started + DEADLINE_S))
  until "$@"; do
    [ "$SECONDS" -lt "$until" ] || die "$what: not within ${seconds} s"
    sleep 2
  done
}

healthy() { [ "$(podman inspect --format '{{.State.Health.Status}}' "$(container_of "$1")" 2>/dev/null)" = healthy ]; }
all_healthy() { local s; for s in "${HEALTHCHECKED[@]}"; do healthy "$s" || return 1; done; }
migrate_exited() { [ "$(podman inspect --format '{{.State.Status}}' "$(container_of migrate)" 2>/dev/null)" = exited ]; }

mail_for_recipient() {  # the .eml files in the catcher addressed to this run's recipient
  podman exec "$(container_of mail)" sh -c "grep -l -F -- '$RECIPIENT' /data/mail/*.eml 2>/dev/null" || true
}
mail_arrived() { [ -n "$(mail_for_recipient)" ]; }

post_events() {  # identify + cart add in one /v1/batch; prints the HTTP status and body
  "$PY" - "$INGEST_HOST_PORT" "$1" "$RECIPIENT" <<'PYEOF'
import base64, json, sys, urllib.error, urllib.request
port, key, email = sys.argv[1:]
visitor = "smoke-visitor-" + email.split("@")[0].removeprefix("smoke-")
batch = {"batch": [
    {"type": "identify", "anonymousId": visitor, "traits": {"email": email, "firstName": "Ann"}},
    {"type": "track", "anonymousId": visitor, "event": "Product Added",
     "properties": {"product_id": "boot-1", "name": "Trail Boot", "price": 89.5, "currency": "EUR"}},
]}
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/v1/batch", data=json.dumps(batch).encode(), method="POST",
    headers={"Content-Type": "application/json",
             "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()})
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        print(response.status, response.read().decode()[:300])
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode()[:300])
except OSError as exc:
    print(0, exc)
PYEOF
}

mkdir -p "$LOGS"
for image in localhost/retarget:latest docker.io/apache/kafka:4.1.1 docker.io/library/postgres:15 docker.io/prom/prometheus:latest; do
  podman image exists "$image" || die "no image $image: run \`make images\` first"
done
say "clearing what an earlier run of project $PROJECT may have left"
timeout 300 "${COMPOSE[@]}" down -v -t 5 >"$LOGS/down.log" 2>&1 || true
trap cleanup EXIT
trap 'exit 130' INT TERM

# podman 4.3 runs no healthchecks by itself: the waits below read the health they report
"$ROOT/deploy/podman/hc-loop.sh" --filter "label=io.podman.compose.project=$PROJECT" &
HC_PID=$!

say "podman-compose up -d ${BACKING[*]} (log: ${LOGS#"$ROOT"/}/up.log)"
timeout "$(left)" "${COMPOSE[@]}" up -d --no-deps "${BACKING[@]}" >"$LOGS/up.log" 2>&1 ||
  die "podman-compose up (${BACKING[*]}) failed or timed out"
# migrate retries until Kafka and PostgreSQL answer (the file's healthchecks say when they do)
wait_for "migrate finishing" 300 migrate_exited
code=$(podman inspect --format '{{.State.ExitCode}}' "$(container_of migrate)")
[ "$code" = 0 ] || die "migrate exited with $code"
say "migrations applied and topics created"

say "podman-compose up -d ${SERVICES[*]} (ingest published on 127.0.0.1:$INGEST_HOST_PORT)"
timeout "$(left)" "${COMPOSE[@]}" up -d --no-deps "${SERVICES[@]}" >>"$LOGS/up.log" 2>&1 ||
  die "podman-compose up (${SERVICES[*]}) failed or timed out"

wait_for "every service answering /readyz (healthy)" 300 all_healthy
say "healthy: ${HEALTHCHECKED[*]}"

say "workspace and write key through the cli service"
timeout "$(left)" "${COMPOSE[@]}" --profile tools run --rm --no-deps -T cli workspace create --id "$WORKSPACE" --name "Boot Shop" \
  --from-name "Boot Shop" --from-email news@boots.example --postal-address "1 Main St, Springfield" \
  >"$LOGS/cli.log" 2>&1 || { cat "$LOGS/cli.log"; die "workspace create failed"; }
KEY=$(timeout "$(left)" "${COMPOSE[@]}" --profile tools run --rm --no-deps -T cli write-key create --workspace "$WORKSPACE" 2>>"$LOGS/cli.log" | tail -n 1 | tr -d '\r')
[ -n "$KEY" ] || { cat "$LOGS/cli.log"; die "write-key create printed no key"; }

say "POST /v1/batch: a visitor identifies and adds a boot to the cart"
read -r status body < <(post_events "$KEY")
[ "$status" = 200 ] || die "/v1/batch answered $status: $body"

wait_for "the abandoned-cart email in the mail catcher" 240 mail_arrived
sleep 10  # one trigger, one email: a second copy (a message sent twice) would most likely be here by now
files=$(mail_for_recipient)
[ "$(echo "$files" | wc -l)" = 1 ] || die "expected one email for the visitor, found: $files"
subject=$(podman exec "$(container_of mail)" grep -m1 '^Subject:' "$files")
case "$subject" in *"you left something in your cart"*) ;; *) die "unexpected email: $subject" ;; esac
say "email arrived: $subject"
