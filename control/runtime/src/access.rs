//! Subscriber access control at run time: the policy file (see `sttp_proto::acl` for the rules
//! and the file format), its live reload, and the per-connection view of the catalog.
//!
//! - [`AccessControl`] holds the current policy. [`AccessControl::spawn_watcher`] reloads it on
//!   SIGHUP and when the file changes (checked every second); a file that fails to parse is
//!   logged with the line and cause and the previous policy stays in force.
//! - [`ConnectionAccess`] is what one connection serves from. It evaluates the peer's identity
//!   before the session answers anything — an unknown peer is refused without a byte of STTP —
//!   and gives the session a restricted catalog (only allowed points, in metadata, filters and
//!   signal index caches). It re-evaluates when the policy or the catalog changed, so a reload
//!   applies to the connection's next metadata request or subscription.

use crate::identity::PeerIdentity;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};
use sttp_proto::acl::{AccessPolicy, Who};
use sttp_proto::catalog::Catalog;
use sttp_proto::filter::EvalContext;

/// How often the policy file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The publisher's access policy, shared by every connection; cheap to clone.
#[derive(Clone)]
pub struct AccessControl {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    state: RwLock<State>,
}

#[derive(Clone)]
struct State {
    policy: Arc<AccessPolicy>,
    /// Bumped at every successful reload; connections re-evaluate when it moves.
    generation: u64,
    /// Modification time and length of the file last read (changed or not, parsed or not).
    stamp: Option<(SystemTime, u64)>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state();
        f.debug_struct("AccessControl")
            .field("path", &self.inner.path)
            .field("identities", &s.policy.identities.len())
            .field("generation", &s.generation)
            .finish()
    }
}

impl AccessControl {
    /// Loads the policy file; an unreadable or invalid file is an error (the publisher should not
    /// start with access control silently off).
    pub fn load(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path = path.into();
        let stamp = stamp(&path);
        let policy = read_policy(&path).map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(file = %path.display(), identities = policy.identities.len(), groups = policy.groups.len(), "access control on");
        Ok(Self {
            inner: Arc::new(Inner {
                path: Some(path),
                state: RwLock::new(State {
                    policy: Arc::new(policy),
                    generation: 0,
                    stamp,
                }),
            }),
        })
    }

    /// A fixed policy without a file (library use; [`AccessControl::set_policy`] replaces it).
    pub fn from_policy(policy: AccessPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: None,
                state: RwLock::new(State {
                    policy: Arc::new(policy),
                    generation: 0,
                    stamp: None,
                }),
            }),
        }
    }

    fn state(&self) -> State {
        self.inner
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The policy in force and its generation.
    pub fn policy(&self) -> (u64, Arc<AccessPolicy>) {
        let s = self.state();
        (s.generation, s.policy)
    }

    /// Replaces the policy; connections pick it up at their next request.
    pub fn set_policy(&self, policy: AccessPolicy) {
        let mut s = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
        s.policy = Arc::new(policy);
        s.generation += 1;
    }

    /// Re-reads the file. On success the new policy is in force and the number of identities is
    /// returned; on failure the old policy stays and the reason is returned. Both are logged.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.inner.path else {
            return Err("no policy file to reload".into());
        };
        let new_stamp = stamp(path);
        let result = read_policy(path);
        let mut s = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
        s.stamp = new_stamp;
        match result {
            Ok(policy) => {
                let n = policy.identities.len();
                s.policy = Arc::new(policy);
                s.generation += 1;
                tracing::info!(file = %path.display(), "access policy reloaded: {n} identities");
                Ok(n)
            }
            Err(e) => {
                tracing::error!(file = %path.display(), "access policy not reloaded, the previous one stays in force: {e}");
                Err(e)
            }
        }
    }

    /// Reloads when the file's modification time or length changed since it was last read.
    pub fn reload_if_changed(&self) -> Option<Result<usize, String>> {
        let path = self.inner.path.as_ref()?;
        let now = stamp(path);
        if now == self.state().stamp {
            return None;
        }
        Some(self.reload())
    }

    /// Starts reloading on SIGHUP and on file change. The task ends once every handle to this
    /// policy is dropped.
    pub fn spawn_watcher(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut hup = hangup_signal();
            let mut ticker = tokio::time::interval(POLL_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let forced = tokio::select! {
                    _ = ticker.tick() => false,
                    Some(()) = recv(&mut hup) => true,
                };
                let Some(inner) = weak.upgrade() else { return };
                let ac = AccessControl { inner };
                if forced {
                    tracing::info!("SIGHUP: reloading the access policy");
                    let _ = ac.reload();
                } else {
                    let _ = ac.reload_if_changed();
                }
            }
        })
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the access policy reloads on file change only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

/// Next SIGHUP; never when there is no signal stream.
async fn recv(hup: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = hup {
        return s.recv().await;
    }
    let _ = hup;
    std::future::pending().await
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read_policy(path: &Path) -> Result<AccessPolicy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read access policy {}: {e}", path.display()))?;
    AccessPolicy::from_toml(&text).map_err(|e| format!("access policy {}: {e}", path.display()))
}

/// What the access policy needs to know about a peer.
pub fn who(identity: &PeerIdentity) -> Who {
    Who {
        addr: identity.addr.ip(),
        fingerprint_sha256: identity
            .certificate
            .as_ref()
            .map(|c| c.fingerprint_sha256.clone()),
        common_name: identity
            .certificate
            .as_ref()
            .and_then(|c| c.common_name.clone()),
    }
}

/// The catalog one connection serves from.
pub struct ConnectionAccess {
    control: Option<AccessControl>,
    who: Who,
    /// Policy generation and full catalog the view was made from.
    made_from: Option<(u64, Arc<Catalog>)>,
    view: Arc<Catalog>,
}

impl ConnectionAccess {
    /// Evaluates `identity` against the policy (if any). `Err` is the reason to refuse the
    /// connection; nothing has been sent yet.
    pub fn start(
        control: Option<&AccessControl>,
        identity: &PeerIdentity,
        catalog: Arc<Catalog>,
        now_ticks: i64,
    ) -> Result<Self, String> {
        let mut me = Self {
            control: control.cloned(),
            who: who(identity),
            made_from: None,
            view: catalog.clone(),
        };
        me.catalog(catalog, now_ticks)?;
        Ok(me)
    }

    /// True when [`ConnectionAccess::catalog`] would return the cached view for `full` without
    /// evaluating the policy again.
    pub fn is_current(&self, full: &Arc<Catalog>) -> bool {
        let Some(control) = &self.control else {
            return true;
        };
        let (generation, _) = control.policy();
        matches!(&self.made_from, Some((g, c)) if *g == generation && Arc::ptr_eq(c, full))
    }

    /// The catalog to serve the next frames from, given the publisher's current full catalog.
    /// Re-evaluated only when the policy or the catalog changed. `Err` means the peer no longer
    /// matches any identity: close the connection.
    pub fn catalog(&mut self, full: Arc<Catalog>, now_ticks: i64) -> Result<Arc<Catalog>, String> {
        let Some(control) = &self.control else {
            return Ok(full);
        };
        let (generation, policy) = control.policy();
        if let Some((g, c)) = &self.made_from {
            if *g == generation && Arc::ptr_eq(c, &full) {
                return Ok(self.view.clone());
            }
        }
        let grant = policy
            .evaluate(&self.who, &full, &EvalContext { now_ticks })
            .map_err(|r| format!("refused by access control: {r}"))?;
        for w in &grant.warnings {
            tracing::warn!(peer = %self.who.addr, "{w}");
        }
        tracing::info!(
            peer = %self.who.addr,
            identity = %grant.identity,
            allowed = grant.allowed.len(),
            of = full.signals().len(),
            "access evaluated"
        );
        self.view = Arc::new(full.restricted(&grant.allowed));
        self.made_from = Some((generation, full));
        Ok(self.view.clone())
    }
}
