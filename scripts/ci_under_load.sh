#!/usr/bin/env bash
# .ci/run with two busy loops beside it, as on a shared machine: every test's outcome must not
# depend on timing. Exits with .ci/run's status; the busy loops end with it.
set -u
cd "$(dirname "$0")/.."
busy() { while :; do :; done; }
busy & first=$!
busy & second=$!
trap 'kill "$first" "$second" 2>/dev/null' EXIT
.ci/run
