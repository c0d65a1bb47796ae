#!/usr/bin/env bash
# Runs a command as on a machine with only Python, on a machine that has more: in a private
# mount and network namespace (root only) where redis-server, redis-cli and the PostgreSQL
# binaries are hidden and nothing listens on any port (only loopback is up), so Redis and
# PostgreSQL can come only from the bundled PyPI packages. Nothing outside the namespace changes.
#
#   tools/only-python.sh make demo      # after `make setup tools` outside: no network inside
#   tools/only-python.sh make test
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (it uses unshare -m -n)" >&2; exit 2; }
exec unshare --mount --net --propagation private -- bash -euc '
  ip link set lo up
  hide_file=$(mktemp)          # mode 0600: not executable, so PATH look-ups skip it
  for name in redis-server redis-cli redis-sentinel initdb postgres pg_ctl pg_config psql; do
    IFS=: read -ra dirs <<< "$PATH"
    for dir in "${dirs[@]}" /usr/local/bin /usr/bin /usr/sbin /bin /sbin; do
      if [ -e "$dir/$name" ] && [[ "$dir" != *"/.venv/"* ]]; then
        mount --bind "$hide_file" "$dir/$name" 2>/dev/null || true
      fi
    done
  done
  [ -d /usr/lib/postgresql ] && mount -t tmpfs tmpfs /usr/lib/postgresql
  exec "$@"
' only-python "$@"
