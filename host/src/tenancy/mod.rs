//! Tenants: namespaces, who may act on them (API keys, the admin key), and what each may
//! spend (quotas).
//!
//! `Tenancy` owns the in-memory view of every namespace (its quotas, start bucket and
//! executor share) and of every API key; the journal holds the durable copy, and every
//! change goes to the journal first. In open mode (the dev server) there is no
//! authentication and any well-formed namespace is served with the default quotas; in
//! key mode (`spool server start`) only registered namespaces exist, and each request
//! must carry a key of its namespace or the admin key.

pub mod keys;
pub mod quotas;

use crate::activity::HttpAllowList;
use crate::clock::{EpochMs, SharedClock};
use crate::ids::{validate_name, Namespace};
use crate::journal::{
    self, ApiKeyRecord, Journal, JournalError, NamespaceRecord, NamespaceUsage, Write,
};
use quotas::{Ceilings, QuotaPatch, Quotas, TokenBucket};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How requests are authenticated.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// No keys; every namespace is open (the dev server).
    Open,
    /// Every request carries `Authorization: Bearer KEY`; the admin key is known by its
    /// SHA-256 only.
    ApiKeys { admin_key_sha256: String },
}

/// Who is calling, once authenticated.
#[derive(Clone, Debug, PartialEq)]
pub enum Caller {
    /// Open mode: anyone may do anything.
    Anyone,
    /// The admin key: namespace management, and any namespace.
    Admin,
    /// A key of one namespace.
    Namespace(Namespace),
}

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// No key, a malformed, unknown, revoked or expired key (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Not there, or not the caller's to see (404, so nothing leaks).
    #[error("{0}")]
    NotFound(String),
    /// The caller's key may not do this (403); only for namespace keys on admin routes.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Storage(String),
}

impl From<JournalError> for TenancyError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::NotFound(m) => TenancyError::NotFound(m),
            JournalError::Conflict(m) => TenancyError::Conflict(m),
            other => TenancyError::Storage(other.to_string()),
        }
    }
}

/// A start refused by the namespace's `starts_per_second`.
#[derive(Debug)]
pub struct RateLimited {
    pub retry_after: Duration,
    pub message: String,
}

/// One namespace as the host runs it: quotas plus the state they need.
pub struct Tenant {
    pub name: Namespace,
    pub quotas: Quotas,
    /// Registered in the journal (always, in key mode).
    pub registered: bool,
    pub created_at_ms: EpochMs,
    starts: Option<Mutex<TokenBucket>>,
    activations: Arc<Semaphore>,
    /// One upload (compilation) at a time per namespace: compiling is the one piece of
    /// a tenant's work that no fuel meters.
    uploads: Arc<Semaphore>,
    allow_http: Option<Arc<HttpAllowList>>,
}

impl Tenant {
    fn new(record: NamespaceRecord, registered: bool) -> Self {
        let quotas = record.quotas;
        Self {
            name: record.name,
            starts: quotas
                .starts_per_second
                .map(|rate| Mutex::new(TokenBucket::new(rate, quotas.start_burst, Instant::now()))),
            activations: Arc::new(Semaphore::new(quotas.max_concurrent_activations as usize)),
            uploads: Arc::new(Semaphore::new(1)),
            allow_http: quotas
                .allow_http
                .clone()
                .map(|rules| Arc::new(HttpAllowList::new(rules))),
            quotas,
            registered,
            created_at_ms: record.created_at_ms,
        }
    }

    /// Takes a start from the namespace's bucket.
    pub fn admit_start(&self) -> Result<(), RateLimited> {
        let Some(bucket) = &self.starts else {
            return Ok(());
        };
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        bucket.take(Instant::now()).map_err(|retry_after| RateLimited {
            retry_after,
            message: format!(
                "namespace {} is over its quota starts_per_second ({}/s, bursts of {}); retry in {} ms",
                self.name,
                self.quotas.starts_per_second.unwrap_or_default(),
                self.quotas.start_burst,
                retry_after.as_millis().max(1)
            ),
        })
    }

    /// The namespace's share of the executor: a guest activation holds one permit.
    pub fn activations(&self) -> &Arc<Semaphore> {
        &self.activations
    }

    /// Waits for the namespace's upload slot; hold the permit while compiling.
    pub async fn upload_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.uploads.clone().acquire_owned().await.ok()
    }

    /// The namespace's own HTTP allow-list, if its quotas set one.
    pub fn allow_http(&self) -> Option<&Arc<HttpAllowList>> {
        self.allow_http.as_ref()
    }
}

pub struct Tenancy {
    journal: Arc<dyn Journal>,
    clock: SharedClock,
    auth: AuthMode,
    defaults: Quotas,
    ceilings: Ceilings,
    tenants: RwLock<HashMap<Namespace, Arc<Tenant>>>,
    /// Every key by id, so that authenticating a request reads no storage.
    keys: RwLock<HashMap<String, ApiKeyRecord>>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("auth", &self.auth)
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// What `describe` tells of a namespace.
#[derive(Debug, serde::Serialize)]
pub struct NamespaceView {
    pub name: String,
    pub created_at_ms: EpochMs,
    pub registered: bool,
    pub quotas: Quotas,
    pub usage: NamespaceUsage,
}

/// A key just created: the only time the key itself is shown.
#[derive(Debug, serde::Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub record: ApiKeyRecord,
}

impl Tenancy {
    /// Open mode with nothing loaded: for engines built without a server (tests).
    pub fn open(journal: Arc<dyn Journal>, clock: SharedClock, defaults: Quotas) -> Arc<Self> {
        Arc::new(Self::empty(
            journal,
            clock,
            AuthMode::Open,
            defaults,
            Ceilings::default(),
        ))
    }

    fn empty(
        journal: Arc<dyn Journal>,
        clock: SharedClock,
        auth: AuthMode,
        defaults: Quotas,
        ceilings: Ceilings,
    ) -> Self {
        Self {
            journal,
            clock,
            auth,
            defaults,
            ceilings,
            tenants: RwLock::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// Loads the registered namespaces and their keys.
    pub async fn load(
        journal: Arc<dyn Journal>,
        clock: SharedClock,
        auth: AuthMode,
        defaults: Quotas,
        ceilings: Ceilings,
    ) -> Result<Arc<Self>, TenancyError> {
        let tenancy = Self::empty(journal, clock, auth, defaults, ceilings);
        for record in tenancy.journal.namespaces().await? {
            for key in tenancy.journal.api_keys(&record.name).await? {
                tenancy.write_keys().insert(key.key_id.clone(), key);
            }
            tenancy.put_tenant(Tenant::new(record, true));
        }
        Ok(Arc::new(tenancy))
    }

    pub fn auth_mode(&self) -> &AuthMode {
        &self.auth
    }

    pub fn defaults(&self) -> &Quotas {
        &self.defaults
    }

    pub fn ceilings(&self) -> &Ceilings {
        &self.ceilings
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, ApiKeyRecord>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    fn put_tenant(&self, tenant: Tenant) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        tenants.insert(tenant.name.clone(), Arc::new(tenant));
    }

    /// The namespace as the host runs it. In open mode an unregistered namespace gets the
    /// default quotas (and is remembered, so its bucket and share persist); in key mode
    /// it does not exist.
    pub fn tenant(&self, name: &Namespace) -> Option<Arc<Tenant>> {
        if let Some(tenant) = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Some(tenant.clone());
        }
        if !matches!(self.auth, AuthMode::Open) {
            return None;
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let tenant = tenants.entry(name.clone()).or_insert_with(|| {
            Arc::new(Tenant::new(
                NamespaceRecord {
                    name: name.clone(),
                    created_at_ms: 0,
                    quotas: self.defaults.clone(),
                },
                false,
            ))
        });
        Some(tenant.clone())
    }

    /// Checks the bearer token of a request.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, TenancyError> {
        let AuthMode::ApiKeys { admin_key_sha256 } = &self.auth else {
            return Ok(Caller::Anyone);
        };
        let Some(presented) = bearer else {
            return Err(TenancyError::Unauthenticated(
                "this server needs an API key: send `Authorization: Bearer KEY` \
                 (the CLI reads SPOOL_API_KEY)"
                    .into(),
            ));
        };
        if keys::matches(admin_key_sha256, presented) {
            return Ok(Caller::Admin);
        }
        let refused = || TenancyError::Unauthenticated("the API key is not valid".into());
        let id = keys::key_id(presented).ok_or_else(refused)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let record = keys.get(id).ok_or_else(refused)?;
        if !keys::matches(&record.secret_sha256, presented) {
            return Err(refused());
        }
        if record.revoked_at_ms.is_some() {
            return Err(TenancyError::Unauthenticated(
                "the API key was revoked".into(),
            ));
        }
        if record
            .expires_at_ms
            .is_some_and(|t| t <= self.clock.now_ms())
        {
            return Err(TenancyError::Unauthenticated("the API key expired".into()));
        }
        Ok(Caller::Namespace(record.namespace.clone()))
    }

    /// The namespace `name` if `caller` may act on it. Anything else is "not found",
    /// whether or not it exists, so a key tells nothing about other namespaces.
    pub fn authorize(
        &self,
        caller: &Caller,
        name: &Namespace,
    ) -> Result<Arc<Tenant>, TenancyError> {
        let allowed = match caller {
            Caller::Anyone | Caller::Admin => true,
            Caller::Namespace(own) => own == name,
        };
        let not_found = || TenancyError::NotFound(format!("namespace {name} not found"));
        if !allowed {
            return Err(not_found());
        }
        self.tenant(name).ok_or_else(not_found)
    }

    /// Only the admin key (or anyone, in open mode) manages namespaces.
    pub fn require_admin(&self, caller: &Caller) -> Result<(), TenancyError> {
        match caller {
            Caller::Anyone | Caller::Admin => Ok(()),
            Caller::Namespace(_) => Err(TenancyError::Forbidden(
                "namespace management needs the admin key".into(),
            )),
        }
    }

    pub async fn create_namespace(
        &self,
        name: &Namespace,
        patch: &QuotaPatch,
    ) -> Result<NamespaceView, TenancyError> {
        validate_name("namespace", name.as_str()).map_err(TenancyError::Invalid)?;
        let quotas = self
            .defaults
            .patched(patch, &self.ceilings)
            .map_err(TenancyError::Invalid)?;
        let record = NamespaceRecord {
            name: name.clone(),
            created_at_ms: self.clock.now_ms(),
            quotas,
        };
        journal::commit(&*self.journal, Write::CreateNamespace(record.clone())).await?;
        self.put_tenant(Tenant::new(record, true));
        self.describe(name).await
    }

    /// Changes the quotas a patch names; the others keep their value.
    pub async fn set_quotas(
        &self,
        name: &Namespace,
        patch: &QuotaPatch,
    ) -> Result<NamespaceView, TenancyError> {
        let current = self
            .registered(name)
            .ok_or_else(|| TenancyError::NotFound(format!("namespace {name} not found")))?;
        let quotas = current
            .quotas
            .patched(patch, &self.ceilings)
            .map_err(TenancyError::Invalid)?;
        journal::commit(
            &*self.journal,
            Write::SetQuotas {
                name: name.clone(),
                quotas: quotas.clone(),
            },
        )
        .await?;
        self.put_tenant(Tenant::new(
            NamespaceRecord {
                name: name.clone(),
                created_at_ms: current.created_at_ms,
                quotas,
            },
            true,
        ));
        self.describe(name).await
    }

    /// Creates the namespace with `patch` on the defaults, or applies `patch` to it if it
    /// exists: how the config file's namespaces are applied at every start.
    pub async fn ensure_namespace(
        &self,
        name: &Namespace,
        patch: &QuotaPatch,
    ) -> Result<NamespaceView, TenancyError> {
        match self.registered(name) {
            Some(_) => self.set_quotas(name, patch).await,
            None => self.create_namespace(name, patch).await,
        }
    }

    pub async fn delete_namespace(&self, name: &Namespace) -> Result<(), TenancyError> {
        // In open mode any namespace's data may be deleted; in key mode only what exists.
        if !matches!(self.auth, AuthMode::Open) && self.registered(name).is_none() {
            return Err(TenancyError::NotFound(format!(
                "namespace {name} not found"
            )));
        }
        journal::commit(&*self.journal, Write::DeleteNamespace(name.clone())).await?;
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.write_keys().retain(|_, key| &key.namespace != name);
        Ok(())
    }

    fn registered(&self, name: &Namespace) -> Option<Arc<Tenant>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .filter(|t| t.registered)
            .cloned()
    }

    /// Registered namespaces (and, in open mode, those used since the start), by name.
    pub async fn list(&self) -> Result<Vec<NamespaceView>, TenancyError> {
        let mut names: Vec<Namespace> = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        let mut views = Vec::with_capacity(names.len());
        for name in names {
            match self.describe(&name).await {
                Ok(view) => views.push(view),
                // Deleted meanwhile.
                Err(TenancyError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(views)
    }

    pub async fn describe(&self, name: &Namespace) -> Result<NamespaceView, TenancyError> {
        let tenant = self
            .tenant(name)
            .ok_or_else(|| TenancyError::NotFound(format!("namespace {name} not found")))?;
        let usage = self.journal.namespace_usage(name).await?;
        Ok(NamespaceView {
            name: name.to_string(),
            created_at_ms: tenant.created_at_ms,
            registered: tenant.registered,
            quotas: tenant.quotas.clone(),
            usage,
        })
    }

    /// Creates a key for a registered namespace; `expires_in` from now, if given.
    pub async fn create_key(
        &self,
        name: &Namespace,
        label: &str,
        expires_in: Option<Duration>,
    ) -> Result<CreatedKey, TenancyError> {
        if self.registered(name).is_none() {
            return Err(TenancyError::NotFound(format!(
                "namespace {name} not found (keys belong to registered namespaces)"
            )));
        }
        if label.len() > 200 || label.chars().any(char::is_control) {
            return Err(TenancyError::Invalid(
                "label: at most 200 characters, no control characters".into(),
            ));
        }
        let minted = keys::mint();
        let now = self.clock.now_ms();
        let record = ApiKeyRecord {
            key_id: minted.key_id,
            namespace: name.clone(),
            secret_sha256: minted.secret_sha256,
            label: label.to_owned(),
            created_at_ms: now,
            expires_at_ms: expires_in
                .map(|d| now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            revoked_at_ms: None,
        };
        journal::commit(&*self.journal, Write::PutApiKey(record.clone())).await?;
        self.write_keys()
            .insert(record.key_id.clone(), record.clone());
        Ok(CreatedKey {
            key: minted.key,
            record,
        })
    }

    pub async fn list_keys(&self, name: &Namespace) -> Result<Vec<ApiKeyRecord>, TenancyError> {
        if self.registered(name).is_none() {
            return Err(TenancyError::NotFound(format!(
                "namespace {name} not found"
            )));
        }
        Ok(self.journal.api_keys(name).await?)
    }

    pub async fn revoke_key(&self, name: &Namespace, key_id: &str) -> Result<(), TenancyError> {
        let at_ms = self.clock.now_ms();
        journal::commit(
            &*self.journal,
            Write::RevokeApiKey {
                namespace: name.clone(),
                key_id: key_id.to_owned(),
                at_ms,
            },
        )
        .await?;
        if let Some(key) = self.write_keys().get_mut(key_id) {
            key.revoked_at_ms.get_or_insert(at_ms);
        }
        Ok(())
    }
}
