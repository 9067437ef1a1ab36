# shellcheck shell=bash
# Sourced by scripts/bench and scripts/allocs (from the repository root, after lib/common.sh).
# build_baseline REV: sets baseline_bin to a release `gateway` built from REV. The build runs in a
# detached worktree under /tmp that is removed afterwards; the binary is kept under
# /tmp/gw-baseline-bin/<commit>-<toolchain hash>/ so a second run against the same revision
# does not build it again.
build_baseline() {
    local rev="$1" sha toolchain out wt
    sha="$(git rev-parse --verify --quiet "$rev^{commit}")" || { echo "--baseline-rev: unknown revision $rev" >&2; exit 2; }
    toolchain="$(swift --version 2>/dev/null | sha256sum | cut -c1-12)"
    out="/tmp/gw-baseline-bin/$sha-$toolchain"
    if [[ -x "$out/gateway" ]]; then
        echo "baseline: $rev = $sha, built before: $out/gateway" >&2
        baseline_bin="$out/gateway"; return
    fi
    wt="$(mktemp -d /tmp/gw-baseline-XXXXXX)"
    # Removed however the build ends (the trap is replaced once it has run).
    # (SwiftPM also leaves lock files named after the build folder in /tmp.)
    cleanup_baseline="git worktree remove --force '$wt/src' >/dev/null 2>&1 || true; rm -rf '$wt' /tmp/${wt//\//_}_src_*; git worktree prune"
    # shellcheck disable=SC2064  # expanded now on purpose: $wt is local to this function
    trap "$cleanup_baseline" EXIT
    echo "baseline: building $rev = $sha in $wt/src" >&2
    git worktree add --detach --quiet "$wt/src" "$sha" >&2
    (cd "$wt/src" && swift build -c release --product gateway >&2)
    mkdir -p "$out"
    cp "$(cd "$wt/src" && swift build -c release --show-bin-path)/gateway" "$out/gateway.tmp"
    mv "$out/gateway.tmp" "$out/gateway"
    eval "$cleanup_baseline"
    trap - EXIT
    # shellcheck disable=SC2034  # read by the script that sources this file
    baseline_bin="$out/gateway"
}
