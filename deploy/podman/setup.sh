#!/usr/bin/env bash
# make podman-setup: rootful podman on a Debian 12 machine that reaches no container registry.
# Idempotent: installs only the missing Debian packages and builds the base image only when
# podman lacks it (from a cached debootstrap tarball after the first run).
#
#   CONTAINERS_CONF  the settings podman needs here (the Makefile points it at containers.conf
#                    beside this file)
#   RETARGET_CACHE_DIR  where the debootstrap tarball is kept (default ~/.cache/retarget)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}" DEBIAN_FRONTEND=noninteractive
CACHE="${RETARGET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/retarget}/podman"
BASE_IMAGE=localhost/debian:bookworm-slim
# netavark/aardvark-dns: the bridge network and service names of compose; runc: see containers.conf
PACKAGES=(podman runc netavark aardvark-dns iptables slirp4netns fuse-overlayfs uidmap debootstrap)

say() { echo "==> podman-setup: $*"; }
fail() { echo "podman-setup: $*" >&2; exit 1; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then say "Debian packages present (podman $(podman --version | awk '{print $3}'))"; return; fi
  command -v apt-get >/dev/null || fail "no apt-get: install ${missing[*]} with your package manager"
  [ "$(id -u)" = 0 ] || fail "missing Debian packages: ${missing[*]} — run as root, or apt-get install them"
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}

# The Debian mirror apt already uses for bookworm itself (not -security, not third-party
# repositories, not files apt has disabled), so no host name is written here.
debian_mirror() {
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
    /^URIs:/ {uri = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") print uri}
    /^$/ {uri = ""}' | head -1) || true
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" {for (i = 2; i < NF; i++) if ($(i + 1) == "bookworm") print $i}' | head -1) || true
  [ -n "$m" ] || fail "no Debian bookworm mirror found in apt's sources; debootstrap needs one"
  echo "$m"
}

# debootstrap takes a minute or more; its rootfs is kept as a tarball so a second machine
# set-up (or a `podman system reset`) only imports it.
base_rootfs() {
  local tarball="$CACHE/debian-bookworm-minbase.tar" root
  if [ -s "$tarball" ]; then echo "$tarball"; return; fi
  mkdir -p "$CACHE"
  root=$(mktemp -d)
  say "debootstrap --variant=minbase bookworm (about a minute)" >&2
  if ! debootstrap --variant=minbase bookworm "$root" "$(debian_mirror)" >"$CACHE/debootstrap.log" 2>&1; then
    rm -rf "$root"; fail "debootstrap failed; last lines of $CACHE/debootstrap.log:
$(tail -n 20 "$CACHE/debootstrap.log")"
  fi
  # written beside and renamed, so an interrupted run never leaves a tarball that looks complete
  tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$root"
  echo "$tarball"
}

base_image() {
  if podman image exists "$BASE_IMAGE"; then say "$BASE_IMAGE present"; return; fi
  local tarball
  tarball=$(base_rootfs)
  say "podman import $tarball as $BASE_IMAGE"
  podman import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
}

install_packages
base_image
podman run --rm "$BASE_IMAGE" true || fail "a container from $BASE_IMAGE does not start (CONTAINERS_CONF=$CONTAINERS_CONF)"
say "ok: containers start; run podman here with CONTAINERS_CONF=$CONTAINERS_CONF"
