//! Do-not-call data kept current while the service runs. A number put on
//! the internal list (a `dnc` disposition on another node, an opt-out, an
//! import from the command line), a campaign list, an erasure, or a new
//! national registry saved in the DND folder must stop the next dial to it,
//! not the first after a restart. Every [`REGISTRY_POLL`] the service takes
//! a [`Stamp`] of the store's lists and the saved registry files; when it
//! changed, it loads them again (as `dialler run` does at start) and
//! screens against the new data from then on. A load that fails keeps the
//! data there is (fail closed: nothing already blocked becomes callable)
//! and is tried again at the next poll.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Shared;
use crate::campaign::Campaign;
use crate::compliance::dnd;
use crate::registry::{self, RegistryError};
use crate::store::{DndVersion, Store};

/// How often a running service looks for changed do-not-call data.
pub const REGISTRY_POLL: Duration = Duration::from_secs(10);

/// What the loaded do-not-call data was read from: the store's lists and
/// each saved national registry file (size and modification time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The store's lists (`None`: it could not be read).
    store: Option<DndVersion>,
    /// The national registry files of the campaigns' countries, in
    /// campaign order (`None`: no file, or no folder given).
    files: Vec<Option<(u64, Option<SystemTime>)>>,
}

impl Stamp {
    /// The stamp of data read at an unknown moment: what the service was
    /// given was loaded before it started, and a change in between would
    /// otherwise go unseen, so the first poll loads again.
    fn unknown() -> Stamp {
        Stamp {
            store: None,
            files: Vec::new(),
        }
    }

    /// The stamp of the data now.
    pub async fn take(store: &Store, dir: Option<&Path>, campaigns: &[Campaign]) -> Stamp {
        let version = match store.dnd_version().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "reading the do-not-call data's version failed");
                None
            }
        };
        Stamp {
            store: version,
            files: national_files(dir, campaigns),
        }
    }
}

fn national_files(
    dir: Option<&Path>,
    campaigns: &[Campaign],
) -> Vec<Option<(u64, Option<SystemTime>)>> {
    campaigns
        .iter()
        .map(|c| {
            let path = dnd::registry_path(dir?, c.country());
            let m = std::fs::metadata(path).ok()?;
            Some((m.len(), m.modified().ok()))
        })
        .collect()
}

/// Follows the do-not-call data for `campaigns` until the service ends
/// (see the module docs): the first poll loads it again (what the service
/// was given may predate its start), later ones when it changed. National
/// registries are read from `dir` again only when their files changed or
/// a registry import was recorded in the store (by any node: see
/// [`registry::load_national`] for a copy out of step with it);
/// without a folder the ones given at start stay.
pub async fn watch(shared: Arc<Shared>, campaigns: Vec<Campaign>, dir: Option<PathBuf>) {
    let mut stamp = Stamp::unknown();
    loop {
        tokio::time::sleep(REGISTRY_POLL).await;
        let now = Stamp::take(&shared.store, dir.as_deref(), &campaigns).await;
        // A store that cannot be read says nothing about the lists.
        if now.store.is_none() || now == stamp {
            continue;
        }
        // A registry import recorded by any node may put this node's saved
        // copy out of step (or back in step): the files are checked again.
        let files_changed = now.files != stamp.files
            || now.store.map(|v| v.imports) != stamp.store.map(|v| v.imports);
        match reload(&shared, &campaigns, dir.as_deref(), files_changed).await {
            Ok(()) => {
                crate::metrics::record_dnd_reload(true);
                tracing::info!(
                    national = files_changed,
                    "do-not-call data loaded again: screening against it"
                );
                stamp = now;
            }
            Err(e) => {
                crate::metrics::record_dnd_reload(false);
                tracing::error!(
                    error = %e,
                    "reloading the do-not-call data failed: the data loaded before stays; trying again"
                );
            }
        }
    }
}

/// Loads the lists from the store and, when `national` (and there is a
/// folder), the saved national registries (off the async threads: a
/// national registry is millions of numbers), and puts them in place.
async fn reload(
    shared: &Arc<Shared>,
    campaigns: &[Campaign],
    dir: Option<&Path>,
    national: bool,
) -> Result<(), RegistryError> {
    let refs: Vec<&Campaign> = campaigns.iter().collect();
    let mut fresh = registry::load_lists(&shared.store, &refs).await?;
    fresh.national = match (dir, national) {
        (Some(dir), true) => {
            let expected = registry::expected_national(&shared.store, &refs).await?;
            let dir = dir.to_path_buf();
            let campaigns = campaigns.to_vec();
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&Campaign> = campaigns.iter().collect();
                registry::load_national(&dir, &refs, &expected)
            })
            .await
            .map_err(|e| RegistryError::Io {
                path: PathBuf::from("national registries"),
                source: std::io::Error::other(e.to_string()),
            })??
        }
        _ => shared.registries().national.clone(),
    };
    let fresh = Arc::new(fresh);
    match shared.registries.write() {
        Ok(mut r) => *r = fresh,
        Err(poisoned) => *poisoned.into_inner() = fresh,
    }
    Ok(())
}
