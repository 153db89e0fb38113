#!/usr/bin/env bash
# Installs what the integration tests, the demo and the benchmark need from Debian's packages:
# Dovecot (IMAP + POP3), openssl, and a compiler toolchain for better-sqlite3. Installs only
# what is missing; keeps the packaged Dovecot service from starting (we run private instances).
# Used by .ci/run and by `npm run demo`. Needs root.
set -euo pipefail
section() { printf '\n=== %s  [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: needs root (apt-get). Install by hand: apt-get install dovecot-imapd dovecot-pop3d openssl" >&2
  exit 2
fi
packages=()
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || packages+=(dovecot-core dovecot-imapd)
[ -x /usr/lib/dovecot/pop3 ] || packages+=(dovecot-pop3d)
installing_dovecot=no
[ "${#packages[@]}" -gt 0 ] && installing_dovecot=yes
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
command -v useradd >/dev/null 2>&1 || [ -x /usr/sbin/useradd ] || packages+=(passwd)
# better-sqlite3 falls back to compiling from source when no prebuilt binary can be fetched.
command -v make >/dev/null 2>&1 || packages+=(make)
command -v g++ >/dev/null 2>&1 || packages+=(g++)
command -v python3 >/dev/null 2>&1 || packages+=(python3)

if [ "${#packages[@]}" -gt 0 ]; then
  section "apt-get install ${packages[*]}"
  # Keep the packaged dovecot.service from starting: the tests never use it. If a policy-rc.d
  # already exists, it is left alone.
  policy=/usr/sbin/policy-rc.d
  created_policy=no
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=yes
  fi
  cleanup_policy() { if [ "$created_policy" = yes ]; then rm -f "$policy"; fi; }
  trap cleanup_policy EXIT

  export DEBIAN_FRONTEND=noninteractive
  for attempt in 1 2 3; do
    if apt-get update -q; then break; fi
    [ "$attempt" -eq 3 ] && { echo "apt-get update failed" >&2; exit 1; }
    sleep 5
  done
  apt-get install -y -q --no-install-recommends "${packages[@]}"

  cleanup_policy
  trap - EXIT
  # If the service started anyway (no policy-rc.d support), stop the one we just installed.
  # Not fatal: it listens on the standard ports, the tests use their own high ports.
  if [ "$installing_dovecot" = yes ] && command -v systemctl >/dev/null 2>&1; then
    for unit in dovecot.socket dovecot.service; do
      if systemctl is-active --quiet "$unit" 2>/dev/null; then
        systemctl stop "$unit" 2>/dev/null || echo "note: could not stop $unit (ignored)"
      fi
    done
  fi
fi

