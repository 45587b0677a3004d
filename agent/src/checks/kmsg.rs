//! Kernel messages from /dev/kmsg: each record is `<prio>,<seq>,<usec>,<flags>;<text>`.
//!
//! The device returns one record per read and EAGAIN at the end when opened non-blocking, so
//! reading never waits; a plain file (a simulated node) returns many records per read, so
//! every chunk is split into lines. Records at or below the last sequence seen are skipped.
//! EPIPE (records overwritten before they were read) is skipped over, as the kernel expects.

use std::io::Read;

use lfleet_host::HostRoot;

/// One kernel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub seq: u64,
    pub text: String,
}

/// Parses one record line; `None` for continuation lines (` KEY=value`) and other text.
pub fn parse_record(line: &str) -> Option<KmsgRecord> {
    let (header, text) = line.split_once(';')?;
    let mut fields = header.split(',');
    let _priority: u64 = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    Some(KmsgRecord {
        seq,
        text: text.trim_end().to_owned(),
    })
}

/// Reads the records after `after` (all when `None`), at most `limit` bytes, never blocking.
pub fn read_new(
    host: &HostRoot,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<KmsgRecord>, String> {
    let Some(mut file) = host
        .open_nonblocking("dev/kmsg")
        .map_err(|e| lfleet_types::error_chain(&e))?
    else {
        return Ok(Vec::new());
    };
    let mut records = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    let mut pending = String::new();
    while total < limit {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                pending.push_str(&String::from_utf8_lossy(&buffer[..n]));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    if let Some(record) = parse_record(&line)
                        && after.is_none_or(|last| record.seq > last)
                    {
                        records.push(record);
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => continue,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(format!("read /dev/kmsg: {error}")),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_continuations() {
        assert_eq!(
            parse_record("3,1017,2345678,-;LustreError: 167-0: evicted\n"),
            Some(KmsgRecord {
                seq: 1017,
                text: "LustreError: 167-0: evicted".into()
            })
        );
        assert_eq!(parse_record(" SUBSYSTEM=net"), None);
        assert_eq!(parse_record("x,1,2,-;text"), None);
        assert_eq!(parse_record("6,notanumber,2,-;text"), None);
    }
}
