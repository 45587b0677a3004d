//! Who a node is, decided by the coordinator: the join token, the enrollment rules, and the
//! binding of every node name to the key (and VM) that first enrolled it.
//!
//! - The join token enrolls a node once. It is kept as a SHA-256 hash with its scope (a role
//!   its nodes get, the host list that may use it, an expiry); `lfleet token rotate`
//!   replaces it and writes the new one to the token file for cluster-init to share.
//! - A name is bound to the public key that enrolled it and, where the platform gives one,
//!   to the VM id it reported. Enrolling a bound name with another key or from another VM is
//!   refused (the real node's session is untouched); the same key may enroll again.
//!   `lfleet node remove` releases the name (its certificate is refused from then on);
//!   `lfleet node rekey` releases only the key, so a reimaged VM can enroll again.
//! - Every session and renewal is checked against the binding: the certificate's key must
//!   be the bound key of a name that was not removed. A certificate issued before bindings
//!   existed (an upgrade) binds its key on first use; one issued after must have a binding.
//! - The node's role, nodearray and Slurm name come from the token's scope and the
//!   `[enrollment]` rules of coordinator.toml, never from what the agent says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lfleet_types::Role;
use serde::{Deserialize, Serialize};

use crate::hostlist::HostPattern;
use crate::store::{Store, StoreError, Table, Write, put};

/// Who a node is, for choosing its filesystems: the coordinator's facts, never an agent's
/// claims.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub name: String,
    pub role: Role,
    pub nodearray: String,
}

/// One enrollment rule: the nodes it matches (Slurm host lists) and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRule {
    pub nodes: Vec<HostPattern>,
    pub role: Role,
    pub nodearray: String,
    /// The Slurm node name: `{name}` is the node's name, `{short}` its first DNS label.
    pub slurm_name: String,
}

/// `[enrollment]`: rules in order, the first match wins; no match is a compute node of no
/// nodearray whose Slurm name is its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnrollmentRules {
    pub rules: Vec<EnrollmentRule>,
}

impl EnrollmentRules {
    /// What `name` is, with `token_role` (the role the token was scoped to) first.
    pub fn decide(&self, name: &str, token_role: Option<Role>) -> (NodeIdentity, String) {
        let rule = self
            .rules
            .iter()
            .find(|r| r.nodes.iter().any(|p| p.matches(name)));
        let short = name.split('.').next().unwrap_or(name);
        let slurm_name = rule
            .map(|r| {
                r.slurm_name
                    .replace("{name}", name)
                    .replace("{short}", short)
            })
            .unwrap_or_else(|| name.to_owned());
        (
            NodeIdentity {
                name: name.to_owned(),
                role: token_role.or(rule.map(|r| r.role)).unwrap_or_default(),
                nodearray: rule.map(|r| r.nodearray.clone()).unwrap_or_default(),
            },
            slurm_name,
        )
    }
}

/// The join token's record: its hash and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub role: Option<Role>,
    /// Host lists that may enroll with it; empty: any node.
    pub nodes: Vec<String>,
    /// Unix seconds; `None`: never.
    pub expires_unix: Option<i64>,
    pub created_ms: i64,
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A node name's binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub name: String,
    /// The bound key; empty after a rekey (the next enrollment binds one).
    pub key_fingerprint: String,
    pub vm_id: String,
    /// The role the enrolling token was scoped to.
    pub token_role: Option<Role>,
    pub enrolled_ms: i64,
    /// The last certificate's not-after time.
    pub not_after_unix: i64,
    /// The name was released: certificates of the bound key are refused.
    pub removed: bool,
}

/// Why an enrollment, session or renewal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("wrong join token")]
    WrongToken,
    #[error("the join token expired")]
    TokenExpired,
    #[error("the join token does not allow {0}")]
    NotInTokenScope(String),
    #[error("{0} is enrolled with another key; `lfleet node rekey {0}` releases it")]
    BoundToAnotherKey(String),
    #[error("{name} is enrolled from VM {bound}, not {claimed}")]
    BoundToAnotherVm {
        name: String,
        bound: String,
        claimed: String,
    },
    #[error("{0} was removed; it must enroll again")]
    Removed(String),
    #[error("no enrollment of {0} is recorded for this certificate")]
    NotEnrolled(String),
}

/// An operator certificate's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AdminRecord {
    pub name: String,
    /// (serial, not-after unix, issued ms)
    pub issued: Vec<(String, i64, i64)>,
    /// Certificates of this name issued before this are refused.
    pub revoked_at_ms: Option<i64>,
}

impl AdminRecord {
    /// Whether the certificate `serial` of this operator may be used.
    pub fn allows(&self, serial: &str) -> bool {
        match self.revoked_at_ms {
            None => true,
            Some(at) => self
                .issued
                .iter()
                .any(|(s, _, issued)| s == serial && *issued > at),
        }
    }
}

/// The registry of tokens, bindings and operator certificates.
#[derive(Debug)]
pub struct Identities {
    store: Arc<Store>,
    token: Mutex<JoinToken>,
    token_file: PathBuf,
    bindings: Mutex<BTreeMap<String, Binding>>,
    rules: EnrollmentRules,
    /// Certificates that started before this are from before bindings existed.
    bindings_since_unix: i64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Identities {
    /// Loads the registry; `file_token` (read from or made in the token file) becomes the
    /// join token when the store holds none yet.
    pub fn load(
        store: Arc<Store>,
        file_token: &str,
        token_file: PathBuf,
        rules: EnrollmentRules,
        now_ms: i64,
    ) -> Result<Identities, StoreError> {
        let token = match store
            .meta("join_token")?
            .and_then(|t| serde_json::from_str::<JoinToken>(&t).ok())
        {
            Some(token) => token,
            None => {
                let token = JoinToken {
                    hash: sha256_hex(file_token),
                    role: None,
                    nodes: Vec::new(),
                    expires_unix: None,
                    created_ms: now_ms,
                };
                store.commit_blocking(vec![token_write(&token)])?;
                token
            }
        };
        let bindings_since_unix = match store.meta("bindings_since_unix")? {
            Some(text) => text.parse().unwrap_or(0),
            None => {
                let since = now_ms / 1000;
                store.commit_blocking(vec![Write::Meta {
                    key: "bindings_since_unix".into(),
                    value: since.to_string(),
                }])?;
                since
            }
        };
        let bindings = store
            .records::<Binding>(Table::Identities)?
            .into_iter()
            .collect();
        Ok(Identities {
            store,
            token: Mutex::new(token),
            token_file,
            bindings: Mutex::new(bindings),
            rules,
            bindings_since_unix,
        })
    }

    /// Checks a join token for enrolling `name` at `now_unix`; the role it scopes.
    pub fn check_token(
        &self,
        name: &str,
        token: &str,
        now_unix: i64,
    ) -> Result<Option<Role>, IdentityError> {
        let record = lock(&self.token).clone();
        let given = sha256_hex(token);
        let same = given.len() == record.hash.len()
            && given
                .bytes()
                .zip(record.hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if token.is_empty() || !same {
            return Err(IdentityError::WrongToken);
        }
        if record.expires_unix.is_some_and(|at| now_unix >= at) {
            return Err(IdentityError::TokenExpired);
        }
        if !record.nodes.is_empty()
            && !record
                .nodes
                .iter()
                .filter_map(|p| HostPattern::parse(p).ok())
                .any(|p| p.matches(name))
        {
            return Err(IdentityError::NotInTokenScope(name.to_owned()));
        }
        Ok(record.role)
    }

    /// Binds `name` to `key` (and `vm_id`) unless it is bound to another; the same key may
    /// enroll again. Committed before the certificate is handed out.
    pub async fn enroll(
        &self,
        name: &str,
        key: &str,
        vm_id: &str,
        token_role: Option<Role>,
        not_after_unix: i64,
        now_ms: i64,
    ) -> Result<(), EnrollFailure> {
        let binding = {
            let bindings = lock(&self.bindings);
            if let Some(bound) = bindings.get(name).filter(|b| !b.removed) {
                if !bound.key_fingerprint.is_empty() && bound.key_fingerprint != key {
                    return Err(EnrollFailure::Refused(IdentityError::BoundToAnotherKey(
                        name.to_owned(),
                    )));
                }
                if !bound.vm_id.is_empty() && !vm_id.is_empty() && bound.vm_id != vm_id {
                    return Err(EnrollFailure::Refused(IdentityError::BoundToAnotherVm {
                        name: name.to_owned(),
                        bound: bound.vm_id.clone(),
                        claimed: vm_id.to_owned(),
                    }));
                }
            }
            Binding {
                name: name.to_owned(),
                key_fingerprint: key.to_owned(),
                vm_id: vm_id.to_owned(),
                token_role,
                enrolled_ms: now_ms,
                not_after_unix,
                removed: false,
            }
        };
        self.store
            .commit(vec![put(Table::Identities, name, &binding)])
            .await
            .map_err(EnrollFailure::Store)?;
        lock(&self.bindings).insert(name.to_owned(), binding);
        Ok(())
    }

    /// Checks a node certificate (for a session or a renewal). A certificate from before
    /// bindings existed binds its key now.
    pub fn check_certificate(
        &self,
        name: &str,
        key: &str,
        not_before_unix: i64,
    ) -> Result<Binding, IdentityError> {
        let mut bindings = lock(&self.bindings);
        match bindings.get(name) {
            Some(bound) if bound.removed => Err(IdentityError::Removed(name.to_owned())),
            Some(bound) if bound.key_fingerprint == key => Ok(bound.clone()),
            Some(_) => Err(IdentityError::BoundToAnotherKey(name.to_owned())),
            None if not_before_unix < self.bindings_since_unix => {
                let binding = Binding {
                    name: name.to_owned(),
                    key_fingerprint: key.to_owned(),
                    vm_id: String::new(),
                    token_role: None,
                    enrolled_ms: not_before_unix * 1000,
                    not_after_unix: 0,
                    removed: false,
                };
                self.store
                    .submit(vec![put(Table::Identities, name, &binding)]);
                bindings.insert(name.to_owned(), binding.clone());
                Ok(binding)
            }
            None => Err(IdentityError::NotEnrolled(name.to_owned())),
        }
    }

    /// Records a renewed certificate's expiry.
    pub fn renewed(&self, name: &str, not_after_unix: i64) {
        let mut bindings = lock(&self.bindings);
        if let Some(binding) = bindings.get_mut(name) {
            binding.not_after_unix = not_after_unix;
            self.store
                .submit(vec![put(Table::Identities, name, &*binding)]);
        }
    }

    /// What a bound node is (role from its token, then the rules).
    pub fn identity_of(&self, name: &str) -> (NodeIdentity, String) {
        let token_role = lock(&self.bindings).get(name).and_then(|b| b.token_role);
        self.rules.decide(name, token_role)
    }

    /// Releases `name` (its certificate is refused from now on), or with `rekey_only` only
    /// its key. False when the name has no binding.
    pub async fn remove(&self, name: &str, rekey_only: bool) -> Result<bool, StoreError> {
        let Some(mut binding) = lock(&self.bindings).get(name).cloned() else {
            return Ok(false);
        };
        if rekey_only {
            binding.key_fingerprint.clear();
            binding.vm_id.clear();
        } else {
            binding.removed = true;
        }
        self.store
            .commit(vec![put(Table::Identities, name, &binding)])
            .await?;
        lock(&self.bindings).insert(name.to_owned(), binding);
        Ok(true)
    }

    /// Replaces the join token: the new one is committed and written to the token file
    /// (0600) before it is returned; the old one is refused from then on.
    pub async fn rotate(
        &self,
        role: Option<Role>,
        nodes: Vec<String>,
        expires_unix: Option<i64>,
        now_ms: i64,
    ) -> Result<String, RotateError> {
        for pattern in &nodes {
            HostPattern::parse(pattern).map_err(RotateError::BadNodes)?;
        }
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let record = JoinToken {
            hash: sha256_hex(&token),
            role,
            nodes,
            expires_unix,
            created_ms: now_ms,
        };
        let files = lfleet_host::HostRoot::new("/");
        if let Some(parent) = self.token_file.parent() {
            files
                .create_dir_all(parent, 0o755)
                .map_err(RotateError::File)?;
        }
        files
            .write_atomic(&self.token_file, format!("{token}\n").as_bytes(), 0o600)
            .map_err(RotateError::File)?;
        self.store
            .commit(vec![token_write(&record)])
            .await
            .map_err(RotateError::Store)?;
        *lock(&self.token) = record;
        Ok(token)
    }

    /// Every binding, by name.
    pub fn bindings(&self) -> Vec<Binding> {
        lock(&self.bindings).values().cloned().collect()
    }

    /// Every operator certificate record, read from the store (`admin-cert` writes there
    /// from another process).
    pub fn admins(&self) -> Result<Vec<AdminRecord>, StoreError> {
        Ok(self
            .store
            .records::<AdminRecord>(Table::Admins)?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// Whether an operator's certificate may be used (a store that cannot be read refuses).
    pub fn admin_allowed(&self, name: &str, serial: &str) -> bool {
        match self.admins() {
            Ok(admins) => admins
                .iter()
                .find(|record| record.name == name)
                .is_none_or(|record| record.allows(serial)),
            Err(error) => {
                tracing::error!(%error, "operator records unreadable; refusing");
                false
            }
        }
    }

    /// Revokes every certificate of operator `name` issued until now; how many it had.
    pub async fn revoke_admin(&self, name: &str, now_ms: i64) -> Result<usize, StoreError> {
        let mut record = self
            .admins()?
            .into_iter()
            .find(|record| record.name == name)
            .unwrap_or_else(|| AdminRecord {
                name: name.to_owned(),
                ..AdminRecord::default()
            });
        record.revoked_at_ms = Some(now_ms);
        self.store
            .commit(vec![put(Table::Admins, name, &record)])
            .await?;
        Ok(record.issued.len())
    }
}

/// Records an issued operator certificate (the `admin-cert` command, run beside a live
/// coordinator: the store takes concurrent writers).
pub fn record_admin(
    store: &Store,
    name: &str,
    serial: &str,
    not_after_unix: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut record = store
        .records::<AdminRecord>(Table::Admins)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r)
        .unwrap_or_else(|| AdminRecord {
            name: name.to_owned(),
            ..AdminRecord::default()
        });
    record
        .issued
        .push((serial.to_owned(), not_after_unix, now_ms));
    store.commit_blocking(vec![put(Table::Admins, name, &record)])
}

fn token_write(token: &JoinToken) -> Write {
    Write::Meta {
        key: "join_token".into(),
        value: serde_json::to_string(token).expect("tokens serialize"),
    }
}

/// Why an enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollFailure {
    #[error(transparent)]
    Refused(IdentityError),
    #[error("recording the enrollment")]
    Store(#[source] StoreError),
}

/// Why a token rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("nodes: {0}")]
    BadNodes(String),
    #[error("writing the token file")]
    File(#[source] lfleet_host::HostError),
    #[error("recording the token")]
    Store(#[source] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &std::path::Path) -> Identities {
        let store = Arc::new(Store::open(&dir.join("store.db")).unwrap());
        Identities::load(
            store,
            "file-token-0123456789",
            dir.join("join-token"),
            EnrollmentRules {
                rules: vec![EnrollmentRule {
                    nodes: vec![HostPattern::parse("sched-[1-2]").unwrap()],
                    role: Role::Head,
                    nodearray: "scheduler".into(),
                    slurm_name: "cc-{short}".into(),
                }],
            },
            1_000_000,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_bound_name_refuses_another_key_and_vm_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let ids = registry(dir.path());
        ids.enroll("n1", "k1", "vm-a", None, 0, 1).await.unwrap();
        ids.enroll("n1", "k1", "vm-a", None, 0, 2).await.unwrap();
        assert!(matches!(
            ids.enroll("n1", "k2", "vm-a", None, 0, 3).await,
            Err(EnrollFailure::Refused(IdentityError::BoundToAnotherKey(_)))
        ));
        assert!(matches!(
            ids.enroll("n1", "k1", "vm-b", None, 0, 3).await,
            Err(EnrollFailure::Refused(
                IdentityError::BoundToAnotherVm { .. }
            ))
        ));
        assert!(ids.check_certificate("n1", "k1", 2_000).is_ok());
        assert!(ids.check_certificate("n1", "k2", 2_000).is_err());
        assert!(ids.remove("n1", false).await.unwrap());
        assert_eq!(
            ids.check_certificate("n1", "k1", 2_000),
            Err(IdentityError::Removed("n1".into()))
        );
        ids.enroll("n1", "k3", "vm-c", None, 0, 4).await.unwrap();
        assert!(ids.check_certificate("n1", "k3", 2_000).is_ok());
        // Rekey: the same name, any key next.
        assert!(ids.remove("n1", true).await.unwrap());
        ids.enroll("n1", "k4", "vm-d", None, 0, 5).await.unwrap();
        assert!(ids.check_certificate("n1", "k3", 2_000).is_err());
    }

    #[tokio::test]
    async fn certificates_from_before_bindings_bind_on_first_use_later_ones_need_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let ids = registry(dir.path());
        // bindings_since is 1_000 s (1_000_000 ms).
        assert!(ids.check_certificate("old", "k", 999).is_ok());
        assert!(ids.check_certificate("old", "k", 999).is_ok());
        assert!(ids.check_certificate("old", "other", 999).is_err());
        assert_eq!(
            ids.check_certificate("new", "k", 1_001),
            Err(IdentityError::NotEnrolled("new".into()))
        );
    }

    #[tokio::test]
    async fn tokens_are_checked_by_hash_scope_and_expiry_and_rotation_replaces_them() {
        let dir = tempfile::tempdir().unwrap();
        let ids = registry(dir.path());
        assert_eq!(ids.check_token("n1", "file-token-0123456789", 0), Ok(None));
        assert_eq!(
            ids.check_token("n1", "file-token-x", 0),
            Err(IdentityError::WrongToken)
        );
        assert_eq!(ids.check_token("n1", "", 0), Err(IdentityError::WrongToken));
        let token = ids
            .rotate(Some(Role::Login), vec!["login-[1-3]".into()], Some(100), 5)
            .await
            .unwrap();
        let file = lfleet_host::HostRoot::new(dir.path())
            .read_to_string("join-token")
            .unwrap();
        assert_eq!(file.trim(), token);
        assert_eq!(
            ids.check_token("login-2", "file-token-0123456789", 0),
            Err(IdentityError::WrongToken)
        );
        assert_eq!(ids.check_token("login-2", &token, 0), Ok(Some(Role::Login)));
        assert_eq!(
            ids.check_token("hpc-1", &token, 0),
            Err(IdentityError::NotInTokenScope("hpc-1".into()))
        );
        assert_eq!(
            ids.check_token("login-2", &token, 100),
            Err(IdentityError::TokenExpired)
        );
        assert!(matches!(
            ids.rotate(None, vec!["bad[".into()], None, 6).await,
            Err(RotateError::BadNodes(_))
        ));
    }

    #[test]
    fn rules_decide_role_nodearray_and_slurm_name() {
        let dir = tempfile::tempdir().unwrap();
        let ids = registry(dir.path());
        let (identity, slurm) = ids.rules.decide("sched-1.internal.cloudapp.net", None);
        assert_eq!(
            identity.role,
            Role::Compute,
            "FQDN does not match sched-[1-2]"
        );
        assert_eq!(slurm, "sched-1.internal.cloudapp.net");
        let (identity, slurm) = ids.rules.decide("sched-2", None);
        assert_eq!(
            (identity.role, identity.nodearray.as_str()),
            (Role::Head, "scheduler")
        );
        assert_eq!(slurm, "cc-sched-2");
        let (identity, _) = ids.rules.decide("sched-2", Some(Role::Login));
        assert_eq!(identity.role, Role::Login, "the token's scope comes first");
    }

    #[tokio::test]
    async fn revoked_admins_are_refused_until_issued_again() {
        let dir = tempfile::tempdir().unwrap();
        let ids = registry(dir.path());
        assert!(ids.admin_allowed("alice", "legacy"));
        record_admin(&ids.store, "alice", "s1", 0, 10).unwrap();
        ids.revoke_admin("alice", 20).await.unwrap();
        assert!(!ids.admin_allowed("alice", "s1"));
        assert!(!ids.admin_allowed("alice", "legacy"));
        record_admin(&ids.store, "alice", "s2", 0, 30).unwrap();
        let reloaded = registry(dir.path());
        assert!(reloaded.admin_allowed("alice", "s2"));
        assert!(!reloaded.admin_allowed("alice", "s1"));
    }
}
