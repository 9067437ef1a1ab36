# Shared by the scripts: repo root, and installing missing Debian packages.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# ensure_packages PKG...: installs the packages dpkg does not know yet (apt-get update first).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The build's own dependencies (OpenSSL 3 and zlib headers, pkg-config for the system-library target)
# and the command-line tools the scripts and tests use.
ensure_build_deps() {
    ensure_packages libssl-dev zlib1g-dev pkg-config openssl curl ca-certificates
    command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6 (https://www.swift.org/install/linux/)" >&2; exit 1; }
}
