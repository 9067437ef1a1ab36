#!/usr/bin/env bash
# scripts/test --sanitize address|thread: builds with the sanitizer in .build-asan / .build-tsan,
# runs the integration tests against those binaries (the harness starts them as child processes,
# which inherit *SAN_OPTIONS), and fails if gateway or gateway-echo left a report in the log directory.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
kind=${1:?"usage: scripts/test --sanitize address|thread [swift test args]"}; shift
case $kind in
    # A small quarantine: the harness adds it to its RSS bounds (Sanitizer in Harness.swift), and
    # ASan's default of 256 MB of freed-but-held memory would leave those bounds meaningless.
    address) scratch=.build-asan; var=ASAN_OPTIONS; opts="detect_leaks=1:quarantine_size_mb=16"
             export LSAN_OPTIONS="suppressions=$ROOT/scripts/lib/lsan.supp:print_suppressions=0" ;;
    thread) scratch=.build-tsan; var=TSAN_OPTIONS; opts="halt_on_error=0" ;;
    *) echo "sanitize: address or thread, not $kind" >&2; exit 2 ;;
esac
logs="$ROOT/$scratch/sanitizer-logs"
rm -rf "$logs"; mkdir -p "$logs"
nice swift build --build-tests --sanitize="$kind" --scratch-path "$scratch"
# Reports go to files named after the process (log_path.PID); the Swift backtracer would read
# ASan-poisoned memory after a report, so it is off.
options="log_path=$logs/report:log_exe_name=1:$opts"
# The harness starts gateway and gateway-echo with these options (Sanitizer.childEnvironment in
# Harness.swift). The test runner gets them with exitcode=0: its own reports (Foundation's Data,
# XCTest; listed below, not counted) would otherwise make `swift test` fail a run whose tests all
# passed. abort_on_error keeps a memory error in the runner fatal (it dies by SIGABRT, not exit 0).
export "$var=$options:exitcode=0:abort_on_error=1" GATEWAY_SANITIZER_OPTIONS="$options" SWIFT_BACKTRACE=enable=no
export GATEWAY_BIN_DIR="$ROOT/$scratch/debug"
# The harness relaxes its memory bounds by what the sanitizer itself costs (Sanitizer in Harness.swift).
export GATEWAY_SANITIZER="$kind"
status=0
[[ $# -gt 0 ]] || set -- --filter IntegrationTests
swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" "$@" || status=$?
# The gateway's and gateway-echo's reports count; the test runner's own (Foundation's Data in
# the harness, XCTest) are listed but do not fail the run: they are not the product.
others=$(find "$logs" -type f ! -name 'report.gateway*' | sort)
[[ -z $others ]] || echo "sanitize ($kind): test-runner reports, not counted: $others" >&2
reports=$(find "$logs" -type f -name 'report.gateway*' | sort)
if [[ -n $reports ]]; then
    echo "sanitize ($kind): $(echo "$reports" | wc -l) report(s):" >&2
    for r in $reports; do echo "== $r" >&2; grep -E "^(WARNING|ERROR|SUMMARY|    #[0-3] )" "$r" | head -12 >&2 || true; done
    exit 1
fi
echo "sanitize ($kind): tests exit $status, no sanitizer report (logs: $logs)"
exit $status
