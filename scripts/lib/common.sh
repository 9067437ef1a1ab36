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

# The Debian 12 security build of libnghttp2 with the Rapid Reset (CVE-2023-44487), CONTINUATION
# flood (CVE-2024-28182) and CVE-2026-27135 fixes; GatewayHTTP2 relies on the options they added.
NGHTTP2_MIN_VERSION="1.52.0-1+deb12u3"

# The build's own dependencies (OpenSSL 3, zlib and nghttp2 headers, pkg-config for the
# system-library targets) and the command-line tools the scripts and tests use (nghttp, h2load).
ensure_build_deps() {
    ensure_packages libssl-dev zlib1g-dev libnghttp2-dev libcjose-dev libjansson-dev nghttp2-client pkg-config openssl curl ca-certificates
    local v
    v=$(dpkg-query -W -f='${Version}' libnghttp2-14 2>/dev/null || true)
    if [[ -z $v ]] || ! dpkg --compare-versions "$v" ge "$NGHTTP2_MIN_VERSION"; then
        echo "libnghttp2-14 ${v:-not installed} is older than $NGHTTP2_MIN_VERSION (needed for its rapid-reset and CONTINUATION-flood limits): apt-get install --only-upgrade libnghttp2-14 libnghttp2-dev" >&2
        exit 1
    fi
    command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6 (https://www.swift.org/install/linux/)" >&2; exit 1; }
}

# ensure_pip_packages MODULE...: pip-installs the Python packages python3 cannot import yet (the
# frame-level HTTP/2 test client Tests/IntegrationTests/h2client.py uses h2, hyperframe, hpack).
# Debian's python3 is "externally managed" (PEP 668): without a venv pip needs the override.
ensure_pip_packages() {
    local missing=()
    command -v python3 >/dev/null || ensure_packages python3
    # MODULE=PACKAGE when the names differ (jwt=pyjwt: "pip install jwt" is another project).
    for p in "$@"; do python3 -c "import ${p%%=*}" 2>/dev/null || missing+=("${p#*=}"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    echo "pip installing: ${missing[*]}" >&2
    python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
    python3 -m pip install --quiet "${missing[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${missing[@]}"
}
