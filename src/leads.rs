//! Lead import: CSV rows to stored leads.
//!
//! Owns reading lead files, finding the phone column, normalising numbers to
//! E.164, inferring time zones, and reporting bad rows with their line. It
//! streams: a reader thread parses rows into bounded batches while the store
//! writes the previous ones, so memory stays flat however long the file is.
//! Duplicates (within the file and against leads already stored) are left to
//! the store's unique key, which makes a second import of the same file add
//! nothing.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::phone::{self, Country};
use crate::store::{NewLead, Store, StoreError};
use crate::timezone;

/// Header names taken as the phone column, in order of preference.
pub const PHONE_HEADERS: [&str; 14] = [
    "phone",
    "phone_number",
    "phonenumber",
    "mobile",
    "mobile_number",
    "mobile_no",
    "msisdn",
    "number",
    "telephone",
    "tel",
    "cell",
    "cellphone",
    "contact_number",
    "phone no",
];

/// Header names taken as an explicit time-zone column.
pub const TIMEZONE_HEADERS: [&str; 3] = ["timezone", "time_zone", "tz"];

/// Rows per batch handed from the reader to the store, each written in one
/// transaction. Large, because every SQLite commit rewrites each index page
/// the batch touched, and random phone numbers touch nearly all of them:
/// with 5,000-row batches a million-row SQLite import took 17.5 s, with
/// 50,000 10 s, and 6.4 s once each batch is sorted by number. One batch
/// queued and one being written keep memory near 150 MiB at peak.
const BATCH_ROWS: usize = 50_000;

/// Errors that stop an import as a whole. Bad rows do not: they are
/// rejected one by one and the rest imports.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The lead list name is not one the store takes.
    #[error("--list {0:?}: a list name is 1-64 letters, digits, '-', '_' or '.'")]
    BadList(String),
    /// The lead file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The CSV could not be parsed at all (for example a bad header row).
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// Line of the problem.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// No column looks like a phone number.
    #[error("{}:1: no phone column among the headers ({headers}); name one with --phone-column", path.display())]
    NoPhoneColumn {
        /// The file.
        path: PathBuf,
        /// The headers found.
        headers: String,
    },
    /// Two columns carry the phone column's name: which one holds the
    /// number is a guess the import will not make.
    #[error("{}:1: the phone column {name:?} appears twice (columns {first} and {second}); rename one or name the column with --phone-column", path.display())]
    DuplicatePhoneColumn {
        /// The file.
        path: PathBuf,
        /// The header.
        name: String,
        /// 1-based column numbers.
        first: usize,
        /// The other.
        second: usize,
    },
    /// Two columns (not the phone's) with the same name: each lead keeps
    /// its fields by column name, so one of the two values would be lost.
    #[error("{}:1: the column {name:?} appears twice (columns {first} and {second}); rename one", path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The header.
        name: String,
        /// 1-based column numbers.
        first: usize,
        /// The other.
        second: usize,
    },
    /// `--phone-column` names a column the file does not have.
    #[error("{}:1: no column named {column:?} (headers: {headers})", path.display())]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The headers found.
        headers: String,
    },
    /// The rejects file could not be written.
    #[error("cannot write rejects to {}: {source}", path.display())]
    Rejects {
        /// The rejects file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did. Serialised as the `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ImportReport {
    /// Data rows read (not counting the header).
    pub rows: u64,
    /// Leads added to the campaign.
    pub imported: u64,
    /// Valid rows skipped as already present (in the file or the campaign).
    pub duplicates: u64,
    /// Rows refused, each with a line and a reason.
    pub rejected: u64,
    /// Of the imported leads, those whose time zone is unknown: stored but
    /// never dialled until fixed.
    pub tz_unknown: u64,
    /// Valid rows on each do-not-call list (imported, refused at dial
    /// time), and those suppressed (refused here).
    pub scrub: Scrub,
}

/// How many valid rows of a lead file each list names. A number on several
/// lists counts on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Scrub {
    /// On the national registry (blocked for the campaign's category).
    pub national: u64,
    /// On the account's internal list.
    pub internal: u64,
    /// On the campaign's own list.
    pub campaign: u64,
    /// Suppressed after an erasure: refused, not imported.
    pub suppressed: u64,
}

/// The lists a lead import counts its rows against.
#[derive(Debug, Clone)]
pub struct Screening {
    /// The lists (the campaign's national registry, the internal and the
    /// campaign lists; the suppression list is read from the store).
    pub registries: std::sync::Arc<crate::compliance::Registries>,
    /// The campaign, for its own list.
    pub campaign: String,
    /// Its country, for the national registry.
    pub country: Country,
    /// India's category of the campaign, if any.
    pub category: Option<u8>,
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Line where the row starts (the header is line 1).
    pub line: u64,
    /// The column at fault, or `row` for the row as a whole.
    pub field: String,
    /// Why.
    pub reason: String,
    /// The row's fields as read (lossy UTF-8).
    pub raw: Vec<String>,
}

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name of the phone column; found from [`PHONE_HEADERS`] when `None`.
    pub phone_column: Option<String>,
    /// Write refused rows to this CSV.
    pub rejects: Option<PathBuf>,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Count rows against these lists for the scrub summary.
    pub screening: Option<Screening>,
    /// The field delimiter; found from the header row when `None` (comma,
    /// semicolon, tab or pipe, whichever it has most of outside quotes).
    pub delimiter: Option<u8>,
    /// The file's text encoding; UTF-8 when `None`.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// The campaign's lead list the rows go into; `default` when `None`.
    pub list: Option<String>,
}

/// The encoding a user names: UTF-8, Latin-1 (ISO-8859-1) or Windows-1252
/// (Latin-1 is read as Windows-1252, its superset, as browsers do), or any
/// other WHATWG encoding label (`utf-16le`, `shift_jis`, ...). Labels that
/// WHATWG maps to no real decoding are refused: the `replacement`
/// encoding (ISO-2022-KR, HZ-GB-2312, ...) reads a whole file as one
/// U+FFFD, and `x-user-defined` is not a text encoding.
pub fn encoding_arg(name: &str) -> Option<&'static encoding_rs::Encoding> {
    let e = match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" => Some(encoding_rs::WINDOWS_1252),
        other => encoding_rs::Encoding::for_label(other.as_bytes())
            // `shift_jis` is a label with an underscore of its own.
            .or_else(|| encoding_rs::Encoding::for_label(name.trim().as_bytes())),
    }?;
    (e != encoding_rs::REPLACEMENT && e != encoding_rs::X_USER_DEFINED).then_some(e)
}

/// The delimiter a header row uses: the candidate it has most of outside
/// quotes, comma when it has none.
pub fn detect_delimiter(header: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if b == b'\n' && !quoted {
            break;
        } else if !quoted && let Some(i) = candidates.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    let best = (0..4)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Where each column goes.
#[derive(Debug, Clone)]
pub struct Columns {
    headers: Vec<String>,
    phone: usize,
    timezone: Option<usize>,
}

impl Columns {
    /// Resolves the phone and time-zone columns from the header row.
    pub fn resolve(
        headers: Vec<String>,
        phone_column: Option<&str>,
        path: &Path,
    ) -> Result<Columns, ImportError> {
        let norm = |h: &str| h.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err(ImportError::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: "no header row: the file is empty (the first line names the columns)"
                    .into(),
            });
        }
        // A column without a name is named by its place (`column_4`):
        // two nameless columns would otherwise share one key in the
        // lead's fields and one value would be lost in silence.
        let headers: Vec<String> = headers
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                if h.trim().is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    h
                }
            })
            .collect();
        let list = || headers.join(", ");
        let phone = match phone_column {
            Some(want) => headers
                .iter()
                .position(|h| h.trim() == want.trim() || norm(h) == norm(want))
                .ok_or_else(|| ImportError::UnknownColumn {
                    path: path.to_path_buf(),
                    column: want.to_string(),
                    headers: list(),
                })?,
            None => PHONE_HEADERS
                .iter()
                .find_map(|p| headers.iter().position(|h| norm(h) == norm(p)))
                .ok_or_else(|| ImportError::NoPhoneColumn {
                    path: path.to_path_buf(),
                    headers: list(),
                })?,
        };
        if let Some(dup) = headers
            .iter()
            .enumerate()
            .position(|(i, h)| i != phone && norm(h) == norm(&headers[phone]))
        {
            return Err(ImportError::DuplicatePhoneColumn {
                path: path.to_path_buf(),
                name: headers[phone].trim().to_string(),
                first: phone.min(dup) + 1,
                second: phone.max(dup) + 1,
            });
        }
        // Fields are kept by their trimmed names: a name twice would keep
        // one value and lose the other in silence.
        for (i, h) in headers.iter().enumerate() {
            let name = h.trim();
            if i == phone {
                continue;
            }
            if let Some(j) = headers[i + 1..]
                .iter()
                .position(|o| o.trim() == name)
                .map(|j| i + 1 + j)
                .filter(|j| *j != phone)
            {
                return Err(ImportError::DuplicateColumn {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    first: i + 1,
                    second: j + 1,
                });
            }
        }
        let timezone = headers
            .iter()
            .position(|h| TIMEZONE_HEADERS.contains(&norm(h).as_str()));
        Ok(Columns {
            headers,
            phone,
            timezone,
        })
    }
}

/// A parsed row.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    /// The lead to insert.
    pub lead: NewLead,
}

/// Turns one CSV record into a lead, or says why not. Pure: no I/O.
pub fn parse_row(
    cols: &Columns,
    record: &csv::ByteRecord,
    line: u64,
    country: Country,
) -> Result<ParsedRow, Reject> {
    let reject = |field: &str, reason: String| Reject {
        line,
        field: field.to_string(),
        reason,
        raw: record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect(),
    };
    if record.len() != cols.headers.len() {
        return Err(reject(
            "row",
            format!(
                "expected {} columns, found {}",
                cols.headers.len(),
                record.len()
            ),
        ));
    }
    let mut values: Vec<&str> = Vec::with_capacity(record.len());
    for (i, f) in record.iter().enumerate() {
        match std::str::from_utf8(f) {
            Ok(v) => values.push(v),
            Err(e) => {
                return Err(reject(
                    &cols.headers[i],
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                ));
            }
        }
    }
    let phone_field = &cols.headers[cols.phone];
    let number = phone::parse(values[cols.phone], country)
        .map_err(|e| reject(phone_field, e.to_string()))?;

    // A zone given in the file can only narrow the number's own: it must
    // be one of the zones its digits allow, in the campaign's country.
    let zones = timezone::infer(&number);
    let timezones = match cols.timezone.map(|i| (&cols.headers[i], values[i].trim())) {
        Some((field, v)) if !v.is_empty() => {
            let given: Tz = v
                .parse()
                .map_err(|_| reject(field, format!("unknown time zone {v:?}")))?;
            let narrowed = timezone::narrow(&number, given).map_err(|e| reject(field, e))?;
            Some(timezone::join(&narrowed))
        }
        _ => (!zones.is_empty()).then(|| timezone::join(zones)),
    };
    let fields = serde_json::to_string(&Fields {
        cols,
        values: &values,
    })
    .map_err(|e| reject("row", format!("cannot encode fields: {e}")))?;
    Ok(ParsedRow {
        lead: NewLead {
            phone: number.e164(),
            country: number.country.iso(),
            timezones,
            fields,
            source_line: i64::try_from(line).unwrap_or(i64::MAX),
        },
    })
}

/// The non-phone, non-timezone columns of a row as a JSON object.
struct Fields<'a> {
    cols: &'a Columns,
    values: &'a [&'a str],
}

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (i, (h, v)) in self.cols.headers.iter().zip(self.values).enumerate() {
            if i != self.cols.phone && Some(i) != self.cols.timezone {
                map.serialize_entry(h.trim(), v)?;
            }
        }
        map.end()
    }
}

/// Leads parsed by the reader thread, split by whether the zone is known
/// so the store's insert counts tell how many unknown-zone leads were new.
struct Batch {
    known: Vec<NewLead>,
    unknown: Vec<NewLead>,
}

/// What the reader thread found besides the batches.
struct ReadSummary {
    rows: u64,
    scrub: Scrub,
    rejects: Vec<Reject>,
    rejected: u64,
}

/// Imports the CSV at `path` into campaign `campaign_id`, dialling
/// `country`. Bad rows are rejected with their line (and written to
/// `opts.rejects` if set); the good ones import.
pub async fn import_file(
    store: &Store,
    campaign_id: i64,
    country: Country,
    path: &Path,
    opts: &ImportOptions,
    now: i64,
) -> Result<(ImportReport, Vec<Reject>), ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    import_reader(store, campaign_id, country, file, size, path, opts, now).await
}

/// As [`import_file`], from any reader; `path` only labels errors and
/// `size` (bytes, 0 if unknown) scales the progress bar.
#[allow(clippy::too_many_arguments)]
pub async fn import_reader<R: Read + Send + 'static>(
    store: &Store,
    campaign_id: i64,
    country: Country,
    input: R,
    size: u64,
    path: &Path,
    opts: &ImportOptions,
    now: i64,
) -> Result<(ImportReport, Vec<Reject>), ImportError> {
    let list = opts.list.as_deref().unwrap_or(crate::store::DEFAULT_LIST);
    if !crate::store::valid_list_name(list) {
        return Err(ImportError::BadList(list.to_string()));
    }
    // Text in another encoding is decoded to UTF-8 as it streams.
    let input: Box<dyn Read + Send> = match opts.encoding {
        Some(e) if e != encoding_rs::UTF_8 => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(e))
                .build(input),
        ),
        _ => Box::new(input),
    };
    let mut input = io::BufReader::with_capacity(1 << 16, input);
    let delimiter = match opts.delimiter {
        Some(d) => d,
        None => {
            let head = io::BufRead::fill_buf(&mut input).map_err(|source| ImportError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            detect_delimiter(head)
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .delimiter(delimiter)
        .buffer_capacity(1 << 16)
        .from_reader(LineIndex::new(input));
    let headers = reader
        .byte_headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|h| {
            std::str::from_utf8(h)
                .map(str::to_string)
                .map_err(|_| ImportError::Csv {
                    path: path.to_path_buf(),
                    line: 1,
                    message: "header row is not valid UTF-8".into(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cols = Columns::resolve(headers, opts.phone_column.as_deref(), path)?;

    let mut rejects_writer = match &opts.rejects {
        Some(p) => {
            // Rejected rows have any number of fields.
            let mut w = csv::WriterBuilder::new()
                .flexible(true)
                .from_path(p)
                .map_err(|source| ImportError::Rejects {
                    path: p.clone(),
                    source,
                })?;
            let mut header = vec!["line".to_string(), "field".into(), "reason".into()];
            header.extend(cols.headers.iter().cloned());
            w.write_record(&header)
                .map_err(|source| ImportError::Rejects {
                    path: p.clone(),
                    source,
                })?;
            Some(w)
        }
        None => None,
    };

    let key = store.suppression_key().await?;
    let (suppressed, _) = crate::compliance::Suppressions::new(key, store.suppressions().await?);
    let screening = opts.screening.clone();
    let bar = progress_bar(opts.progress, size);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
    let reader_path = path.to_path_buf();
    let rejects_path = opts.rejects.clone().unwrap_or_default();
    let reader_bar = bar.clone();
    // CSV parsing and normalisation are CPU work: keep them off the async
    // threads, and overlap them with the store's writes.
    // Byte positions match the file's size only when nothing is decoded.
    let size_is_text = size > 0 && opts.encoding.is_none_or(|e| e == encoding_rs::UTF_8);
    let reader_task = tokio::task::spawn_blocking(move || -> Result<ReadSummary, ImportError> {
        let mut summary = ReadSummary {
            rows: 0,
            scrub: Scrub::default(),
            rejects: Vec::new(),
            rejected: 0,
        };
        let mut record = csv::ByteRecord::new();
        let mut known = Vec::with_capacity(BATCH_ROWS);
        let mut unknown = Vec::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(&reader_path, e)),
            }
            summary.rows += 1;
            let start = record.position().map_or(0, |p| p.byte());
            let line = reader.get_mut().line_at(start);
            // A quote never closed swallows the rest of the file into one
            // field: say so, with the line it opened on.
            let unterminated = size_is_text
                && reader.position().byte() >= size
                && record.iter().any(|f| f.contains(&b'\n'));
            let parsed = if unterminated {
                Err(Reject {
                    line,
                    field: "row".into(),
                    reason: format!(
                        "unterminated quote: a quoted field opened on line {line} runs to the end of the file"
                    ),
                    raw: record
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).chars().take(200).collect())
                        .collect(),
                })
            } else {
                parse_row(&cols, &record, line, country)
            };
            let parsed = parsed.and_then(|row| {
                screen_row(
                    row,
                    &suppressed,
                    screening.as_ref(),
                    &mut summary.scrub,
                    || Reject {
                        line,
                        field: cols.headers[cols.phone].clone(),
                        reason: "suppressed: the person's data was erased at their request".into(),
                        raw: record
                            .iter()
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect(),
                    },
                )
            });
            match parsed {
                Ok(row) => {
                    if row.lead.timezones.is_some() {
                        known.push(row.lead);
                    } else {
                        unknown.push(row.lead);
                    }
                }
                Err(r) => {
                    summary.rejected += 1;
                    if let Some(w) = rejects_writer.as_mut() {
                        let mut out = vec![r.line.to_string(), r.field.clone(), r.reason.clone()];
                        out.extend(r.raw.iter().cloned());
                        w.write_record(&out)
                            .map_err(|source| ImportError::Rejects {
                                path: rejects_path.clone(),
                                source,
                            })?;
                    }
                    // Keep the first rejects for the summary; the rejects
                    // file has them all.
                    if summary.rejects.len() < 1000 {
                        summary.rejects.push(r);
                    }
                }
            }
            if known.len() + unknown.len() >= BATCH_ROWS {
                // In key order, the store's unique-index inserts walk the
                // B-tree left to right instead of jumping around it.
                known.sort_unstable_by(|a, b| a.phone.cmp(&b.phone));
                let batch = Batch {
                    known: std::mem::replace(&mut known, Vec::with_capacity(BATCH_ROWS)),
                    unknown: std::mem::take(&mut unknown),
                };
                if tx.blocking_send(batch).is_err() {
                    // The writer stopped (a store error); it reports why.
                    return Ok(summary);
                }
                if let Some(b) = &reader_bar {
                    b.set_position(record.position().map_or(0, |p| p.byte()));
                }
            }
        }
        if !known.is_empty() || !unknown.is_empty() {
            let _ = tx.blocking_send(Batch { known, unknown });
        }
        if let Some(w) = rejects_writer.as_mut() {
            w.flush().map_err(|e| ImportError::Rejects {
                path: rejects_path.clone(),
                source: e.into(),
            })?;
        }
        Ok(summary)
    });

    let mut report = ImportReport::default();
    let mut valid = 0u64;
    let mut write_result = Ok(());
    while let Some(Batch { known, unknown }) = rx.recv().await {
        valid += (known.len() + unknown.len()) as u64;
        let r = async {
            report.imported += store
                .insert_leads_into(campaign_id, list, &known, now)
                .await?;
            let u = store
                .insert_leads_into(campaign_id, list, &unknown, now)
                .await?;
            report.imported += u;
            report.tz_unknown += u;
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(e) = r {
            write_result = Err(e);
            break;
        }
    }
    drop(rx);
    let summary = reader_task.await.map_err(|e| ImportError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    write_result?;
    let summary = summary?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    report.rows = summary.rows;
    report.scrub = summary.scrub;
    report.rejected = summary.rejected;
    report.duplicates = valid - report.imported;
    Ok((report, summary.rejects))
}

/// Refuses a suppressed row (`suppressed` makes the reject) and counts the
/// row against the lists for the scrub summary.
fn screen_row(
    row: ParsedRow,
    suppressions: &crate::compliance::Suppressions,
    screening: Option<&Screening>,
    scrub: &mut Scrub,
    suppressed: impl FnOnce() -> Reject,
) -> Result<ParsedRow, Reject> {
    let digits = match row.lead.phone.strip_prefix('+').map(str::parse::<u64>) {
        Some(Ok(d)) => d,
        _ => return Ok(row),
    };
    if suppressions.contains(digits) {
        scrub.suppressed += 1;
        return Err(suppressed());
    }
    if let Some(s) = screening {
        let r = &s.registries;
        if r.national.get(&s.country).is_some_and(|n| {
            n.lookup(digits, s.category) == crate::compliance::dnd::Listing::Blocked
        }) {
            scrub.national += 1;
        }
        if r.internal.contains(digits) {
            scrub.internal += 1;
        }
        if r.campaign
            .get(&s.campaign)
            .is_some_and(|c| c.contains(digits))
        {
            scrub.campaign += 1;
        }
    }
    Ok(row)
}

/// Counts lines for rejects. csv's own line count skips newlines inside
/// quoted fields (csv-core copies quoted runs without counting them), so a
/// row after a multi-line field would be reported on the wrong line. This
/// reader notes where each newline is, and whether the line it ends is
/// empty (csv skips blank lines but puts the next record's start before
/// them); as rows arrive in file order, only the newlines read ahead of the
/// current row are kept, so memory stays within the CSV reader's buffer.
struct LineIndex<R> {
    inner: R,
    offset: u64,
    /// Newlines read ahead: offset, and whether the line they end is empty
    /// (nothing but carriage returns).
    pending: std::collections::VecDeque<(u64, bool)>,
    lines_before: u64,
    /// Whether the line being read so far holds only carriage returns.
    line_empty: bool,
}

impl<R> LineIndex<R> {
    fn new(inner: R) -> LineIndex<R> {
        LineIndex {
            inner,
            offset: 0,
            pending: std::collections::VecDeque::new(),
            lines_before: 0,
            line_empty: true,
        }
    }

    /// The 1-based line of a record csv says starts at `offset`; offsets
    /// must not decrease from one call to the next. After a CRLF, csv puts
    /// the next record's start on the LF, so a newline at `offset` itself
    /// belongs to the line before; blank lines csv skipped before the
    /// record are counted past.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|&(nl, _)| nl <= offset) {
            self.pending.pop_front();
            self.lines_before += 1;
        }
        while self.pending.front().is_some_and(|&(_, empty)| empty) {
            self.pending.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            match *b {
                b'\n' => {
                    self.pending
                        .push_back((self.offset + i as u64, self.line_empty));
                    self.line_empty = true;
                }
                b'\r' => {}
                _ => self.line_empty = false,
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn csv_error(path: &Path, e: csv::Error) -> ImportError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Io {
            path: path.to_path_buf(),
            source,
        },
        kind => ImportError::Csv {
            path: path.to_path_buf(),
            line,
            message: format!("{kind:?}"),
        },
    }
}

fn progress_bar(wanted: bool, size: u64) -> Option<indicatif::ProgressBar> {
    if !wanted || !io::stderr().is_terminal() || size == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(headers: &[&str]) -> Columns {
        Columns::resolve(
            headers.iter().map(|s| s.to_string()).collect(),
            None,
            Path::new("t.csv"),
        )
        .expect("columns")
    }

    fn rec(fields: &[&[u8]]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    fn lines_of(data: &str) -> Vec<(u64, String)> {
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(LineIndex::new(data.as_bytes()));
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while r.read_byte_record(&mut rec).expect("csv") {
            let start = rec.position().map_or(0, |p| p.byte());
            let line = r.get_mut().line_at(start);
            out.push((line, String::from_utf8_lossy(&rec[0]).into_owned()));
        }
        out
    }

    #[test]
    fn line_numbers_count_quoted_newlines_with_lf_and_crlf() {
        for nl in ["\n", "\r\n"] {
            let data =
                format!("h,x{nl}a,1{nl}b,\"two{nl}lines\"{nl}c,3{nl}\"d{nl}{nl}e\",4{nl}f,5{nl}");
            let want: Vec<(u64, String)> = vec![
                (2, "a".into()),
                (3, "b".into()),
                (5, "c".into()),
                (6, format!("d{nl}{nl}e")),
                (9, "f".into()),
            ];
            assert_eq!(lines_of(&data), want, "{nl:?}");
        }
    }

    /// csv skips blank lines but starts the next record before them: the
    /// line reported is the record's own, after one blank line or several,
    /// with LF and CRLF, and after a quoted field holding a blank line.
    #[test]
    fn line_numbers_count_blank_lines_before_a_row() {
        for nl in ["\n", "\r\n"] {
            let data = format!(
                "h,x{nl}{nl}{nl}a,1{nl}b,2{nl}{nl}c,3{nl}\"d{nl}{nl}e\",4{nl}{nl}{nl}{nl}f,5{nl}"
            );
            let want: Vec<(u64, String)> = vec![
                (4, "a".into()),
                (5, "b".into()),
                (7, "c".into()),
                (8, format!("d{nl}{nl}e")),
                (14, "f".into()),
            ];
            assert_eq!(lines_of(&data), want, "{nl:?}");
        }
    }

    #[test]
    fn an_encoding_is_any_real_whatwg_label_and_nothing_else() {
        use encoding_rs::{SHIFT_JIS, UTF_8, UTF_16LE, WINDOWS_1252};
        for (label, want) in [
            ("utf-8", UTF_8),
            ("UTF8", UTF_8),
            ("latin-1", WINDOWS_1252),
            ("Latin_1", WINDOWS_1252),
            ("iso-8859-1", WINDOWS_1252),
            ("windows-1252", WINDOWS_1252),
            ("utf-16le", UTF_16LE),
            ("shift_jis", SHIFT_JIS),
        ] {
            assert_eq!(encoding_arg(label), Some(want), "{label}");
        }
        for label in [
            "iso-2022-kr",
            "hz-gb-2312",
            "replacement",
            "x-user-defined",
            "ebcdic",
            "",
        ] {
            assert_eq!(encoding_arg(label), None, "{label}");
        }
    }

    #[test]
    fn phone_column_is_found_by_name() {
        assert_eq!(cols(&["Name", "Mobile No", "City"]).phone, 1);
        assert_eq!(cols(&["name", "MSISDN"]).phone, 1);
        let err = Columns::resolve(vec!["a".into(), "b".into()], None, Path::new("t.csv"))
            .expect_err("none");
        assert!(err.to_string().contains("no phone column"), "{err}");
        let err =
            Columns::resolve(vec!["a".into()], Some("cell"), Path::new("t.csv")).expect_err("none");
        assert!(
            err.to_string().contains("no column named \"cell\""),
            "{err}"
        );
    }

    #[test]
    fn a_row_becomes_a_lead_with_fields_and_zone() {
        let c = cols(&["name", "phone", "policy"]);
        let row = parse_row(
            &c,
            &rec(&[b"Asha", b"098765 43210", b"P-1"]),
            2,
            Country::India,
        )
        .expect("ok");
        assert_eq!(row.lead.phone, "+919876543210");
        assert_eq!(row.lead.timezones.as_deref(), Some("Asia/Calcutta"));
        assert_eq!(row.lead.fields, r#"{"name":"Asha","policy":"P-1"}"#);
    }

    /// Columns without a name keep their values under their place's name;
    /// before, two of them shared the key "" and one value was lost.
    #[test]
    fn nameless_columns_are_named_by_their_place() {
        let c = cols(&["name", "", "phone", " "]);
        let row = parse_row(
            &c,
            &rec(&[b"Asha", b"gold", b"098765 43210", b"north"]),
            2,
            Country::India,
        )
        .expect("ok");
        assert_eq!(
            row.lead.fields,
            r#"{"name":"Asha","column_2":"gold","column_4":"north"}"#
        );
        // A real column of that name is a duplicate, refused.
        let err = Columns::resolve(
            vec!["phone".into(), "".into(), "column_2".into()],
            None,
            Path::new("t.csv"),
        )
        .expect_err("duplicate");
        assert!(err.to_string().contains("column_2"), "{err}");
    }

    #[test]
    fn a_given_timezone_narrows_or_refuses_the_row() {
        let c = cols(&["phone", "timezone"]);
        let row = |phone: &[u8], tz: &[u8], c2: Country| parse_row(&c, &rec(&[phone, tz]), 2, c2);
        // 208 spans Mountain and Pacific: the file's zone picks one.
        let ok = row(b"2085550123", b"America/Boise", Country::UnitedStates).expect("ok");
        assert_eq!(ok.lead.timezones.as_deref(), Some("America/Boise"));
        assert_eq!(ok.lead.fields, "{}");
        // Empty: the number's zones.
        let ok = row(b"2125550123", b"", Country::UnitedStates).expect("ok");
        assert_eq!(ok.lead.timezones.as_deref(), Some("America/New_York"));
        // Not a zone, a zone the number cannot be in, another country's.
        for (phone, tz, c2) in [
            (&b"2125550123"[..], &b"Mars/Base"[..], Country::UnitedStates),
            (b"2125550123", b"America/Los_Angeles", Country::UnitedStates),
            (b"9876543210", b"America/New_York", Country::India),
        ] {
            let r = row(phone, tz, c2).expect_err("refused");
            assert_eq!((r.line, r.field.as_str()), (2, "timezone"), "{}", r.reason);
        }
    }

    #[test]
    fn bad_rows_are_rejected_with_line_field_and_reason() {
        let c = cols(&["name", "phone"]);
        let r = parse_row(&c, &rec(&[b"x"]), 7, Country::India).expect_err("short");
        assert_eq!((r.line, r.field.as_str()), (7, "row"));
        assert!(r.reason.contains("expected 2 columns, found 1"));
        let r = parse_row(&c, &rec(&[b"\xff\xfe", b"9876543210"]), 8, Country::India)
            .expect_err("utf8");
        assert_eq!((r.line, r.field.as_str()), (8, "name"));
        assert!(r.reason.contains("invalid UTF-8"));
        let r = parse_row(&c, &rec(&[b"y", b""]), 9, Country::India).expect_err("empty");
        assert_eq!(r.reason, "empty phone number");
        let r = parse_row(&c, &rec(&[b"y", b"+44 7700 900123"]), 10, Country::India)
            .expect_err("foreign");
        assert!(r.reason.contains("out of country"), "{}", r.reason);
    }
}
