#!/bin/sh
# Fetch the jars of a JVM broker from Maven Central into the Broker Academy cache,
# where its broker kind (sandboxes/brokers/KIND/kind.py) looks for them.
#
#   scripts/fetch-jars.sh KIND [DEST]     KIND: kafka, activemq or activemq-console
#
# The version is the one pinned in sandboxes/brokers/versions.py; what to fetch is
# scripts/KIND-pom.xml. DEST defaults to <cache>/KIND-<version>/libs (for
# activemq-console, ActiveMQ's web console: <cache>/activemq-console-<version>, its
# jars in libs/ and its WAR unpacked in webapp/)
# (python3 -m sandboxes.brokers.versions --home KIND). Idempotent: a complete copy
# already in place is left alone. The copy is made in a temporary folder next to
# DEST and renamed at the end, so an interrupted run never leaves a half-filled
# DEST that would look complete.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
KIND=${1:?usage: scripts/fetch-jars.sh kafka|activemq|activemq-console [DEST]}
VERSION=$(cd "$ROOT" && python3 -m sandboxes.brokers.versions "$KIND")
HOME_DIR=$(cd "$ROOT" && python3 -m sandboxes.brokers.versions --home "$KIND")
# CORE: the file whose presence says the copy is there; JARS: where in DEST the jars go.
case "$KIND" in
    kafka) CORE=kafka_2.13-$VERSION.jar; JARS=. ;;
    activemq) CORE=activemq-broker-$VERSION.jar; JARS=. ;;
    activemq-console) CORE=webapp/WEB-INF/web.xml; JARS=libs ;;
    *) echo "fetch-jars: unknown kind $KIND (kafka, activemq or activemq-console)" >&2; exit 2 ;;
esac
[ "$JARS" = . ] && HOME_DIR=$HOME_DIR/libs
DEST=${2:-$HOME_DIR}
MARKER=.fetched-$KIND-$VERSION

if [ -f "$DEST/$MARKER" ] && [ -f "$DEST/$CORE" ]; then
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
    -DoutputDirectory="$TMP/$JARS"

if [ "$KIND" = activemq-console ]; then
    # Jetty serves the console from its unpacked WAR (nothing extracted at each start).
    WAR="$TMP/libs/activemq-web-console-$VERSION.war"
    python3 -m zipfile -e "$WAR" "$TMP/webapp"
    rm "$WAR"
fi
[ -f "$TMP/$CORE" ] || { echo "fetch-jars: $CORE missing after copy" >&2; exit 1; }
touch "$TMP/$MARKER"
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT INT TERM
echo "$KIND $VERSION: $(ls "$DEST/$JARS" | grep -c '\.jar$') jars in $DEST"
