#!/usr/bin/env bash
# make images: build every image deploy/Dockerfile and docker-compose.yml name, locally and
# under those exact names (no registry is reachable here; see deploy/images/README.md).
# Rebuilds are cached: podman reuses every layer whose instructions and files are unchanged.
#
#   usage: build-images.sh [NAME...]   NAME in: python retarget kafka postgres prometheus (default: all)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
IMAGES="$ROOT/deploy/images"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"
PY="${PY:-$ROOT/.venv/bin/python}"
LOGS="$ROOT/.devstack/images"
BASE_IMAGE=localhost/debian:bookworm-slim

# the names the files use, fully qualified the way podman resolves them
declare -A TAG=(
  [python]=docker.io/library/python:3.11-slim
  [retarget]=localhost/retarget:latest
  [kafka]=docker.io/apache/kafka:4.1.1
  [postgres]=docker.io/library/postgres:15
  [prometheus]=docker.io/prom/prometheus:latest
)
ORDER=(python retarget kafka postgres prometheus)   # python first: the project image builds on it

say() { echo "==> images: $*"; }
fail() { echo "images: $*" >&2; exit 1; }

# Run one build, showing its steps as progress and keeping the full output in a log.
build() {
  local name=$1; shift
  local log="$LOGS/$name.log" started=$SECONDS
  say "building ${TAG[$name]} (log: ${log#"$ROOT"/})"
  if ! podman build --layers -t "${TAG[$name]}" "$@" 2>&1 | tee "$log" | grep --line-buffered -E '^STEP [0-9]+/' | sed -u 's/^/    /'; then
    fail "building ${TAG[$name]} failed; last lines of $log:
$(tail -n 25 "$log")"
  fi
  say "${TAG[$name]} ready in $((SECONDS - started)) s"
}

# A build context of its own: the folder's files plus what must not be committed or copied
# from outside the repo into it (the host's CA bundle, the Kafka jars).
context_of() {
  local dir
  dir=$(mktemp -d "$LOGS/context-$1.XXXXXX")
  cp -a "$IMAGES/$1/." "$dir/"
  echo "$dir"
}

host_ca_bundle() {
  "$PY" -c 'import ssl; print(ssl.get_default_verify_paths().openssl_cafile)'
}

build_python() {
  local ctx; ctx=$(context_of python)
  # pip and uv inside the builds reach PyPI through the host's trusted CAs
  cp "$(host_ca_bundle)" "$ctx/host-ca.crt"
  build python "$ctx"; rm -rf "$ctx"
}

build_retarget() {
  build retarget -f "$ROOT/deploy/Dockerfile" "$ROOT"
}

build_kafka() {
  local ctx libs
  libs=$("$PY" -c 'from retarget.devstack.kafka_jars import fetch_kafka; print(fetch_kafka())') ||
    fail "the Kafka jars are missing; \`make kafka-jars\` fetches them"
  ctx=$(context_of kafka)
  cp -a "$libs" "$ctx/libs"
  build kafka "$ctx"; rm -rf "$ctx"
}

build_postgres() { build postgres "$IMAGES/postgres"; }
build_prometheus() { build prometheus "$IMAGES/prometheus"; }

podman image exists "$BASE_IMAGE" || fail "no $BASE_IMAGE image: run \`make podman-setup\` first"
[ -x "$PY" ] || fail "no $PY: run \`make install\` first"
mkdir -p "$LOGS"
wanted=("$@"); [ ${#wanted[@]} -gt 0 ] || wanted=("${ORDER[@]}")
for name in "${wanted[@]}"; do
  [ -n "${TAG[$name]:-}" ] || fail "unknown image $name (known: ${ORDER[*]})"
  "build_$name"
done
say "done: $(for n in "${wanted[@]}"; do printf '%s ' "${TAG[$n]}"; done)"
