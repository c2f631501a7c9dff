#!/bin/sh
# kafka-storage.sh of the distribution: runs kafka.tools.StorageTool
exec "$(dirname "$0")/kafka-run-class.sh" kafka.tools.StorageTool "$@"
