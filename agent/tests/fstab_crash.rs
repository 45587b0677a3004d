//! A crash while fstab is being replaced leaves the old file or the new one, never a mix,
//! and no temporary file behind: the write path the agent uses (HostRoot::write_atomic) with
//! a crash injected between the fsync of the new content and the rename.

use lfleet_host::HostRoot;
use lfleet_mount::{Fstab, FstabEntry};
use proptest::prelude::*;

fn entry(dir: &str) -> FstabEntry {
    FstabEntry {
        spec: "10.0.1.4@tcp:/lustrefs".into(),
        file: format!("/{dir}"),
        vfstype: "lustre".into(),
        mntops: "defaults,noatime,flock,_netdev,nofail".into(),
        freq: 0,
        passno: 0,
    }
}

proptest! {
    #[test]
    fn a_crash_before_rename_keeps_the_old_fstab_and_a_finished_write_has_the_new_one(
        foreign in prop::collection::vec("[A-Za-z0-9=/ \t#,.:-]{0,50}", 0..10),
        old_dirs in prop::collection::vec("[a-z]{1,6}", 0..3),
        new_dirs in prop::collection::vec("[a-z]{1,6}", 0..3),
        crash in any::<bool>(),
    ) {
        let base = foreign.join("\n");
        prop_assume!(!base.contains("lfleet"));
        let original = Fstab::parse(&base).unwrap();
        let old = original.with_managed(old_dirs.iter().map(|d| entry(d)).collect()).render();
        let new = original.with_managed(new_dirs.iter().map(|d| entry(d)).collect()).render();
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("etc", 0o755).unwrap();
        host.write_atomic("etc/fstab", old.as_bytes(), 0o644).unwrap();
        let result = host.write_atomic_with("etc/fstab", new.as_bytes(), 0o644, |_| {
            if crash { Err(std::io::Error::other("injected crash")) } else { Ok(()) }
        });
        let on_disk = host.read_to_string("etc/fstab").unwrap();
        if crash {
            prop_assert!(result.is_err());
            prop_assert_eq!(&on_disk, &old);
        } else {
            prop_assert!(result.is_ok());
            prop_assert_eq!(&on_disk, &new);
        }
        prop_assert_eq!(host.list_dir("etc").unwrap(), vec![std::ffi::OsString::from("fstab")]);
    }
}
