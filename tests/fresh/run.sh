#!/usr/bin/env bash
# `make fresh-machine`: prove that a bare Debian needs only the README's two commands.
# Builds a debootstrap-minbase image with python3, git and make (tests/fresh/Containerfile),
# clones this working tree's HEAD inside it and runs `make demo` then `make test` there.
# Arguments name other make targets to run instead (e.g. `demo`). The container has its own
# network namespace (its stack's ports never meet this host's) and an init that reaps orphans,
# as a machine has.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=localhost/retarget-fresh-machine:latest
NAME=retarget-fresh-machine-$$

podman image exists localhost/debian:bookworm-slim || {
	echo "fresh-machine: no base image localhost/debian:bookworm-slim — run 'make podman-setup' first"; exit 1; }

work=$(mktemp -d)
trap 'podman rm -f -t 10 "$NAME" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir "$work/ctx" "$work/ctx/machine-ca"
cp tests/fresh/Containerfile "$work/ctx/"
# the machine's own extra CA certificates, if it has any (never committed: copied per run)
cp /usr/local/share/ca-certificates/*.crt "$work/ctx/machine-ca/" 2>/dev/null || true
echo "==> fresh-machine: building $IMAGE (debootstrap minbase + python3 git make)"
podman build -q -t "$IMAGE" "$work/ctx" >/dev/null
# HEAD as a bundle: a clone of it is what a fresh machine gets, and it works from a worktree too
git bundle create -q "$work/repo.bundle" HEAD
echo "==> fresh-machine: make ${*:-demo test} in a fresh clone of $(git rev-parse --short HEAD)"
started=$(date +%s)
ca=/etc/ssl/certs/ca-certificates.crt   # where Debian's ca-certificates puts the bundle
podman run --name "$NAME" --init --shm-size=1g \
	-v "$work/repo.bundle:/mnt/repo.bundle:ro" -v "$PWD/tests/fresh/run-inside.sh:/mnt/run-inside.sh:ro" \
	-e SSL_CERT_FILE=$ca -e REQUESTS_CA_BUNDLE=$ca -e PIP_CERT=$ca -e NODE_EXTRA_CA_CERTS=$ca \
	-e CURL_CA_BUNDLE=$ca -e GIT_SSL_CAINFO=$ca \
	"$IMAGE" bash /mnt/run-inside.sh "$@"
echo "==> fresh-machine: passed in $(($(date +%s) - started)) s"
