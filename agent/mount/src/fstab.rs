//! `/etc/fstab` parsing and rendering that keeps every line the agent does not own byte for
//! byte.
//!
//! The agent owns exactly the lines between its two marker comments ([`BEGIN_MARKER`] and
//! [`END_MARKER`]). Everything before and after the block is kept as the original bytes:
//! comments, tabs, blank lines, odd spacing, `UUID=` and `LABEL=` sources, swap, bind and NFS
//! lines. The one change ever made outside the block is a newline appended to a last line
//! that lacked one, when the block is added after it.
//!
//! Entry points: [`Fstab::parse`], [`Fstab::with_managed`], [`Fstab::render`],
//! [`FstabEntry`].

use std::fmt;

use crate::mountinfo::unescape_octal;

/// The first line of the agent's block.
pub const BEGIN_MARKER: &str =
    "# BEGIN lfleet-agent managed Lustre mounts: lfleet-agent rewrites every line up to END";
/// The last line of the agent's block.
pub const END_MARKER: &str = "# END lfleet-agent managed Lustre mounts";

/// Why an fstab could not be parsed. The agent then writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FstabError {
    #[error("line {line}: a second lfleet-agent BEGIN marker (the first is on line {first})")]
    DuplicateBegin { first: usize, line: usize },
    #[error("line {line}: lfleet-agent BEGIN marker without a matching END marker")]
    UnterminatedBlock { line: usize },
    #[error("line {line}: lfleet-agent END marker without a BEGIN marker before it")]
    StrayEnd { line: usize },
}

/// One fstab entry: the six fields of fstab(5), with octal escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: String,
    pub file: String,
    pub vfstype: String,
    pub mntops: String,
    pub freq: u32,
    pub passno: u32,
}

// === impl FstabEntry ===

impl FstabEntry {
    /// Parses one fstab line; `None` for blank lines, comments and lines with fewer than
    /// the two fields mount(8) needs. Missing trailing fields take fstab(5)'s defaults.
    pub fn parse_line(line: &str) -> Option<FstabEntry> {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        let mut fields = trimmed
            .split([' ', '\t', '\n', '\r'])
            .filter(|f| !f.is_empty());
        let spec = unescape_octal(fields.next()?);
        let file = unescape_octal(fields.next()?);
        let vfstype = fields
            .next()
            .map(unescape_octal)
            .unwrap_or_else(|| "auto".into());
        let mntops = fields
            .next()
            .map(unescape_octal)
            .unwrap_or_else(|| "defaults".into());
        let freq = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        let passno = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        Some(FstabEntry {
            spec,
            file,
            vfstype,
            mntops,
            freq,
            passno,
        })
    }

    /// The mount options, split on commas.
    pub fn options(&self) -> impl Iterator<Item = &str> {
        self.mntops.split(',').filter(|option| !option.is_empty())
    }

    /// The entry as one fstab line (without its newline), escaping what fstab(5) escapes.
    pub fn render(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            escape(&self.spec),
            escape(&self.file),
            escape(&self.vfstype),
            escape(&self.mntops),
            self.freq,
            self.passno
        )
    }
}

impl fmt::Display for FstabEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for ch in field.chars() {
        match ch {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            '#' if out.is_empty() => out.push_str("\\043"),
            other => out.push(other),
        }
    }
    out
}

/// An fstab split into what the agent owns (its block) and what it does not (the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fstab {
    /// Bytes before the block; the whole file when there is no block.
    before: String,
    /// The block's own bytes, markers included; empty when there is no block.
    block: String,
    /// Bytes after the block.
    after: String,
    /// The entries inside the block.
    managed: Vec<FstabEntry>,
}

// === impl Fstab ===

impl Fstab {
    /// Splits `text` into foreign lines and the agent's block.
    pub fn parse(text: &str) -> Result<Fstab, FstabError> {
        let mut begin: Option<(usize, usize)> = None; // (line number, byte offset)
        let mut end: Option<usize> = None; // byte offset after the END line
        let mut offset = 0;
        for (index, line) in text.split_inclusive('\n').enumerate() {
            let number = index + 1;
            let content = line
                .trim_end_matches(['\n', '\r'])
                .trim_end_matches([' ', '\t']);
            if content == BEGIN_MARKER {
                if let Some((first, _)) = begin {
                    return Err(FstabError::DuplicateBegin {
                        first,
                        line: number,
                    });
                }
                begin = Some((number, offset));
            } else if content == END_MARKER {
                match (begin, end) {
                    (Some(_), None) => end = Some(offset + line.len()),
                    _ => return Err(FstabError::StrayEnd { line: number }),
                }
            }
            offset += line.len();
        }
        match (begin, end) {
            (None, _) => Ok(Fstab {
                before: text.to_owned(),
                block: String::new(),
                after: String::new(),
                managed: Vec::new(),
            }),
            (Some((line, _)), None) => Err(FstabError::UnterminatedBlock { line }),
            (Some((_, start)), Some(stop)) => {
                let block = &text[start..stop];
                let managed = block.lines().filter_map(FstabEntry::parse_line).collect();
                Ok(Fstab {
                    before: text[..start].to_owned(),
                    block: block.to_owned(),
                    after: text[stop..].to_owned(),
                    managed,
                })
            }
        }
    }

    /// The entries the agent owns, in file order.
    pub fn managed(&self) -> &[FstabEntry] {
        &self.managed
    }

    /// Entries outside the block: the ones the agent must never touch.
    pub fn foreign(&self) -> Vec<FstabEntry> {
        self.before
            .lines()
            .chain(self.after.lines())
            .filter_map(FstabEntry::parse_line)
            .collect()
    }

    /// The same file with the block holding exactly `entries` (in that order). An empty list
    /// removes the block. When the entries are the ones already there, the file is returned
    /// unchanged to the byte, so the caller sees no change and writes nothing.
    pub fn with_managed(&self, entries: Vec<FstabEntry>) -> Fstab {
        if entries == self.managed {
            return self.clone();
        }
        let mut before = self.before.clone();
        let block = if entries.is_empty() {
            String::new()
        } else {
            if !before.is_empty() && !before.ends_with('\n') {
                before.push('\n');
            }
            let mut block = String::new();
            block.push_str(BEGIN_MARKER);
            block.push('\n');
            for entry in &entries {
                block.push_str(&entry.render());
                block.push('\n');
            }
            block.push_str(END_MARKER);
            block.push('\n');
            block
        };
        Fstab {
            before,
            block,
            after: self.after.clone(),
            managed: entries,
        }
    }

    /// The whole file.
    pub fn render(&self) -> String {
        let mut text =
            String::with_capacity(self.before.len() + self.block.len() + self.after.len());
        text.push_str(&self.before);
        text.push_str(&self.block);
        text.push_str(&self.after);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lustre(dir: &str) -> FstabEntry {
        FstabEntry {
            spec: "10.0.1.4@tcp:/lustrefs".into(),
            file: dir.into(),
            vfstype: "lustre".into(),
            mntops: "defaults,noatime,flock,_netdev,nofail".into(),
            freq: 0,
            passno: 0,
        }
    }

    const ODD: &str = "# /etc/fstab: static file system information.\n\
LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\n\
\n\
UUID=7A1B-22C3  /boot/efi       vfat    umask=0077      0       1\n\
/swapfile none swap sw 0 0\n\
   10.0.0.4:/sched   /sched nfs  rw,hard,vers=3  0 0  \n\
/data/a\\040b /mnt/bind none bind\n\
#10.0.1.9@tcp:/old /old lustre defaults 0 0";

    #[test]
    fn a_file_without_a_block_round_trips_byte_for_byte() {
        let fstab = Fstab::parse(ODD).unwrap();
        assert_eq!(fstab.render(), ODD);
        assert!(fstab.managed().is_empty());
        let foreign = fstab.foreign();
        assert_eq!(foreign.len(), 5);
        assert_eq!(foreign[4].spec, "/data/a b");
        assert_eq!(foreign[4].vfstype, "none");
        assert_eq!(foreign[1].file, "/boot/efi");
    }

    #[test]
    fn adding_appends_a_block_and_removing_it_restores_the_file() {
        let fstab = Fstab::parse(ODD).unwrap();
        let added = fstab.with_managed(vec![lustre("/lustre")]);
        let text = added.render();
        // The last line lacked a newline; it gets one, and nothing else before changes.
        assert!(text.starts_with(&format!("{ODD}\n{BEGIN_MARKER}\n")));
        assert!(text.ends_with(&format!(
            "10.0.1.4@tcp:/lustrefs /lustre lustre defaults,noatime,flock,_netdev,nofail 0 0\n{END_MARKER}\n"
        )));
        let reparsed = Fstab::parse(&text).unwrap();
        assert_eq!(reparsed.managed(), &[lustre("/lustre")]);
        let removed = reparsed.with_managed(Vec::new());
        assert_eq!(removed.render(), format!("{ODD}\n"));
    }

    #[test]
    fn unchanged_entries_mean_an_unchanged_file_even_with_odd_spacing_inside() {
        let text = format!(
            "/a /b ext4 defaults 0 0\n{BEGIN_MARKER}\n10.0.1.4@tcp:/lustrefs   /lustre\tlustre defaults,noatime,flock,_netdev,nofail 0 0\n{END_MARKER}\n# tail\n"
        );
        let fstab = Fstab::parse(&text).unwrap();
        let same = fstab.with_managed(vec![lustre("/lustre")]);
        assert_eq!(same.render(), text);
    }

    #[test]
    fn a_block_in_the_middle_stays_in_place() {
        let text =
            format!("head\n{BEGIN_MARKER}\nx /old lustre defaults 0 0\n{END_MARKER}\ntail\n");
        let fstab = Fstab::parse(&text).unwrap();
        let changed = fstab.with_managed(vec![lustre("/lustre"), lustre("/scratch")]);
        let expected = format!(
            "head\n{BEGIN_MARKER}\n{}\n{}\n{END_MARKER}\ntail\n",
            lustre("/lustre").render(),
            lustre("/scratch").render()
        );
        assert_eq!(changed.render(), expected);
    }

    #[test]
    fn malformed_blocks_are_refused_with_line_numbers() {
        assert_eq!(
            Fstab::parse(&format!("a\n{BEGIN_MARKER}\nx\n")),
            Err(FstabError::UnterminatedBlock { line: 2 })
        );
        assert_eq!(
            Fstab::parse(&format!("{END_MARKER}\n")),
            Err(FstabError::StrayEnd { line: 1 })
        );
        assert_eq!(
            Fstab::parse(&format!(
                "{BEGIN_MARKER}\n{END_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n"
            )),
            Err(FstabError::DuplicateBegin { first: 1, line: 3 })
        );
    }

    #[test]
    fn escapes_round_trip() {
        let entry = FstabEntry {
            spec: "/src/with space".into(),
            file: "/mnt/tab\there".into(),
            vfstype: "none".into(),
            mntops: "bind".into(),
            freq: 0,
            passno: 0,
        };
        let line = entry.render();
        assert_eq!(line, "/src/with\\040space /mnt/tab\\011here none bind 0 0");
        assert_eq!(FstabEntry::parse_line(&line), Some(entry));
    }
}
