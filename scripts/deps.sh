# deps.sh - sourced by the scripts: installs what building ep-engine needs on
# Debian when it is missing (as root, with apt-get), or says what to install.
# Packages: the build (meson, ninja, pkg-config, a C compiler), check
# (conformance and unit tests), jansson (the engine and kvhost), libevent and
# OpenSSL's libssl and libcrypto (kvhost). Callers may ask for more by name (the host tests' real
# clients).

ep_need_packages() {
    local missing=()
    command -v meson >/dev/null 2>&1 || missing+=(meson)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    pkg-config --exists check 2>/dev/null || missing+=(check)
    pkg-config --exists libevent_pthreads 2>/dev/null || missing+=(libevent-dev)
    pkg-config --exists jansson 2>/dev/null || missing+=(libjansson-dev)
    pkg-config --exists libcrypto libssl 2>/dev/null || missing+=(libssl-dev)
    missing+=("$@")
    local really=()
    for p in "${missing[@]}"; do
        case "$p" in
        meson | ninja-build | pkg-config | gcc | check | libevent-dev | libjansson-dev | libssl-dev)
            really+=("$p") ;;
        *) dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            really+=("$p") ;;
        esac
    done
    [ ${#really[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing: ${really[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null &&
            apt-get install -y -qq --no-install-recommends "${really[@]}" >/dev/null || {
            echo "apt-get install ${really[*]} failed" >&2
            return 1
        }
    else
        echo "missing: ${really[*]}" >&2
        echo "install them with: sudo apt-get install ${really[*]}" >&2
        return 1
    fi
}

# ep_need_node: Node.js and npm (the Couchbase SDK's tests and benchmark),
# then the SDK itself in testsuite/sdk, pinned by its package-lock.json and
# installed from the npm registry (its native binary included). npm install
# --no-save, not npm ci: the registry has no Windows binary for the pinned
# release, so the lock cannot list it, and npm ci refuses a lock that lacks
# an optional package; npm install takes the lock's versions and integrity
# as they are and leaves the lock untouched.
ep_need_node() {
    local missing=()
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    ep_need_packages "${missing[@]}" || return 1
    if [ ! -d testsuite/sdk/node_modules/couchbase ] ||
        [ testsuite/sdk/package-lock.json -nt testsuite/sdk/node_modules ]; then
        echo "== npm install (testsuite/sdk, pinned by package-lock.json)"
        (cd testsuite/sdk && npm install --no-save --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

# ep_build DIR [meson options...]: configures (once) and builds DIR.
ep_build() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || {
            cat "$dir.setup.log" >&2
            return 1
        }
    fi
    ninja -C "$dir" >"$dir.build.log" 2>&1 || {
        cat "$dir.build.log" >&2
        return 1
    }
}
