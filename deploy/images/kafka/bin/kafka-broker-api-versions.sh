#!/bin/sh
# kafka-broker-api-versions.sh of the distribution: runs org.apache.kafka.tools.BrokerApiVersionsCommand
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
