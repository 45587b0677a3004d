#!/usr/bin/env bash
# CycleCloud cluster-init (spec "default", every node): install lfleet-agent and join the
# cluster's coordinator. The coordinator's URL, CA and join token come from the cluster's
# shared /sched/<cluster>/lfleet directory, where the scheduler's coordinator spec published
# them (this waits for them, at most lfleet.wait_seconds, default 600); jetpack values
# lfleet.coordinator_url, lfleet.ca_pem and lfleet.join_token override them.
#   slurm.role               scheduler, login or execute (set by cyclecloud-slurm): the
#                            lfleet role head, login or compute; lfleet.role overrides it
#   cyclecloud.node.name     the node's name: its certificate's and its Slurm node's name
#                            (cyclecloud-slurm starts slurmd with -N and this name)
#   cyclecloud.node.template the nodearray (the coordinator's selectors can use it)
#   lfleet.lustre_version    the AMLFS client version (default 2.15.7-33-g79ddf99)
# The filesystems themselves come from the coordinator. Every value is checked before
# anything is written, the generated agent.toml is checked by `lfleet-agent plan` before it
# replaces the old one, and the join token is never printed. Debian-family nodes install the
# .deb, RHEL-family and Azure Linux nodes the RPM for their release.
# LFLEET_ROOT (default /) and LFLEET_SKIP_INSTALL=1 let the script run against a test root.
set -euo pipefail
root="${LFLEET_ROOT:-/}"
root="${root%/}"
jet() { jetpack config "$@"; }
fail() {
  echo "lfleet: $*" >&2
  exit 1
}

cluster="$(jet cyclecloud.cluster.name)"
node="$(jet cyclecloud.node.name "")"
nodearray="$(jet cyclecloud.node.template "")"
version="$(jet lfleet.lustre_version 2.15.7-33-g79ddf99)"
wait_seconds="$(jet lfleet.wait_seconds 600)"
case "$(jet slurm.role "")" in
  scheduler) default_role=head ;;
  login) default_role=login ;;
  *) default_role=compute ;;
esac
role="$(jet lfleet.role "$default_role")"

[ -n "$cluster" ] || fail "cyclecloud.cluster.name is empty"
[ -n "$node" ] || fail "cyclecloud.node.name is empty: the node has no name to enroll with"
case "$role" in head | compute | login) ;; *) fail "lfleet.role must be head, compute or login" ;; esac
[[ $wait_seconds =~ ^[0-9]{1,5}$ ]] || fail "lfleet.wait_seconds must be a number of seconds"
shared_name="$(printf '%s' "$cluster" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9-]/-/g')"
shared="$root/sched/$shared_name/lfleet"

# The coordinator's URL, CA and token: jetpack first, else what the scheduler published.
url="$(jet lfleet.coordinator_url "")"
ca="$(jet lfleet.ca_pem "")"
token="$(jet lfleet.join_token "")"
if [ -z "$url" ] || [ -z "$ca" ] || [ -z "$token" ]; then
  waited=0
  until [ -s "$shared/coordinator-url" ] && [ -s "$shared/ca.pem" ] && [ -s "$shared/join-token" ]; do
    if [ "$waited" -ge "$wait_seconds" ]; then
      fail "no coordinator published in /sched/$shared_name/lfleet after $wait_seconds s (is the scheduler's lfleet:coordinator spec running?), and no lfleet.coordinator_url, lfleet.ca_pem and lfleet.join_token"
    fi
    sleep 2
    waited=$((waited + 2))
  done
  [ -n "$url" ] || url="$(head -n 1 "$shared/coordinator-url")"
  [ -n "$ca" ] || ca="$(cat "$shared/ca.pem")"
  [ -n "$token" ] || token="$(head -n 1 "$shared/join-token")"
fi

# Values go into TOML strings: refuse anything that could end the string or the line.
for value in "$url" "$token" "$version" "$node" "$nodearray" "$role"; do
  case "$value" in
    *'"'* | *\\* | *$'\n'* | *$'\r'*) fail "a jetpack value holds a quote, backslash or newline: refused" ;;
  esac
done
case "$url" in https://*) ;; *) fail "lfleet.coordinator_url must be https://HOST:PORT" ;; esac
case "$ca" in *"BEGIN CERTIFICATE"*) ;; *) fail "the coordinator CA is not a PEM certificate" ;; esac
[ "${#token}" -ge 16 ] || fail "the join token is shorter than 16 characters"

if [ "${LFLEET_SKIP_INSTALL:-0}" != 1 ]; then
  # The package for this node's distribution, read from its os-release: Debian and Ubuntu
  # take the .deb, the RHEL family and Azure Linux the RPM built for their release.
  files="${CYCLECLOUD_SPEC_PATH:-$(dirname "$0")/..}/files"
  [ -r "$root/etc/os-release" ] || fail "$root/etc/os-release is missing: unknown distribution"
  # shellcheck disable=SC1091
  . "$root/etc/os-release"
  case " ${ID:-} ${ID_LIKE:-} " in
    *" debian "* | *" ubuntu "*)
      package="$(ls "$files"/lfleet-agent_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n 1 || true)"
      [ -n "$package" ] || fail "no lfleet-agent .deb in $files"
      apt-get install -y "$package"
      ;;
    *)
      case "${ID:-}:${VERSION_ID%%.*}" in
        azurelinux:3) dist=azl3 ;;
        *:8) dist=el8 ;;
        *:9) dist=el9 ;;
        *) fail "no lfleet RPM for ${PRETTY_NAME:-this distribution}" ;;
      esac
      package="$(ls "$files"/lfleet-agent-*."$dist".*.rpm 2>/dev/null | head -n 1 || true)"
      [ -n "$package" ] || fail "no lfleet-agent RPM for $dist in $files"
      if command -v dnf >/dev/null; then
        dnf install -y "$package"
      elif command -v tdnf >/dev/null; then
        tdnf install -y "$package"
      else
        rpm -Uvh "$package"
      fi
      ;;
  esac
fi

install -d -m 0755 "$root/etc/lfleet"
tmp="$root/etc/lfleet/agent.toml.new"
cat >"$tmp" <<TOML
# Written by the lfleet CycleCloud cluster-init project; the filesystems come from the
# coordinator at $url.
generation = 1
role = "$role"

[client]
lustre_version = "$version"

[coordinator]
url = "$url"
ca_file = "/etc/lfleet/ca.pem"
join_token_file = "/etc/lfleet/join-token"
node_name = "$node"
nodearray = "$nodearray"
TOML
# The agent validates the file before it replaces the old one.
if ! lfleet-agent plan --root "$root/" --config "$tmp" >/dev/null; then
  rm -f "$tmp"
  fail "the generated agent.toml was refused; the old one stays"
fi
# A node joining a coordinator for the first time forgets the desired state it accepted from
# its own file (the package's inert one, or an administrator's): from now on the ledger holds
# what the coordinator pushes, and generations from two sources never meet in it.
if ! grep -qs '^\[coordinator\]' "$root/etc/lfleet/agent.toml"; then
  if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl stop lfleet-agent.service
  fi
  rm -f "$root/var/lib/lfleet/desired.json"
fi
printf '%s\n' "$ca" >"$root/etc/lfleet/.ca.pem.new"
mv "$root/etc/lfleet/.ca.pem.new" "$root/etc/lfleet/ca.pem"
(umask 077 && printf '%s\n' "$token" >"$root/etc/lfleet/.join-token.new")
mv "$root/etc/lfleet/.join-token.new" "$root/etc/lfleet/join-token"
mv "$tmp" "$root/etc/lfleet/agent.toml"
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl enable lfleet-agent.service
  # restart, not `enable --now`: the package already started it with the inert config.
  systemctl restart lfleet-agent.service
fi
echo "lfleet: agent configured for $node ($role) with coordinator $url"
