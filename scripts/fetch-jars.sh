#!/bin/sh
# Fetch the jars of a JVM broker from Maven Central into the Broker Academy cache,
# where its broker kind (sandboxes/brokers/KIND/kind.py) looks for them.
#
#   scripts/fetch-jars.sh KIND [DEST]     KIND: kafka or activemq
#
# The version is the one pinned in sandboxes/brokers/versions.py; what to fetch is
# scripts/KIND-pom.xml. DEST defaults to <cache>/KIND-<version>/libs
# (python3 -m sandboxes.brokers.versions --home KIND). Idempotent: a complete copy
# already in place is left alone. The copy is made in a temporary folder next to
# DEST and renamed at the end, so an interrupted run never leaves a half-filled
# DEST that would look complete.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
KIND=${1:?usage: scripts/fetch-jars.sh kafka|activemq [DEST]}
case "$KIND" in
    kafka) CORE=kafka_2.13 ;;  # the jar whose presence says the copy is there
    activemq) CORE=activemq-broker ;;
    *) echo "fetch-jars: unknown kind $KIND (kafka or activemq)" >&2; exit 2 ;;
esac
VERSION=$(cd "$ROOT" && python3 -m sandboxes.brokers.versions "$KIND")
DEST=${2:-$(cd "$ROOT" && python3 -m sandboxes.brokers.versions --home "$KIND")/libs}
MARKER=.fetched-$KIND-$VERSION

if [ -f "$DEST/$MARKER" ] && [ -f "$DEST/$CORE-$VERSION.jar" ]; then
    echo "$KIND $VERSION jars already in $DEST"
    exit 0
fi

command -v mvn >/dev/null 2>&1 || { echo "fetch-jars: mvn not found (apt-get install maven)" >&2; exit 1; }

mkdir -p "$(dirname "$DEST")"
TMP=$(mktemp -d "$DEST.partial.XXXXXX")
chmod 755 "$TMP"  # mktemp makes it private; brokers may run as another account
trap 'rm -rf "$TMP"' EXIT INT TERM

echo "Fetching $KIND $VERSION jars from Maven Central into $DEST"
mvn -B -q -Dstyle.color=never -f "$HERE/$KIND-pom.xml" \
    "-D$KIND.version=$VERSION" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$TMP"

[ -f "$TMP/$CORE-$VERSION.jar" ] || { echo "fetch-jars: $CORE-$VERSION.jar missing after copy" >&2; exit 1; }
touch "$TMP/$MARKER"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT INT TERM
echo "$KIND $VERSION: $(ls "$DEST" | grep -c '\.jar$') jars in $DEST"
