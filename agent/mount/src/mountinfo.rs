//! `/proc/self/mountinfo` parsing (proc(5)), with the kernel's octal escapes decoded.
//!
//! Entry points: [`parse_mountinfo`], [`MountInfo`]. A malformed line is an error naming its
//! line number: an agent that cannot read the mount table must not conclude that a mount is
//! absent.

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u64,
    pub parent_id: u64,
    /// `major:minor` of the device.
    pub device: String,
    /// The root of the mount within its filesystem.
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// Optional fields (`shared:1`, `master:2`).
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options (`rw,flock,lazystatfs`).
    pub super_options: String,
}

impl MountInfo {
    /// The union of per-mount and per-superblock options.
    pub fn options(&self) -> impl Iterator<Item = &str> {
        self.mount_options
            .split(',')
            .chain(self.super_options.split(','))
            .filter(|option| !option.is_empty())
    }
}

/// A mountinfo line that does not have the kernel's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mountinfo line {line}: {reason}: {text:?}")]
pub struct MountInfoError {
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

/// Parses a whole mountinfo file.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, MountInfoError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|reason| MountInfoError {
                line: index + 1,
                reason,
                text: line.chars().take(200).collect(),
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<MountInfo, &'static str> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    let separator = fields
        .iter()
        .position(|field| *field == "-")
        .ok_or("no ' - ' separator")?;
    if separator < 6 {
        return Err("fewer than six fields before the separator");
    }
    if fields.len() < separator + 3 {
        return Err("fewer than three fields after the separator");
    }
    Ok(MountInfo {
        mount_id: fields[0].parse().map_err(|_| "mount ID is not a number")?,
        parent_id: fields[1].parse().map_err(|_| "parent ID is not a number")?,
        device: fields[2].to_owned(),
        root: unescape_octal(fields[3]),
        mount_point: unescape_octal(fields[4]),
        mount_options: fields[5].to_owned(),
        optional: fields[6..separator]
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
        fstype: unescape_octal(fields[separator + 1]),
        source: unescape_octal(fields[separator + 2]),
        super_options: fields.get(separator + 3).copied().unwrap_or("").to_owned(),
    })
}

/// Decodes `\040`-style escapes, as the kernel writes space, tab, newline and backslash.
pub fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = u32::from(bytes[i + 1] - b'0') * 64
                + u32::from(bytes[i + 2] - b'0') * 8
                + u32::from(bytes[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc5_example_and_a_lustre_line() {
        let text = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    812 29 0:52 / /lustre rw,relatime shared:400 - lustre 172.18.8.12@tcp:/lustrefs rw,flock,lazystatfs,encrypt\n\
                    90 29 0:60 / /mnt/with\\040space rw - fuse.bindfs /src rw,user_id=0\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].root, "/mnt1");
        assert_eq!(mounts[0].optional, vec!["master:1"]);
        assert_eq!(mounts[1].fstype, "lustre");
        assert_eq!(mounts[1].source, "172.18.8.12@tcp:/lustrefs");
        assert_eq!(mounts[1].mount_point, "/lustre");
        assert!(mounts[1].options().any(|o| o == "flock"));
        assert_eq!(mounts[2].mount_point, "/mnt/with space");
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let err = parse_mountinfo("1 2 0:1 / / rw - ext4 /dev/sda rw\ngarbage line\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.reason, "no ' - ' separator");
        let err = parse_mountinfo("x 2 0:1 / / rw - ext4 /dev/sda rw\n").unwrap_err();
        assert_eq!(err.reason, "mount ID is not a number");
    }
}
