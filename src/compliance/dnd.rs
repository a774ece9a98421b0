//! Do-not-call registries: the national registry of a country (with India's
//! NCPR preferences), the account's internal list and campaign lists.
//!
//! Owns parsing registry files (plain lists, NCPR rows, deltas), the
//! in-memory registries built on [`DndSet`], and the registry file on disk
//! (a small JSON header, then the sets). Look-ups are pure; only
//! [`NationalRegistry::save`] and [`NationalRegistry::load`] touch files.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::dnd_set::{DndSet, DndSetError};
use crate::phone::{self, Country};
use crate::profile::DayWindow;

/// Errors reading or writing registries.
#[derive(Debug, thiserror::Error)]
pub enum DndError {
    /// A registry file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A saved registry is damaged.
    #[error("{}: not a valid registry file: {source}", path.display())]
    Set {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: DndSetError,
    },
    /// A saved registry's header is damaged.
    #[error("{}: not a valid registry file: {message}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One refused line of a registry file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based line.
    pub line: u64,
    /// Why it was refused.
    pub reason: String,
    /// The line as read (lossy UTF-8, at most 200 characters).
    pub text: String,
    /// The number on it was kept, fully blocked: it parsed, the rest of
    /// the line did not (when in doubt, do not call).
    pub kept_blocked: bool,
    /// The number belongs to another country than the import's.
    pub foreign: bool,
}

/// India's NCPR preference for a number that accepts some categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeBand {
    /// Days accepted, bit 0 = Monday; 0 = every day.
    pub days: u8,
    /// Local time band accepted, if the person gave one.
    pub window: Option<(chrono::NaiveTime, chrono::NaiveTime)>,
}

impl TimeBand {
    /// Whether the band accepts `day` at local time `t`.
    pub fn accepts(&self, day: Weekday, t: chrono::NaiveTime) -> bool {
        let day_ok = self.days == 0 || self.days & (1 << day.num_days_from_monday()) != 0;
        let time_ok = self.window.is_none_or(|(a, b)| t >= a && t < b);
        day_ok && time_ok
    }
}

/// What a registry says about a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Not registered, or registered but accepting the campaign's category.
    Clear,
    /// Registered and accepting the category, only on some days or hours.
    Narrowed(TimeBand),
    /// Registered and blocked.
    Blocked,
}

/// The national registry of one country.
#[derive(Debug, Clone)]
pub struct NationalRegistry {
    /// The country whose numbers it lists.
    pub country: Country,
    /// When the registry data was loaded (downloaded) from the regulator.
    pub loaded_at: DateTime<Utc>,
    /// Numbers blocked for every category.
    pub blocked: DndSet,
    /// Numbers blocked except the categories they opted in to (NCPR).
    pub partial: DndSet,
    /// For each category 1-8, the partial numbers that accept it.
    pub accepts: [DndSet; 8],
    /// Day and time bands of the numbers that gave them.
    pub bands: HashMap<u64, TimeBand>,
}

/// A registry line's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Blocked for every category.
    Blocked(u64),
    /// Blocked except `categories` (bit k-1 = category k), optionally only
    /// within a band.
    Partial {
        /// The number.
        number: u64,
        /// Bit k-1 set: accepts category k.
        categories: u8,
        /// Days and hours accepted.
        band: Option<TimeBand>,
    },
    /// Removed from the registry (a delta's deletion).
    Removed(u64),
}

/// Registry file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One number a line, any common format; a leading `-` removes it
    /// (deltas), a leading `+` before a national number is read as the
    /// international prefix.
    Plain,
    /// NCPR rows: `number,preference[,days[,band]][,op]`; preference `0`
    /// is fully blocked, otherwise the accepted categories joined by `#`
    /// (e.g. `1#5`); days like `1-5` or `1#3#5` (1 = Monday); band
    /// `HH:MM-HH:MM`; op `A` (add, default) or `D` (delete).
    Ncpr,
}

/// A registry file, parsed.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The entries, in file order.
    pub entries: Vec<Entry>,
    /// The line of each [`Entry::Removed`], in the same order.
    pub removal_lines: Vec<u64>,
    /// The text of each of those lines (first 200 characters), for a
    /// rejects file should the removal be refused.
    pub removal_texts: Vec<String>,
    /// Refused lines.
    pub bad: Vec<BadLine>,
}

/// Why a line was refused, and the number if it parsed.
struct LineError {
    reason: String,
    /// A number that parsed: kept, fully blocked.
    keep: Option<u64>,
    foreign: bool,
}

impl LineError {
    fn new(reason: impl Into<String>) -> LineError {
        LineError {
            reason: reason.into(),
            keep: None,
            foreign: false,
        }
    }
}

fn number_error(e: phone::PhoneError) -> LineError {
    LineError {
        foreign: matches!(e, phone::PhoneError::OutOfCountry { .. }),
        reason: e.to_string(),
        keep: None,
    }
}

/// Parses a registry file. Numbers are normalised for `country` like lead
/// numbers; bad lines are returned with their line number, the rest parse.
/// Bad data can only add protection: a line whose number parses but whose
/// other fields do not keeps the number fully blocked (and is still
/// reported), and removals are read only in a `delta` (in a full file a
/// removal line is refused).
pub fn parse(
    input: impl Read,
    format: Format,
    country: Country,
    delta: bool,
) -> io::Result<Parsed> {
    let mut out = Parsed::default();
    for (i, line) in BufReader::with_capacity(1 << 16, input)
        .split(b'\n')
        .enumerate()
    {
        let line = line?;
        let line_no = i as u64 + 1;
        let lossy = || {
            let t = String::from_utf8_lossy(&line);
            t.trim_end_matches('\r')
                .chars()
                .take(200)
                .collect::<String>()
        };
        let Ok(text) = std::str::from_utf8(&line) else {
            out.bad.push(BadLine {
                line: line_no,
                reason: "invalid UTF-8".into(),
                text: lossy(),
                kept_blocked: false,
                foreign: false,
            });
            continue;
        };
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let parsed = match format {
            Format::Plain => parse_plain(text, country),
            Format::Ncpr => parse_ncpr(text, country),
        };
        let parsed = match parsed {
            Ok(Some(Entry::Removed(_))) if !delta => Err(LineError::new(
                "a removal in a full import: removals are read only with --delta",
            )),
            other => other,
        };
        match parsed {
            Ok(Some(e)) => {
                if matches!(e, Entry::Removed(_)) {
                    out.removal_lines.push(line_no);
                    out.removal_texts.push(lossy());
                }
                out.entries.push(e);
            }
            Ok(None) => {}
            Err(e) => {
                if let Some(n) = e.keep {
                    out.entries.push(Entry::Blocked(n));
                }
                out.bad.push(BadLine {
                    line: line_no,
                    reason: if e.keep.is_some() {
                        format!("{}; the number is kept fully blocked", e.reason)
                    } else {
                        e.reason
                    },
                    text: lossy(),
                    kept_blocked: e.keep.is_some(),
                    foreign: e.foreign,
                });
            }
        }
    }
    Ok(out)
}

/// Characters a written phone number is made of.
fn phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '+')
}

fn parse_plain(text: &str, country: Country) -> Result<Option<Entry>, LineError> {
    let (remove, number) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    // One '-' marks a removal; a second is not part of any number a
    // registry writes, and a removal that is not plain removes nothing.
    if remove && number.trim_start().starts_with('-') {
        return Err(LineError::new(
            "a removal is one '-' and a number: this line removes nothing",
        ));
    }
    match phone::parse(number, country) {
        Ok(n) => Ok(Some(if remove {
            Entry::Removed(n.digits)
        } else {
            Entry::Blocked(n.digits)
        })),
        Err(e) => {
            // A number followed by other text ("020 7946 0018 x", a second
            // column): keep the number blocked, report the line. A removal
            // with trailing text removes nothing.
            let end = number
                .find(|c: char| !phone_char(c))
                .unwrap_or(number.len());
            let mut err = number_error(e);
            if !remove
                && end > 0
                && end < number.len()
                && let Ok(n) = phone::parse(&number[..end], country)
            {
                err.reason = format!("text after the number: {:?}", number[end..].trim());
                err.keep = Some(n.digits);
            }
            Err(err)
        }
    }
}

fn parse_ncpr(text: &str, country: Country) -> Result<Option<Entry>, LineError> {
    let mut cols: Vec<&str> = text.split(',').map(str::trim).collect();
    if cols[0].eq_ignore_ascii_case("number") || cols[0].eq_ignore_ascii_case("phone") {
        return Ok(None); // header row
    }
    let number = phone::parse(cols[0], country).map_err(number_error)?.digits;
    let keep = |reason: String| LineError {
        reason,
        keep: Some(number),
        foreign: false,
    };
    // An operation column, if any, is the last: A adds (the default), D deletes.
    let op = match cols.last() {
        Some(c)
            if cols.len() > 1 && (c.eq_ignore_ascii_case("a") || c.eq_ignore_ascii_case("d")) =>
        {
            cols.pop().map(|c| c.to_ascii_uppercase())
        }
        _ => None,
    };
    if op.as_deref() == Some("D") {
        if cols.len() > 4 {
            return Err(LineError::new(format!(
                "{} columns before the operation: number,preference[,days][,band][,A|D]",
                cols.len()
            )));
        }
        return Ok(Some(Entry::Removed(number)));
    }
    if cols.len() > 4 {
        return Err(keep(format!(
            "{} columns: number,preference[,days][,band][,A|D]",
            cols.len()
        )));
    }
    let pref = cols.get(1).copied().unwrap_or("0");
    if pref == "0" {
        if cols.len() > 2 && cols[2..].iter().any(|c| !c.is_empty()) {
            // Days or a band mean nothing for a full block: the line is
            // not what it claims; the block stands.
            return Err(keep("days or a time band with preference 0".into()));
        }
        return Ok(Some(Entry::Blocked(number)));
    }
    let mut categories = 0u8;
    for c in pref.split(['#', ';', '|']) {
        match c.trim().parse::<u8>() {
            Ok(k @ 1..=8) => categories |= 1 << (k - 1),
            _ => {
                return Err(keep(format!(
                    "preference {pref:?}: categories are 1 to 8 joined by #, or 0 for fully blocked"
                )));
            }
        }
    }
    let mut band = TimeBand::default();
    let mut has_band = false;
    for c in cols.iter().skip(2).filter(|c| !c.is_empty()) {
        if c.contains(':') {
            let w = parse_band(c).map_err(keep)?;
            band.window = Some((w.start, w.end));
        } else {
            band.days = parse_days(c).map_err(keep)?;
        }
        has_band = true;
    }
    Ok(Some(Entry::Partial {
        number,
        categories,
        band: has_band.then_some(band),
    }))
}

fn parse_band(text: &str) -> Result<DayWindow, String> {
    let bad = || format!("time band {text:?}: write HH:MM-HH:MM");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let t = |s: &str| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
    let (start, end) = (t(a)?, t(b)?);
    if start >= end {
        return Err(bad());
    }
    Ok(DayWindow { start, end })
}

fn parse_days(text: &str) -> Result<u8, String> {
    let bad = || format!("days {text:?}: write 1-5 or 1#3#5 (1 = Monday)");
    let day = |s: &str| match s.trim().parse::<u8>() {
        Ok(d @ 1..=7) => Ok(d),
        _ => Err(bad()),
    };
    let mut mask = 0u8;
    if let Some((a, b)) = text.split_once('-') {
        let (a, b) = (day(a)?, day(b)?);
        if a > b {
            return Err(bad());
        }
        for d in a..=b {
            mask |= 1 << (d - 1);
        }
    } else {
        for d in text.split(['#', ';', '|']) {
            mask |= 1 << (day(d)? - 1);
        }
    }
    Ok(mask)
}

/// How many numbers two sets share: a walk of both in ascending order.
fn common(a: &DndSet, b: &DndSet) -> u64 {
    let mut theirs = b.iter();
    let mut next = theirs.next();
    let mut n = 0;
    for x in a.iter() {
        while let Some(y) = next
            && y < x
        {
            next = theirs.next();
        }
        if next == Some(x) {
            n += 1;
        }
    }
    n
}

/// The numbers of two ascending sets, ascending.
fn merged<'a>(a: &'a DndSet, b: &'a DndSet) -> impl Iterator<Item = u64> + 'a {
    let mut a = a.iter().peekable();
    let mut b = b.iter().peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(&x), Some(&y)) if x <= y => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// What a registry import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DndImportReport {
    /// Entries read.
    pub entries: u64,
    /// Numbers added or changed.
    pub added: u64,
    /// Numbers removed.
    pub removed: u64,
    /// Lines refused.
    pub rejected: u64,
    /// Of the refused lines, those whose number was kept, fully blocked.
    pub kept_blocked: u64,
    /// Numbers in the registry afterwards.
    pub total: u64,
}

/// The numbers `entries` list more than once with preferences that differ
/// (categories or days and hours): a number has one preference, so such a
/// file is in doubt about it, and a number in doubt is kept fully blocked
/// rather than opened to every category any of its lines names. Only
/// partial listings are looked at (a plain registry has none: no cost).
fn conflicting_preferences(entries: &[Entry]) -> Vec<u64> {
    let mut partial: Vec<(u64, u8, Option<TimeBand>)> = entries
        .iter()
        .filter_map(|e| match *e {
            Entry::Partial {
                number,
                categories,
                band,
            } => Some((number, categories, band)),
            _ => None,
        })
        .collect();
    if partial.len() < 2 {
        return Vec::new();
    }
    partial.sort_unstable_by_key(|p| p.0);
    let mut out: Vec<u64> = partial
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && (w[0].1 != w[1].1 || w[0].2 != w[1].2))
        .map(|w| w[0].0)
        .collect();
    out.dedup();
    if !out.is_empty() {
        tracing::warn!(
            numbers = out.len(),
            "numbers listed more than once with different preferences: kept fully blocked"
        );
    }
    out
}

impl NationalRegistry {
    /// An empty registry of `country`, loaded at `loaded_at`.
    pub fn new(country: Country, loaded_at: DateTime<Utc>) -> NationalRegistry {
        NationalRegistry {
            country,
            loaded_at,
            blocked: DndSet::new(),
            partial: DndSet::new(),
            accepts: Default::default(),
            bands: HashMap::new(),
        }
    }

    /// Builds a full registry from entries (removals are ignored): the sets
    /// are built in one pass each, not through the update overlay.
    pub fn build(
        country: Country,
        loaded_at: DateTime<Utc>,
        entries: &[Entry],
    ) -> NationalRegistry {
        let mut r = NationalRegistry::new(country, loaded_at);
        let mut blocked = Vec::new();
        let mut partial = Vec::new();
        let mut accepts: [Vec<u64>; 8] = Default::default();
        for e in entries {
            match *e {
                Entry::Blocked(n) => blocked.push(n),
                Entry::Partial {
                    number,
                    categories,
                    band,
                } => {
                    partial.push(number);
                    for (k, list) in accepts.iter_mut().enumerate() {
                        if categories & (1 << k) != 0 {
                            list.push(number);
                        }
                    }
                    if let Some(b) = band {
                        r.bands.insert(number, b);
                    }
                }
                Entry::Removed(_) => {}
            }
        }
        blocked.extend(conflicting_preferences(entries));
        r.blocked = DndSet::from_unsorted(blocked);
        r.partial = DndSet::from_unsorted(partial);
        for (set, list) in r.accepts.iter_mut().zip(accepts) {
            *set = DndSet::from_unsorted(list);
        }
        r
    }

    /// Applies a delta: adds, changes and removes numbers without
    /// rebuilding the sets. Returns (added or changed, removed).
    pub fn apply(&mut self, entries: &[Entry]) -> (u64, u64) {
        let mut blocked_add = Vec::new();
        let mut partial_add = Vec::new();
        let mut accepts_add: [Vec<u64>; 8] = Default::default();
        let mut touched = Vec::new();
        let mut removed = 0;
        for e in entries {
            match *e {
                Entry::Blocked(n) => {
                    touched.push(n);
                    blocked_add.push(n);
                }
                Entry::Partial {
                    number,
                    categories,
                    band,
                } => {
                    touched.push(number);
                    partial_add.push(number);
                    for (k, list) in accepts_add.iter_mut().enumerate() {
                        if categories & (1 << k) != 0 {
                            list.push(number);
                        }
                    }
                    match band {
                        Some(b) => self.bands.insert(number, b),
                        None => self.bands.remove(&number),
                    };
                }
                Entry::Removed(n) => {
                    touched.push(n);
                    removed += 1;
                    self.bands.remove(&n);
                }
            }
        }
        // A number's new entry replaces its old one: take it out of every
        // set, then put it where it now belongs. (A number both added and
        // removed in one call ends up added: when in doubt, do not call.)
        let add_all = |set: &mut DndSet, adds: &[u64]| {
            let removes = touched
                .iter()
                .copied()
                .filter(|n| adds.binary_search(n).is_err());
            set.apply_delta(adds.iter().copied(), removes);
        };
        blocked_add.extend(conflicting_preferences(entries));
        blocked_add.sort_unstable();
        blocked_add.dedup();
        partial_add.sort_unstable();
        add_all(&mut self.blocked, &blocked_add);
        add_all(&mut self.partial, &partial_add);
        for (set, mut adds) in self.accepts.iter_mut().zip(accepts_add) {
            adds.sort_unstable();
            add_all(set, &adds);
        }
        ((blocked_add.len() + partial_add.len()) as u64, removed)
    }

    /// How many numbers listed here `other` does not list (what replacing
    /// this registry by `other` would drop): one merge of sorted sets.
    pub fn dropped_by(&self, other: &NationalRegistry) -> u64 {
        if self.partial.is_empty() && other.partial.is_empty() {
            // Plain registries (all but India's): one tight walk.
            return self.blocked.len() as u64 - common(&self.blocked, &other.blocked);
        }
        let mut theirs = merged(&other.blocked, &other.partial).peekable();
        let mut dropped = 0;
        for n in merged(&self.blocked, &self.partial) {
            while theirs.next_if(|&m| m < n).is_some() {}
            if theirs.peek() != Some(&n) {
                dropped += 1;
            }
        }
        dropped
    }

    /// Numbers listed.
    pub fn len(&self) -> usize {
        self.blocked.len() + self.partial.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the registry says about `number` for a campaign of `category`
    /// (India's 1-8; `None` treats every partial listing as blocked).
    pub fn lookup(&self, number: u64, category: Option<u8>) -> Listing {
        if self.blocked.contains(number) {
            return Listing::Blocked;
        }
        if !self.partial.contains(number) {
            return Listing::Clear;
        }
        let accepted = category
            .filter(|c| (1..=8).contains(c))
            .is_some_and(|c| self.accepts[usize::from(c - 1)].contains(number));
        if !accepted {
            return Listing::Blocked;
        }
        match self.bands.get(&number) {
            Some(b) => Listing::Narrowed(*b),
            None => Listing::Clear,
        }
    }

    /// The registry's content digest: SHA-256 (hex) over its country, every
    /// number of each set in order and the bands, not its load time. Two
    /// nodes that imported the same data hold the same digest whatever the
    /// order or the host, so a node can tell whether its saved copy is the
    /// one last imported into the cluster's store.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.country.iso().as_bytes());
        // Numbers are hashed in blocks: one update per number would cost
        // more than the hashing.
        let mut block = Vec::with_capacity(8 * 4096);
        for set in self.sets() {
            h.update((set.len() as u64).to_le_bytes());
            for n in set.iter() {
                block.extend_from_slice(&n.to_le_bytes());
                if block.len() == block.capacity() {
                    h.update(&block);
                    block.clear();
                }
            }
            h.update(&block);
            block.clear();
        }
        let mut bands: Vec<(&u64, &TimeBand)> = self.bands.iter().collect();
        bands.sort_unstable_by_key(|(n, _)| **n);
        h.update((bands.len() as u64).to_le_bytes());
        for (n, b) in bands {
            h.update(n.to_le_bytes());
            h.update([b.days]);
            match b.window {
                None => h.update([0u8]),
                Some((from, to)) => {
                    h.update([1u8]);
                    for t in [from, to] {
                        use chrono::Timelike;
                        h.update(t.num_seconds_from_midnight().to_le_bytes());
                    }
                }
            }
        }
        hex::encode(h.finalize())
    }

    /// Saves to `path` (written beside it, then renamed into place, so a
    /// crash never leaves half a registry), with its [`digest`](Self::digest),
    /// which it returns.
    pub fn save(&self, path: &Path) -> Result<String, DndError> {
        let io_err = |source| DndError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let digest = self.digest();
        let header = Header {
            country: self.country,
            loaded_at: self.loaded_at,
            bands: self.bands.iter().map(|(n, b)| (*n, *b)).collect(),
            digest: Some(digest.clone()),
        };
        let json = serde_json::to_vec(&header).map_err(|e| io_err(io::Error::other(e)))?;
        {
            let mut w = BufWriter::new(File::create(&tmp).map_err(io_err)?);
            w.write_all(FILE_MAGIC).map_err(io_err)?;
            w.write_all(&(json.len() as u64).to_le_bytes())
                .map_err(io_err)?;
            w.write_all(&json).map_err(io_err)?;
            for set in self.sets() {
                set.write_to(&mut w).map_err(|source| DndError::Set {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            w.flush().map_err(io_err)?;
            w.get_ref().sync_all().map_err(io_err)?;
        }
        std::fs::rename(&tmp, path).map_err(io_err)?;
        Ok(digest)
    }

    /// Loads a registry saved by [`NationalRegistry::save`].
    pub fn load(path: &Path) -> Result<NationalRegistry, DndError> {
        Ok(Self::load_with_digest(path)?.0)
    }

    /// Loads a registry saved by [`NationalRegistry::save`] with its
    /// digest (as saved; computed for a file saved before digests were).
    pub fn load_with_digest(path: &Path) -> Result<(NationalRegistry, String), DndError> {
        let io_err = |source| DndError::Io {
            path: path.to_path_buf(),
            source,
        };
        let header_err = |message: String| DndError::Header {
            path: path.to_path_buf(),
            message,
        };
        let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|_| header_err("too short".into()))?;
        if &magic != FILE_MAGIC {
            return Err(header_err("wrong magic bytes".into()));
        }
        let mut len = [0u8; 8];
        r.read_exact(&mut len)
            .map_err(|_| header_err("too short".into()))?;
        let len = u64::from_le_bytes(len);
        if len > 1 << 32 {
            return Err(header_err(format!("header of {len} bytes")));
        }
        let mut json = vec![0u8; len as usize];
        r.read_exact(&mut json)
            .map_err(|_| header_err("header truncated".into()))?;
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| header_err(e.to_string()))?;
        let mut read_set = || {
            DndSet::read_from(&mut r).map_err(|source| DndError::Set {
                path: path.to_path_buf(),
                source,
            })
        };
        let blocked = read_set()?;
        let partial = read_set()?;
        let mut accepts: [DndSet; 8] = Default::default();
        for a in &mut accepts {
            *a = read_set()?;
        }
        let r = NationalRegistry {
            country: header.country,
            loaded_at: header.loaded_at,
            blocked,
            partial,
            accepts,
            bands: header.bands.into_iter().collect(),
        };
        let digest = header.digest.unwrap_or_else(|| r.digest());
        Ok((r, digest))
    }

    fn sets(&self) -> impl Iterator<Item = &DndSet> {
        std::iter::once(&self.blocked)
            .chain(std::iter::once(&self.partial))
            .chain(self.accepts.iter())
    }
}

const FILE_MAGIC: &[u8; 8] = b"DLRDND01";

#[derive(Serialize, Deserialize)]
struct Header {
    country: Country,
    loaded_at: DateTime<Utc>,
    bands: Vec<(u64, TimeBand)>,
    /// See [`NationalRegistry::digest`]; absent in files saved before it.
    #[serde(default)]
    digest: Option<String>,
}

/// Where the national registry of `country` is saved in `dir`.
pub fn registry_path(dir: &Path, country: Country) -> PathBuf {
    dir.join(format!(
        "national-{}.dnd",
        country.iso().to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    fn ncpr(text: &str) -> Vec<Entry> {
        let p = parse(text.as_bytes(), Format::Ncpr, Country::India, true).expect("read");
        assert!(p.bad.is_empty(), "{:?}", p.bad);
        p.entries
    }

    #[test]
    fn ncpr_category_opt_in_versus_fully_blocked() {
        let r = NationalRegistry::build(
            Country::India,
            t0(),
            &ncpr("number,preference\n9876543210,0\n9876543211,1#5\n9876543212,3\n"),
        );
        // Fully blocked: refused whatever the category.
        assert_eq!(r.lookup(919876543210, Some(1)), Listing::Blocked);
        // Opted in to 1 (banking, insurance): an insurer may call.
        assert_eq!(r.lookup(919876543211, Some(1)), Listing::Clear);
        assert_eq!(r.lookup(919876543211, Some(2)), Listing::Blocked);
        assert_eq!(r.lookup(919876543212, Some(1)), Listing::Blocked);
        // Not registered.
        assert_eq!(r.lookup(919876543299, Some(1)), Listing::Clear);
        // No category declared: every partial listing blocks.
        assert_eq!(r.lookup(919876543211, None), Listing::Blocked);
    }

    /// A number listed twice with different preferences is in doubt: it
    /// is kept fully blocked, not opened to every category any line names;
    /// the same preference twice is no conflict. In a full import and in a
    /// delta alike.
    #[test]
    fn a_number_with_conflicting_preferences_is_kept_fully_blocked() {
        let text = "9876543210,2\n9876543210,1\n9876543211,1\n9876543211,1\n";
        let full = NationalRegistry::build(Country::India, t0(), &ncpr(text));
        let mut delta = NationalRegistry::new(Country::India, t0());
        delta.apply(&ncpr(text));
        for r in [&full, &delta] {
            assert_eq!(r.lookup(919876543210, Some(1)), Listing::Blocked);
            assert_eq!(r.lookup(919876543210, Some(2)), Listing::Blocked);
            assert_eq!(r.lookup(919876543211, Some(1)), Listing::Clear);
        }
    }

    #[test]
    fn ncpr_bands_narrow_the_hours() {
        let r = NationalRegistry::build(
            Country::India,
            t0(),
            &ncpr("9876543211,1,1-5,10:00-13:00\n"),
        );
        let Listing::Narrowed(b) = r.lookup(919876543211, Some(1)) else {
            panic!("expected a band");
        };
        let at = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).expect("time");
        assert!(b.accepts(Weekday::Mon, at(10, 0)));
        assert!(!b.accepts(Weekday::Mon, at(13, 0)));
        assert!(!b.accepts(Weekday::Sat, at(11, 0)));
    }

    #[test]
    fn deltas_add_change_and_remove_without_a_rebuild() {
        let mut r =
            NationalRegistry::build(Country::India, t0(), &ncpr("9876543210,0\n9876543211,0\n"));
        let (added, removed) = r.apply(&ncpr("9876543211,D\n9876543210,1\n9876543213,0,A\n"));
        assert_eq!((added, removed), (2, 1));
        assert_eq!(r.lookup(919876543211, Some(1)), Listing::Clear);
        assert_eq!(r.lookup(919876543210, Some(1)), Listing::Clear);
        assert_eq!(r.lookup(919876543210, Some(2)), Listing::Blocked);
        assert_eq!(r.lookup(919876543213, Some(1)), Listing::Blocked);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn plain_lists_and_bad_lines() {
        let p = parse(
            "# national DNC\n(212) 555-0101\n+1 212 555 0102\n-212-555-0101\nnot a number\n212 555 0103 ext 9\n"
                .as_bytes(),
            Format::Plain,
            Country::UnitedStates,
            true,
        )
        .expect("read");
        let (e, bad) = (p.entries, p.bad);
        assert_eq!(
            e,
            vec![
                Entry::Blocked(12125550101),
                Entry::Blocked(12125550102),
                Entry::Removed(12125550101),
                Entry::Blocked(12125550103),
            ]
        );
        assert_eq!(p.removal_lines, vec![4]);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![5, 6]);
        assert!(!bad[0].kept_blocked && bad[1].kept_blocked, "{bad:?}");
        // In a full file, a removal is refused and removes nothing.
        let p = parse(
            "-212-555-0101\n".as_bytes(),
            Format::Plain,
            Country::UnitedStates,
            false,
        )
        .expect("read");
        assert!(p.entries.is_empty() && p.bad.len() == 1, "{:?}", p.bad);
        // A second '-' is not a removal of the number after it.
        let p = parse(
            "--212-555-0101\n- 212-555-0102\n".as_bytes(),
            Format::Plain,
            Country::UnitedStates,
            true,
        )
        .expect("read");
        assert_eq!(p.entries, vec![Entry::Removed(12125550102)]);
        assert_eq!(p.bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn bad_ncpr_preferences_are_refused_with_the_line() {
        let p = parse(
            "9876543210,9\n9876543211,1,8-2\n".as_bytes(),
            Format::Ncpr,
            Country::India,
            false,
        )
        .expect("read");
        assert_eq!(p.bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![1, 2]);
        // Each number is kept, fully blocked.
        assert_eq!(
            p.entries,
            vec![Entry::Blocked(919876543210), Entry::Blocked(919876543211)]
        );
    }

    #[test]
    fn what_a_full_import_would_drop_is_counted_exactly() {
        let plain = |nums: &[u64]| {
            let e: Vec<Entry> = nums.iter().map(|&n| Entry::Blocked(n)).collect();
            NationalRegistry::build(Country::India, t0(), &e)
        };
        let old = plain(&[1, 3, 5, 7, 9]);
        assert_eq!(old.dropped_by(&plain(&[3, 4, 9, 10])), 3);
        assert_eq!(old.dropped_by(&plain(&[])), 5);
        assert_eq!(old.dropped_by(&old), 0);
        // With NCPR partial listings: a number moving between the sets is
        // not dropped.
        let ncpr_old =
            NationalRegistry::build(Country::India, t0(), &ncpr("9876543210,0\n9876543211,1\n"));
        let ncpr_new =
            NationalRegistry::build(Country::India, t0(), &ncpr("9876543210,2\n9876543212,0\n"));
        assert_eq!(ncpr_old.dropped_by(&ncpr_new), 1);
    }

    #[test]
    fn registries_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = registry_path(dir.path(), Country::India);
        let r = NationalRegistry::build(
            Country::India,
            t0(),
            &ncpr("9876543210,0\n9876543211,1#5,1-5,10:00-13:00\n"),
        );
        r.save(&path).expect("save");
        let back = NationalRegistry::load(&path).expect("load");
        assert_eq!(back.loaded_at, t0());
        assert_eq!(back.lookup(919876543210, Some(1)), Listing::Blocked);
        assert!(matches!(
            back.lookup(919876543211, Some(5)),
            Listing::Narrowed(_)
        ));
        // A damaged file is refused, not half-loaded.
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 9]).expect("write");
        assert!(NationalRegistry::load(&path).is_err());
    }
}
