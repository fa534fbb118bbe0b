#!/bin/sh
# Fetch the jars of Apache Kafka 3.9.1 (KRaft broker, Scala 2.13) from Maven Central
# into the Broker Academy cache, where sandboxes/brokers/kafka.py looks for them.
#
#   scripts/fetch-kafka.sh [DEST]
#
# DEST defaults to ${BROKER_ACADEMY_CACHE:-/root/.cache/broker-academy}/kafka-3.9.1/libs.
# Idempotent: a complete copy already in place is left alone. The copy is made in a
# temporary folder next to DEST and renamed at the end, so an interrupted run never
# leaves a half-filled DEST that would look complete.
set -eu

VERSION=3.9.1
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${BROKER_ACADEMY_CACHE:-/root/.cache/broker-academy}
DEST=${1:-$CACHE/kafka-$VERSION/libs}
MARKER=.fetched-kafka-$VERSION

if [ -f "$DEST/$MARKER" ] && [ -f "$DEST/kafka_2.13-$VERSION.jar" ]; then
    echo "Kafka $VERSION jars already in $DEST"
    exit 0
fi

command -v mvn >/dev/null 2>&1 || { echo "fetch-kafka: mvn not found (apt-get install maven)" >&2; exit 1; }

mkdir -p "$(dirname "$DEST")"
TMP=$(mktemp -d "$DEST.partial.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

echo "Fetching Kafka $VERSION jars from Maven Central into $DEST"
mvn -B -q -Dstyle.color=never -f "$HERE/kafka-pom.xml" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$TMP"

[ -f "$TMP/kafka_2.13-$VERSION.jar" ] || { echo "fetch-kafka: kafka_2.13-$VERSION.jar missing after copy" >&2; exit 1; }
touch "$TMP/$MARKER"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT INT TERM
echo "Kafka $VERSION: $(ls "$DEST" | grep -c '\.jar$') jars in $DEST"
