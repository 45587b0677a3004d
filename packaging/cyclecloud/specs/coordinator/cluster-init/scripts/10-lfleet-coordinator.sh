#!/usr/bin/env bash
# CycleCloud cluster-init (spec "coordinator", on the Slurm scheduler): install
# lfleet-coordinator, write its configuration from jetpack values, (re)start it, and publish
# its CA, join token and URL in the cluster's shared /sched/<cluster>/lfleet directory, the
# way cyclecloud-slurm shares the munge key, so every node joins with no manual paste.
#   lfleet.mgs_nids, lfleet.fsname, lfleet.mount_point    the AMLFS filesystem (mgs_nids required)
#   lfleet.lustre_version                                 (default 2.15.7-33-g79ddf99)
#   lfleet.slurm_drains                                   true to let lfleet drain (default false)
#   lfleet.port                                           (default 7443)
#   cyclecloud.cluster.name, hostname, ipaddress          from CycleCloud (the certificate names
#                                                         the scheduler's hostname and address)
# Every value is checked before anything is written, the generated file is checked by
# `lfleet-coordinator check-config` before it replaces the old one, and the join token is
# never printed. LFLEET_ROOT (default /) and LFLEET_SKIP_INSTALL=1 are for tests.
set -euo pipefail
root="${LFLEET_ROOT:-/}"
root="${root%/}"
jet() { jetpack config "$@"; }
fail() {
  echo "lfleet: $*" >&2
  exit 1
}

role="$(jet slurm.role "")"
if [ -n "$role" ] && [ "$role" != scheduler ]; then
  echo "lfleet: slurm.role is $role; the coordinator runs on the scheduler: nothing to do"
  exit 0
fi
cluster="$(jet cyclecloud.cluster.name)"
mgs="$(jet lfleet.mgs_nids "")"
fsname="$(jet lfleet.fsname lustrefs)"
point="$(jet lfleet.mount_point /lustre)"
version="$(jet lfleet.lustre_version 2.15.7-33-g79ddf99)"
drains="$(jet lfleet.slurm_drains false | tr '[:upper:]' '[:lower:]')"
port="$(jet lfleet.port 7443)"
host="$(jet hostname "$(hostname)")"
address="$(jet ipaddress "$(hostname -I 2>/dev/null | awk '{print $1}')")"

[ -n "$cluster" ] || fail "cyclecloud.cluster.name is empty"
[ -n "$mgs" ] || fail "lfleet.mgs_nids is required (the AMLFS MGS address, e.g. 10.0.1.4@tcp)"
# Values go into TOML strings: refuse anything that could end the string or the line.
for value in "$mgs" "$fsname" "$point" "$version" "$host" "$address"; do
  case "$value" in
    *'"'* | *\\* | *$'\n'* | *$'\r'*) fail "a jetpack value holds a quote, backslash or newline: refused" ;;
  esac
done
[[ $mgs =~ ^[A-Za-z0-9.@:,_-]+$ ]] || fail "lfleet.mgs_nids \"$mgs\" is not a list of NIDs (10.0.1.4@tcp)"
case "$drains" in true | false) ;; *) fail "lfleet.slurm_drains must be true or false" ;; esac
[[ $port =~ ^[0-9]{1,5}$ ]] && ((port >= 1 && port <= 65535)) || fail "lfleet.port \"$port\" is not a TCP port"
[[ $host =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] || fail "hostname \"$host\" is not a host name"
[[ $address =~ ^[0-9A-Fa-f.:]+$ ]] || fail "ipaddress \"$address\" is not an IP address"
# cyclecloud-slurm's name for the cluster's shared directory: lower case, anything but
# letters, digits and '-' made '-'.
shared_name="$(printf '%s' "$cluster" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9-]/-/g')"
shared="$root/sched/$shared_name/lfleet"
[ -d "$root/sched" ] || fail "$root/sched is not there: the scheduler's shared directory is missing"

if [ "${LFLEET_SKIP_INSTALL:-0}" != 1 ]; then
  # The package for this node's distribution, read from its os-release: Debian and Ubuntu
  # take the .deb, the RHEL family and Azure Linux the RPM built for their release.
  files="${CYCLECLOUD_SPEC_PATH:-$(dirname "$0")/..}/files"
  [ -r "$root/etc/os-release" ] || fail "$root/etc/os-release is missing: unknown distribution"
  # shellcheck disable=SC1091
  . "$root/etc/os-release"
  case " ${ID:-} ${ID_LIKE:-} " in
    *" debian "* | *" ubuntu "*)
      package="$(ls "$files"/lfleet-coordinator_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n 1 || true)"
      [ -n "$package" ] || fail "no lfleet-coordinator .deb in $files"
      apt-get install -y "$package"
      ;;
    *)
      case "${ID:-}:${VERSION_ID%%.*}" in
        azurelinux:3) dist=azl3 ;;
        *:8) dist=el8 ;;
        *:9) dist=el9 ;;
        *) fail "no lfleet RPM for ${PRETTY_NAME:-this distribution}" ;;
      esac
      package="$(ls "$files"/lfleet-coordinator-*."$dist".*.rpm 2>/dev/null | head -n 1 || true)"
      [ -n "$package" ] || fail "no lfleet-coordinator RPM for $dist in $files"
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
tmp="$root/etc/lfleet/coordinator.toml.new"
cat >"$tmp" <<TOML
# Written by the lfleet CycleCloud cluster-init project (spec coordinator) for cluster
# "$shared_name"; nodes find the CA, join token and URL in /sched/$shared_name/lfleet.
[server]
listen = "0.0.0.0:$port"
server_names = ["$host", "$address", "localhost", "127.0.0.1"]

[client]
lustre_version = "$version"

[[filesystems]]
name = "amlfs"
mgs_nids = "$mgs"
fsname = "$fsname"
mount_point = "$point"
options = ["noatime", "flock"]

[slurm]
enabled = $drains
TOML
if ! lfleet-coordinator --config "$tmp" check-config >/dev/null; then
  rm -f "$tmp"
  fail "the generated coordinator.toml was refused; the old one stays"
fi
mv "$tmp" "$root/etc/lfleet/coordinator.toml"

ca="$root/var/lib/lfleet-coordinator/ca.pem"
token="$root/etc/lfleet/join-token"
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl enable lfleet-coordinator.service
  # restart, not `enable --now`: the package already started it with the inert config.
  systemctl restart lfleet-coordinator.service
  # Publish only once it answers, so nodes that find the URL can enroll at once.
  for _ in $(seq 60); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "the coordinator does not answer on port $port after 60 s (journalctl -u lfleet-coordinator)"
  # The coordinator keeps its desired state in its store (the file only seeds an empty one,
  # and the package's first start stored the inert one): make the filesystems written above
  # its running configuration, a new generation pushed to every node.
  lfleet config apply --wait 0 "$root/etc/lfleet/coordinator.toml" >/dev/null ||
    fail "lfleet config apply refused the generated configuration"
fi
for _ in $(seq 60); do
  [ -s "$ca" ] && [ -s "$token" ] && break
  sleep 1
done
[ -s "$ca" ] && [ -s "$token" ] || fail "the coordinator made no CA ($ca) or join token ($token) within 60 s"

# Publish: each file written beside its final name and renamed, the token readable by root only.
install -d -m 0755 "$shared"
cp "$ca" "$shared/.ca.pem.new" && chmod 0644 "$shared/.ca.pem.new" && mv "$shared/.ca.pem.new" "$shared/ca.pem"
(umask 077 && cp "$token" "$shared/.join-token.new") && chmod 0600 "$shared/.join-token.new" &&
  mv "$shared/.join-token.new" "$shared/join-token"
printf 'https://%s:%s\n' "$address" "$port" >"$shared/.coordinator-url.new"
mv "$shared/.coordinator-url.new" "$shared/coordinator-url"
echo "lfleet: coordinator at https://$address:$port (certificate for $host and $address); CA, join token and URL published in /sched/$shared_name/lfleet"
