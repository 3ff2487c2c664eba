//! IP intelligence: category lists (files of IPs and CIDRs) compiled into one binary prefix
//! trie per address family. A lookup walks at most 32 or 128 bits and returns a shared,
//! precomputed category set, hierarchical names included: no allocation per request.

mod trie;

use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trie::Trie;

/// The categories of one address: `proxy.anonymous.tor` also yields `proxy.anonymous` and
/// `proxy`.
pub type Categories = Arc<[Arc<str>]>;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ListError {
    pub file: String,
    /// 0 when the error is about the file as a whole.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug)]
pub struct IpIntel {
    v4: Trie,
    v6: Trie,
    /// Interned category sets; index 0 is the empty set.
    sets: Vec<Categories>,
    /// Every name an address can have (listed names and their parents).
    names: BTreeSet<String>,
    entries: usize,
}

impl Default for IpIntel {
    fn default() -> Self {
        IpIntel {
            v4: Trie::default(),
            v6: Trie::default(),
            sets: vec![Arc::from(Vec::new())],
            names: BTreeSet::new(),
            entries: 0,
        }
    }
}

/// `a.b.c` → `a.b.c`, `a.b`, `a`.
fn with_parents(name: &str) -> impl Iterator<Item = &str> {
    let mut end = Some(name.len());
    std::iter::from_fn(move || {
        let e = end?;
        let part = &name[..e];
        end = part.rfind('.');
        Some(part)
    })
}

pub fn valid_category(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl IpIntel {
    /// Builds from `(category, files)` pairs; a relative file is taken relative to `base`.
    pub fn load(lists: &[(String, Vec<PathBuf>)], base: &Path) -> Result<IpIntel, ListError> {
        let mut parsed: Vec<(IpNet, usize)> = Vec::new();
        let mut names = BTreeSet::new();
        for (cat_id, (category, files)) in lists.iter().enumerate() {
            names.extend(with_parents(category).map(str::to_string));
            for file in files {
                let path = if file.is_absolute() {
                    file.clone()
                } else {
                    base.join(file)
                };
                for net in read_list(&path)? {
                    parsed.push((net, cat_id));
                }
            }
        }
        Ok(Self::build(lists, parsed, names))
    }

    /// Builds from networks already parsed, each with the index of its category in `lists`.
    fn build(
        lists: &[(String, Vec<PathBuf>)],
        parsed: Vec<(IpNet, usize)>,
        names: BTreeSet<String>,
    ) -> IpIntel {
        let mut v4 = Trie::default();
        let mut v6 = Trie::default();
        for (net, cat) in &parsed {
            match net {
                IpNet::V4(n) => v4.insert(&n.network().octets(), n.prefix_len(), *cat),
                IpNet::V6(n) => v6.insert(&n.network().octets(), n.prefix_len(), *cat),
            }
        }
        // Intern the expanded, sorted name set of every combination of categories that occurs.
        let mut interned: HashMap<Vec<usize>, u32> = HashMap::new();
        let mut sets: Vec<Categories> = vec![Arc::from(Vec::new())];
        let mut intern = |cats: &[usize]| -> u32 {
            if let Some(id) = interned.get(cats) {
                return *id;
            }
            let expanded: BTreeSet<&str> = cats
                .iter()
                .flat_map(|c| with_parents(&lists[*c].0))
                .collect();
            let set: Vec<Arc<str>> = expanded.into_iter().map(Arc::from).collect();
            sets.push(Arc::from(set));
            let id = (sets.len() - 1) as u32;
            interned.insert(cats.to_vec(), id);
            id
        };
        v4.resolve_sets(&mut intern);
        v6.resolve_sets(&mut intern);
        IpIntel {
            v4,
            v6,
            sets,
            names,
            entries: parsed.len(),
        }
    }

    /// The categories of `ip` (all listed prefixes that contain it).
    pub fn lookup(&self, ip: IpAddr) -> &Categories {
        let id = match ip {
            IpAddr::V4(a) => self.v4.lookup(&a.octets(), 32),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.lookup(&v4.octets(), 32),
                None => self.v6.lookup(&a.octets(), 128),
            },
        };
        &self.sets[id as usize]
    }

    /// Whether some list yields this category name.
    pub fn has_category(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Trie nodes over both families (12 bytes each).
    pub fn nodes(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// One list file: an IP or CIDR per line; `#` starts a comment.
pub fn read_list(path: &Path) -> Result<Vec<IpNet>, ListError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ListError {
        file: file.clone(),
        line: 0,
        reason: format!("cannot read IP list: {e}"),
    })?;
    parse_list(&text, &file)
}

pub fn parse_list(text: &str, file: &str) -> Result<Vec<IpNet>, ListError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let net = match line.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => match line.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(ListError {
                        file: file.to_string(),
                        line: i + 1,
                        reason: format!("`{line}` is not an IP address or CIDR"),
                    })
                }
            },
        };
        out.push(net);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intel(lists: &[(&str, &str)]) -> IpIntel {
        let mut specs = Vec::new();
        let mut parsed = Vec::new();
        let mut names = BTreeSet::new();
        for (i, (cat, text)) in lists.iter().enumerate() {
            specs.push((cat.to_string(), Vec::new()));
            names.extend(with_parents(cat).map(str::to_string));
            for net in parse_list(text, "t").unwrap() {
                parsed.push((net, i));
            }
        }
        IpIntel::build(&specs, parsed, names)
    }

    fn cats(i: &IpIntel, ip: &str) -> Vec<String> {
        i.lookup(ip.parse().unwrap())
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn lookups_are_hierarchical_and_combine_prefixes() {
        let i = intel(&[
            (
                "proxy.anonymous.tor",
                "192.0.2.0/24\n# comment\n2001:db8::/32 # trailing\n",
            ),
            ("blocklist", "192.0.0.0/16\n198.51.100.7\n"),
        ]);
        assert_eq!(
            cats(&i, "192.0.2.9"),
            [
                "blocklist",
                "proxy",
                "proxy.anonymous",
                "proxy.anonymous.tor"
            ]
        );
        assert_eq!(cats(&i, "192.0.3.1"), ["blocklist"]);
        assert_eq!(cats(&i, "198.51.100.7"), ["blocklist"]);
        assert!(cats(&i, "198.51.100.8").is_empty());
        assert_eq!(cats(&i, "2001:db8::1").len(), 3);
        assert!(cats(&i, "2001:db9::1").is_empty());
        assert_eq!(
            cats(&i, "::ffff:192.0.2.1").len(),
            4,
            "IPv4-mapped IPv6 uses the IPv4 lists"
        );
        assert!(i.has_category("proxy.anonymous") && !i.has_category("tor"));
    }

    #[test]
    fn zero_length_prefixes_and_host_routes() {
        let i = intel(&[("all", "0.0.0.0/0\n"), ("one", "10.1.2.3/32\n")]);
        assert_eq!(cats(&i, "8.8.8.8"), ["all"]);
        assert_eq!(cats(&i, "10.1.2.3"), ["all", "one"]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse_list("10.0.0.0/8\n\nnot-an-ip\n", "tor.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "tor.txt:3: `not-an-ip` is not an IP address or CIDR"
        );
        assert!(parse_list("10.0.0.0/33\n", "x").is_err());
    }
}
