#!/bin/sh
# kafka-run-class.sh of the distribution, reduced: run a class with every jar of /opt/kafka/libs.
# KAFKA_HEAP_OPTS and KAFKA_OPTS are honoured as there.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml -cp '/opt/kafka/libs/*' "$@"
