#!/bin/sh
# kafka-topics.sh of the distribution: runs org.apache.kafka.tools.TopicCommand
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.TopicCommand "$@"
