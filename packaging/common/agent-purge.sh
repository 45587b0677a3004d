# lfleet-agent's purge (shared by the .deb postrm on purge and the RPM %postun on erase;
# packaging/deb/build.sh and packaging/rpm/lfleet.spec paste it in). Leaves nothing of
# lfleet: the slurmd drop-in it wrote, its fstab block (each mount in it unmounted first; if
# one cannot be unmounted the block stays and this says so), the repository files it created
# (and only those: they carry its name), its state and what cluster-init wrote. $root is the
# root being changed ("" for /). The node's own fstab lines are kept byte for byte.
fstab="$root/etc/fstab"
begin='# BEGIN lfleet-agent managed Lustre mounts'
end='# END lfleet-agent managed Lustre mounts'
rm -f "$root/etc/systemd/system/slurmd.service.d/lfleet-mounts.conf"
rmdir "$root/etc/systemd/system/slurmd.service.d" 2>/dev/null || true
if [ -f "$fstab" ] && grep -q "^$begin" "$fstab"; then
  stuck=""
  for point in $(sed -n "/^$begin/,/^$end/{/^#/d;p}" "$fstab" | awk '{print $2}'); do
    if mountpoint -q "$root$point" 2>/dev/null; then
      umount "$root$point" || stuck="$stuck $point"
    fi
  done
  if [ -n "$stuck" ]; then
    echo "lfleet-agent: could not unmount$stuck; its fstab lines stay until they are unmounted" >&2
  else
    tmp="$fstab.lfleet-purge"
    sed "/^$begin/,/^$end/d" "$fstab" >"$tmp"
    chmod --reference="$fstab" "$tmp" 2>/dev/null || true
    mv "$tmp" "$fstab"
  fi
fi
# The copy of the previous fstab the agent keeps at every write.
rm -f "$root/etc/fstab.lfleet-backup"
rm -f "$root/etc/apt/sources.list.d/lfleet-amlfs.list" "$root"/etc/apt/keyrings/lfleet-amlfs.* \
      "$root/etc/yum.repos.d/lfleet-amlfs.repo" "$root"/etc/pki/rpm-gpg/lfleet-amlfs.*
rm -rf "$root/var/lib/lfleet" "$root/run/lfleet"
rm -f "$root/etc/lfleet/ca.pem" "$root/etc/lfleet/join-token" "$root"/etc/lfleet/agent.toml.*
rmdir "$root/etc/lfleet" 2>/dev/null || true
