//! Property tests of fstab ownership: whatever the agent adds, changes or removes, every byte
//! outside its block stays as it was.

use lfleet_mount::{Fstab, FstabEntry};
use proptest::prelude::*;

/// Foreign lines of the kinds real fstabs hold, including the awkward ones.
fn foreign_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("# comment line".to_string()),
        Just(String::new()),
        Just("   ".to_string()),
        Just("\t# indented comment".to_string()),
        Just("LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1".to_string()),
        Just("UUID=7A1B-22C3  /boot/efi       vfat    umask=0077      0       1".to_string()),
        Just("/swapfile none swap sw 0 0".to_string()),
        Just("   10.0.0.4:/sched   /sched nfs  rw,hard,vers=3  0 0  ".to_string()),
        Just("/data/a\\040b /mnt/bind none bind".to_string()),
        Just("10.0.9.9@tcp:/other /other lustre defaults,_netdev 0 0".to_string()),
        Just("/dev/sdb1 /mnt/resource ext4 defaults,nofail,x-systemd.requires=cloud-init.service,comment=cloudconfig 0 2".to_string()),
        "[a-z/ \t#=,.:-]{0,40}".prop_filter("no marker text", |s| !s.contains("lfleet")),
    ]
}

fn foreign_file() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(foreign_line(), 0..12),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline, crlf)| {
            let separator = if crlf { "\r\n" } else { "\n" };
            let mut text = lines.join(separator);
            if final_newline && !text.is_empty() {
                text.push_str(separator);
            }
            text
        })
}

fn managed_entry() -> impl Strategy<Value = FstabEntry> {
    (
        "[a-z]{1,8}",
        prop::sample::select(vec!["10.0.1.4@tcp", "10.0.1.5@tcp:10.0.1.6@tcp"]),
    )
        .prop_map(|(dir, nid)| FstabEntry {
            spec: format!("{nid}:/lustrefs"),
            file: format!("/{dir}"),
            vfstype: "lustre".into(),
            mntops: "defaults,noatime,flock,_netdev,nofail".into(),
            freq: 0,
            passno: 0,
        })
}

fn without_final_newline(text: &str) -> &str {
    text.strip_suffix('\n').unwrap_or(text)
}

proptest! {
    #[test]
    fn foreign_bytes_survive_any_sequence_of_managed_changes(
        original in foreign_file(),
        steps in prop::collection::vec(prop::collection::vec(managed_entry(), 0..4), 1..6),
    ) {
        let mut current = Fstab::parse(&original).unwrap();
        for entries in steps {
            let next = current.with_managed(entries.clone());
            let text = next.render();
            // What the agent wrote parses back to exactly what it meant.
            let reparsed = Fstab::parse(&text).unwrap();
            prop_assert_eq!(reparsed.managed(), entries.as_slice());
            // Every foreign entry is still there, parsed the same.
            prop_assert_eq!(reparsed.foreign(), Fstab::parse(&original).unwrap().foreign());
            // Removing the block leaves the original bytes, with at most a newline added
            // to a last line that had none.
            let stripped = reparsed.with_managed(Vec::new()).render();
            if stripped != original {
                prop_assert_eq!(without_final_newline(&stripped), original.as_str());
            }
            current = reparsed;
        }
    }

    #[test]
    fn parse_never_panics(text in ".{0,400}") {
        let _ = Fstab::parse(&text).map(|fstab| fstab.render());
    }

    #[test]
    fn a_file_without_a_block_renders_unchanged(original in foreign_file()) {
        prop_assert_eq!(Fstab::parse(&original).unwrap().render(), original);
    }
}
