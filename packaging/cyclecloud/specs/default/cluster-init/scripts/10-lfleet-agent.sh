#!/usr/bin/env bash
# CycleCloud cluster-init (spec "default", every node): install lfleet-agent and join the
# cluster's coordinator. Values come from `jetpack config` (cluster template parameters):
#   lfleet.coordinator_url   https://<coordinator host>:7443            (required)
#   lfleet.join_token        the coordinator's join token                (required)
#   lfleet.ca_pem            the coordinator's CA certificate, PEM        (required)
#   lfleet.lustre_version    the AMLFS client version (default 2.15.7-33-g79ddf99)
#   lfleet.role              head, compute or login (default: head on the scheduler node)
#   cyclecloud.node.name     the node name (its certificate's name)
#   cyclecloud.node.template the nodearray (the coordinator's selectors can use it)
# The filesystems themselves come from the coordinator, not from here.
# LFLEET_ROOT (default /) and LFLEET_SKIP_INSTALL=1 let the script run against a test root.
set -euo pipefail
root="${LFLEET_ROOT:-/}"
root="${root%/}"
jet() { jetpack config "$@"; }

url="$(jet lfleet.coordinator_url)"
token="$(jet lfleet.join_token)"
ca="$(jet lfleet.ca_pem)"
version="$(jet lfleet.lustre_version 2.15.7-33-g79ddf99)"
node="$(jet cyclecloud.node.name)"
nodearray="$(jet cyclecloud.node.template "")"
is_scheduler="$(jet slurm.is_scheduler false 2>/dev/null || echo false)"
default_role=compute
[ "$is_scheduler" = "true" ] && default_role=head
role="$(jet lfleet.role "$default_role")"

for value in "$url" "$token" "$ca" "$node"; do
  if [ -z "$value" ]; then
    echo "lfleet: lfleet.coordinator_url, lfleet.join_token, lfleet.ca_pem and the node name are required" >&2
    exit 1
  fi
done
# Values go into TOML strings: refuse anything that could end the string or the line.
for value in "$url" "$token" "$version" "$node" "$nodearray" "$role"; do
  case "$value" in
    *'"'* | *\\* | *$'\n'*) echo "lfleet: a jetpack value holds a quote, backslash or newline: refused" >&2; exit 1 ;;
  esac
done
case "$url" in https://*) ;; *) echo "lfleet: lfleet.coordinator_url must be https://HOST:PORT" >&2; exit 1 ;; esac
case "$role" in head|compute|login) ;; *) echo "lfleet: lfleet.role must be head, compute or login" >&2; exit 1 ;; esac

if [ "${LFLEET_SKIP_INSTALL:-0}" != 1 ]; then
  files="${CYCLECLOUD_SPEC_PATH:-$(dirname "$0")/..}/files"
  if command -v apt-get >/dev/null; then
    apt-get install -y "$files"/lfleet-agent_*.deb
  else
    dnf install -y "$files"/lfleet-agent-*.rpm
  fi
fi

install -d -m 0755 "$root/etc/lfleet"
printf '%s\n' "$ca" >"$root/etc/lfleet/ca.pem"
umask 077
printf '%s\n' "$token" >"$root/etc/lfleet/join-token"
umask 022
tmp="$root/etc/lfleet/agent.toml.tmp"
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
  echo "lfleet: the generated agent.toml was refused; the old one stays" >&2
  rm -f "$tmp"
  exit 1
fi
mv "$tmp" "$root/etc/lfleet/agent.toml"
if [ "$root" = "" ] && [ -d /run/systemd/system ]; then
  systemctl enable --now lfleet-agent.service
fi
echo "lfleet: agent configured for $node ($role) with coordinator $url"
