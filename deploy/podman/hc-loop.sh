#!/bin/sh
# Podman 4.3 without systemd never runs a container's HEALTHCHECK by itself: drive the checks
# from here, every 2 s, for the containers still starting or unhealthy (a healthy one is left
# alone: the checks cost a process each). Arguments are extra `podman ps` filters, e.g.
#   hc-loop.sh --filter label=io.podman.compose.project=retarget-smoke
# Runs until killed (compose-smoke starts it beside `podman-compose up` and stops it on exit).
while :; do
  for c in $(podman ps -q --filter health=starting "$@" 2>/dev/null; podman ps -q --filter health=unhealthy "$@" 2>/dev/null); do
    podman healthcheck run "$c" >/dev/null 2>&1
  done
  sleep 2
done
