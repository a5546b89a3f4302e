#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run).
#
# 1. Installs what the integration tests need and the repo cannot carry:
#    nginx (Debian package), and a Python virtualenv at .venv with the
#    frameworks in tests/requirements.txt (recreated when that file changes).
# 2. Checks formatting and lints, then runs every test.
#
# Works as root on a fresh Debian 12 with Rust and CPython (python3 on PATH);
# re-running it is cheap: nothing is installed twice.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

say() { printf '==> %s\n' "$*" >&2; }

# nginx with the uwsgi, SCGI and proxy modules (all built in by default;
# a build configured --without one of them does not do).
nginx_bin() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}

nginx_usable() {
    local bin
    bin=$(nginx_bin)
    [ -n "$bin" ] || return 1
    ! "$bin" -V 2>&1 | grep -Eq -- '--without-http_(uwsgi|scgi|proxy)_module'
}

apt_install() {
    # The package would start a system nginx on port 80; the tests run their
    # own. Keep services from starting (as Docker images do) unless a policy
    # is already in place, and undo that afterwards.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        </dev/null >/dev/null || status=$?
    if [ "$made_policy" = 1 ]; then
        rm -f "$policy"
    fi
    return "$status"
}

ensure_nginx() {
    if nginx_usable; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "nginx (with the uwsgi, scgi and proxy modules) is missing; install it as root" >&2
        exit 1
    fi
    say "installing nginx"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null
    if [ -z "$(nginx_bin)" ]; then
        apt_install nginx-light || say "nginx-light did not install; trying nginx"
    fi
    if ! nginx_usable; then
        apt_install nginx
    fi
    nginx_usable || { echo "no usable nginx after installing it" >&2; exit 1; }
}

# tmux runs uwsgitop in a pseudo-terminal for tests/stats.rs.
ensure_tmux() {
    command -v tmux >/dev/null 2>&1 && return
    if [ "$(id -u)" != 0 ]; then
        echo "tmux is missing; install it as root" >&2
        exit 1
    fi
    say "installing tmux"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null
    apt_install tmux
}

# .venv with tests/requirements.txt, keyed by a hash of that file and of
# the Python that made it.
ensure_venv() {
    local venv=$repo/.venv stamp=$repo/.venv/.requirements.sha256 want
    want=$( { python3 -c 'import sys; print(sys.version)'; cat "$repo/tests/requirements.txt"; } \
        | sha256sum | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && "$venv/bin/python" -c 'pass' 2>/dev/null; then
        return
    fi
    say "creating .venv from tests/requirements.txt"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q -r "$repo/tests/requirements.txt"
    echo "$want" >"$stamp"
}

ensure_nginx
ensure_tmux
ensure_venv
export RWSGI_TEST_VENV=$repo/.venv
RWSGI_TEST_NGINX=$(nginx_bin)
export RWSGI_TEST_NGINX

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --all-targets -- -D warnings
say "cargo test"
cargo test --all-targets
# Each codec's fuzz target, from the checked-in seeds, for a bounded time
# (RWSGI_FUZZ_SECONDS, default 60 each; 0 skips them, for quick local runs).
fuzz_seconds=${RWSGI_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != 0 ]; then
    say "fuzzing each codec for ${fuzz_seconds} s"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi
