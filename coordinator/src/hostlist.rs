//! Slurm-style host lists: `hpc-pg0-[1-100,200]`, `gpu[01-16]`, `login1`, comma-joined at the
//! top level (`a[1-2],b3`). A pattern is checked when the config is read; matching a name
//! never expands the ranges, so `node[1-1000000]` costs nothing.

/// One bracketed part: numbers with their zero padding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    low: u64,
    high: u64,
    width: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Ranges(Vec<Range>),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    alternatives: Vec<Vec<Part>>,
}

/// Splits at top-level commas (not inside brackets).
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        if text.is_empty() || text.len() > 1024 {
            return Err("a host list is 1 to 1024 characters".into());
        }
        let mut alternatives = Vec::new();
        for alternative in split_top(text) {
            let mut parts = Vec::new();
            let mut rest = alternative;
            if rest.is_empty() {
                return Err(format!("{text:?} has an empty name"));
            }
            while !rest.is_empty() {
                if let Some(inner) = rest.strip_prefix('[') {
                    let end = inner
                        .find(']')
                        .ok_or_else(|| format!("{text:?}: '[' without ']'"))?;
                    let mut ranges = Vec::new();
                    for item in inner[..end].split(',') {
                        let (low, high) = item.split_once('-').unwrap_or((item, item));
                        let number = |s: &str| -> Result<u64, String> {
                            if s.is_empty()
                                || s.len() > 18
                                || !s.bytes().all(|b| b.is_ascii_digit())
                            {
                                Err(format!("{text:?}: {item:?} is not a number or a range"))
                            } else {
                                s.parse()
                                    .map_err(|_| format!("{text:?}: {item:?} is too large"))
                            }
                        };
                        let (l, h) = (number(low)?, number(high)?);
                        if l > h {
                            return Err(format!("{text:?}: range {item:?} runs backwards"));
                        }
                        let width = if low.len() > 1 && low.starts_with('0') {
                            low.len()
                        } else {
                            0
                        };
                        ranges.push(Range {
                            low: l,
                            high: h,
                            width,
                        });
                    }
                    parts.push(Part::Ranges(ranges));
                    rest = &inner[end + 1..];
                } else {
                    let end = rest.find('[').unwrap_or(rest.len());
                    let chunk = &rest[..end];
                    if chunk.contains(']')
                        || !chunk.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
                        })
                    {
                        return Err(format!(
                            "{text:?}: names hold letters, digits, '-', '_', '.' and [ranges]"
                        ));
                    }
                    parts.push(Part::Text(chunk.to_owned()));
                    rest = &rest[end..];
                }
            }
            alternatives.push(parts);
        }
        Ok(HostPattern { alternatives })
    }

    /// Whether `name` is one of the hosts the pattern names.
    pub fn matches(&self, name: &str) -> bool {
        self.alternatives
            .iter()
            .any(|parts| matches_parts(parts, name))
    }
}

fn matches_parts(parts: &[Part], name: &str) -> bool {
    match parts.split_first() {
        None => name.is_empty(),
        Some((Part::Text(text), rest)) => name
            .strip_prefix(text.as_str())
            .is_some_and(|after| matches_parts(rest, after)),
        Some((Part::Ranges(ranges), rest)) => {
            // Try every run of leading digits as the number.
            let digits = name.bytes().take_while(u8::is_ascii_digit).count();
            (1..=digits).any(|len| {
                let text = &name[..len];
                let Ok(value) = text.parse::<u64>() else {
                    return false;
                };
                ranges.iter().any(|r| {
                    value >= r.low
                        && value <= r.high
                        && if r.width > 0 {
                            text.len() == r.width
                        } else {
                            !(text.len() > 1 && text.starts_with('0'))
                        }
                }) && matches_parts(rest, &name[len..])
            })
        }
    }
}

/// Names compressed the way `sinfo` prints them: names that differ only in a trailing number
/// share a prefix with bracketed ranges (`hpc-pg0-[1-4,7],login1`), zero padding kept; the
/// result parses back to the same set with [`HostPattern::parse`].
pub fn compress<S: AsRef<str>>(names: &[S]) -> String {
    use std::collections::BTreeMap;
    // prefix -> (width, number) for names ending in digits; others stand alone.
    let mut groups: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_ref();
        let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (prefix, number) = name.split_at(name.len() - digits);
        match number.parse::<u64>() {
            Ok(value) if digits > 0 && digits <= 18 => {
                let width = if number.len() > 1 && number.starts_with('0') {
                    number.len()
                } else {
                    0
                };
                groups
                    .entry(prefix.to_owned())
                    .or_default()
                    .push((width, value));
            }
            _ => plain.push(name.to_owned()),
        }
    }
    let mut parts = Vec::new();
    for (prefix, mut numbers) in groups {
        numbers.sort_unstable_by_key(|(width, value)| (*value, *width));
        numbers.dedup();
        if numbers.len() == 1 {
            let (width, value) = numbers[0];
            parts.push(format!("{prefix}{value:0width$}"));
            continue;
        }
        let mut ranges: Vec<String> = Vec::new();
        let mut index = 0;
        while index < numbers.len() {
            let (width, low) = numbers[index];
            let mut high = low;
            while index + 1 < numbers.len()
                && numbers[index + 1].0 == width
                && numbers[index + 1].1 == high + 1
            {
                high += 1;
                index += 1;
            }
            ranges.push(if low == high {
                format!("{low:0width$}")
            } else {
                format!("{low:0width$}-{high:0width$}")
            });
            index += 1;
        }
        parts.push(format!("{prefix}[{}]", ranges.join(",")));
    }
    plain.sort();
    parts.extend(plain);
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_padding_and_alternatives() {
        let p = HostPattern::parse("hpc-pg0-[1-100,200]").unwrap();
        for yes in ["hpc-pg0-1", "hpc-pg0-100", "hpc-pg0-200", "hpc-pg0-57"] {
            assert!(p.matches(yes), "{yes}");
        }
        for no in [
            "hpc-pg0-0",
            "hpc-pg0-101",
            "hpc-pg0-01",
            "hpc-pg0-",
            "hpc-pg1-5",
            "hpc-pg0-5x",
        ] {
            assert!(!p.matches(no), "{no}");
        }
        let padded = HostPattern::parse("gpu[01-16],login1").unwrap();
        assert!(padded.matches("gpu07") && padded.matches("gpu16") && padded.matches("login1"));
        assert!(!padded.matches("gpu7") && !padded.matches("gpu17") && !padded.matches("login2"));
        let big = HostPattern::parse("n[1-1000000000]").unwrap();
        assert!(big.matches("n999999999"));
        for bad in ["", "a[", "a[3-1]", "a[x]", "a b", "a]", "a[1-2],,b", "a;rm"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn compression_reads_like_sinfo_and_parses_back_to_the_same_set() {
        assert_eq!(
            compress(&[
                "hpc-pg0-3",
                "hpc-pg0-1",
                "hpc-pg0-2",
                "hpc-pg0-4",
                "hpc-pg0-7",
                "login1"
            ]),
            "hpc-pg0-[1-4,7],login1"
        );
        assert_eq!(compress(&["gpu01", "gpu02", "gpu10"]), "gpu[01-02,10]");
        assert_eq!(compress(&["n5"]), "n5");
        assert_eq!(compress(&["sched", "n1", "n1"]), "n1,sched");
        assert_eq!(compress::<&str>(&[]), "");
    }

    proptest::proptest! {
        #[test]
        fn compressed_lists_match_exactly_their_names(
            numbers in proptest::collection::btree_set(0u64..300, 1..40),
            padded in proptest::bool::ANY,
        ) {
            let names: Vec<String> = numbers
                .iter()
                .map(|n| if padded { format!("gpu{n:03}") } else { format!("hpc-{n}") })
                .collect();
            let pattern = HostPattern::parse(&compress(&names)).unwrap();
            for n in 0u64..300 {
                let name = if padded { format!("gpu{n:03}") } else { format!("hpc-{n}") };
                proptest::prop_assert_eq!(pattern.matches(&name), numbers.contains(&n));
            }
        }
    }
}
