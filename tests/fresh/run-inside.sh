#!/bin/bash
# Inside the fresh machine: clone the repository, then the README's commands (`make demo`,
# `make test` unless other targets are named), timing each.
set -euo pipefail
git -c advice.detachedHead=false clone --quiet /mnt/repo.bundle retarget
cd retarget
echo "==> fresh clone at $(git log -1 --format='%h %s')"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(demo test)
for target in "${targets[@]}"; do
	started=$(date +%s)
	make "$target" 2>&1 | tee "/tmp/make-$target.log"
	echo "==> fresh-machine: make $target took $(($(date +%s) - started)) s"
done
if [ -f /tmp/make-demo.log ]; then
	# the demo's last word is the funnel table, read from Prometheus
	grep -q 'funnel (from' /tmp/make-demo.log && grep -q '│ demo ' /tmp/make-demo.log ||
		{ echo "fresh-machine: make demo printed no funnel rows"; exit 1; }
	! grep -q 'funnel unavailable' /tmp/make-demo.log || { echo "fresh-machine: the funnel was unavailable"; exit 1; }
fi
