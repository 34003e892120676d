#!/usr/bin/env bash
# Builds the solution and runs every test project; ends with a plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
# The cluster tests run on PostgreSQL too: prepare it unless a server is already given.
if [ -z "${BROKER_TEST_PG:-}" ]; then
  if ! BROKER_TEST_PG="$(scripts/postgres.sh)" || [ -z "$BROKER_TEST_PG" ]; then
    echo "PostgreSQL could not be set up (scripts/postgres.sh); the cluster tests need it" >&2
    exit 1
  fi
  export BROKER_TEST_PG
fi
# The security tests run Debian's mosquitto_passwd, mosquitto_pub and mosquitto_sub.
scripts/test-tools.sh || exit 1
dotnet build Cluster.sln -c Release -warnaserror --nologo -v quiet || exit 1
run() {
  dotnet test "$1" -c Release --no-build --nologo --logger "trx" --logger "console;verbosity=normal" --results-directory "$results" "${@:2}"
}
# Unit and single-node tests first (projects in parallel), then the cluster tests alone: their node
# processes and failure detectors should not compete with other test processes for the two cores.
run Cluster.sln --filter "FullyQualifiedName!~Broker.Cluster.Tests" "$@"
status=$?
run tests/Cluster.Tests/Broker.Cluster.Tests.csproj "$@"
status=$(( status > 0 ? status : $? ))
grep -hoE '(chaos|hostile): [^<&]*' "$results"/*.trx 2>/dev/null | sort -u
passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters"); f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  # A skipped xUnit test is a result with outcome NotExecuted; the trx counters leave it out.
  n=$(grep -o '<UnitTestResult [^>]*outcome="NotExecuted"' "$trx" | wc -l)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${n:-0}))
done
# Name each failed test and its message (up to 60 lines: a node's exit carries the end of its log), so the end of
# the log says what broke.
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  awk '
    /<UnitTestResult / { name = ""; failed = 0
      if (match($0, /testName="[^"]*"/)) name = substr($0, RSTART + 10, RLENGTH - 11)
      if ($0 ~ /outcome="Failed"/) { failed = 1; print "FAILED: " name } }
    failed && /<Message>/ { inmsg = 1; lines = 0; sub(/.*<Message>/, "") }
    inmsg { done = sub(/<\/Message>.*/, ""); if (lines++ < 60) print "  " substr($0, 1, 400); if (done) { inmsg = 0; failed = 0 } }
  ' "$trx"
done
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit $status
