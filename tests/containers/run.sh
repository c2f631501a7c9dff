#!/usr/bin/env bash
# `make test-containers`: integration tests on Kafka and PostgreSQL started by testcontainers,
# through podman's Docker-compatible API (no Docker engine, no registry: `make images` built
# the images under the names retarget.devstack.containers uses). Arguments: pytest arguments.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v podman >/dev/null || { echo "test-containers: podman is missing — run 'make podman-setup'"; exit 1; }

# a socket of this run's own, served as long as the tests run
sock=/run/retarget-podman-api-$$.sock
log=$(mktemp)  # the service's own chatter (pull retries of missing images…), shown on failure
podman system service --time=0 "unix://$sock" 2>"$log" &
service=$!
finish() {
	status=$?
	kill "$service" 2>/dev/null; wait "$service" 2>/dev/null
	[ "$status" = 0 ] || { echo "--- podman system service, last lines:"; tail -n 20 "$log"; }
	rm -f "$sock" "$log"
}
trap finish EXIT
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.2; done  # a minute: slow when loaded
[ -S "$sock" ] || { echo "test-containers: podman system service did not open $sock"; exit 1; }

export DOCKER_HOST="unix://$sock" RETARGET_TEST_STACK=containers
# the reaper image can't be pulled here; the fixtures stop their containers themselves
export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_CONNECTION_MODE=docker_host
# the servers must be the containers, not whatever stack this shell points at
unset RETARGET_KAFKA_BOOTSTRAP RETARGET_DATABASE_URL RETARGET_SMTP_URL RETARGET_CAPTURE_DIR
.venv/bin/pytest -q -p no:cacheprovider "$@"
