#!/usr/bin/env bash
# The side-by-side benchmark in one command (see bench/README.md):
#
#   bench/run.sh                 # every scenario, every server, 3 x 20 s runs
#   bench/run.sh --quick         # 5 s runs, 1 repetition (~10 minutes)
#   bench/run.sh --scenarios hello-c64,flask-hello --servers rwsgi,uwsgi --duration 10 --repeat 5
#
# 1. Builds rwsgi in release mode (cargo build --release).
# 2. Installs wrk, nginx-light and libev-dev with apt-get if one is missing.
# 3. Creates bench/.venv with the peers and frameworks from PyPI: uWSGI,
#    Gunicorn, Granian, bjoern, Pyruvate, Flask, Django. A peer that fails to
#    build or install is logged and left out; the others still run.
# 4. Runs bench/bench.py with every argument given here; it writes
#    bench/results/<date>/ and updates bench/latest.md and bench/latest.svg.
#
# Traffic goes to 127.0.0.1 and Unix sockets only. Works as root on Debian 12
# with Rust and CPython 3 on PATH; re-running it installs nothing twice.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
venv="$repo/bench/.venv"

say() { printf '==> %s\n' "$*" >&2; }

case " $* " in
*" --help "* | *" -h "*)
    exec python3 "$repo/bench/bench.py" --help
    ;;
esac

say "building rwsgi (release)"
cargo build --release --quiet

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -e /usr/include/ev.h ] || missing+=(libev-dev)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt-get)"
    # Keep the nginx package from starting a system nginx on port 80.
    policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    [ "$made_policy" = 1 ] && rm -f "$policy"
fi

if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
fi
# Frameworks first (every server needs them), then each peer on its own so
# that one failing build does not keep the others out.
"$venv/bin/pip" install -q flask django
for peer in uwsgi gunicorn granian bjoern pyruvate; do
    if ! "$venv/bin/pip" install -q "$peer" >"$venv/pip-$peer.log" 2>&1; then
        say "WARNING: $peer failed to install (see $venv/pip-$peer.log); benchmarking without it"
    fi
done

say "running bench/bench.py $*"
exec python3 "$repo/bench/bench.py" "$@"
