//! Makes [`Changes`] on the API server under one ownership rule: an object is created by a create
//! (never applied), so a name someone else already holds is refused ([`Error::NameTaken`]), never
//! overwritten; only objects the operator created for the same owner are replaced or deleted.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use super::diff::{Changes, diff, matches};
use super::index::Index;
use super::object::{Key, Kind, Object, Owner};
use crate::api::FIELD_MANAGER;

/// What [`execute`] changed: only writes the API server took, as `<kind> <namespace>/<name>`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects created or rewritten (a sync, a restored edit or a recreated deletion).
    pub written: Vec<String>,
    /// Objects removed.
    pub deleted: Vec<String>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.deleted.is_empty()
    }
}

/// Objects passed along an extension chain under the same names, so that what they carry never
/// disappears: an extension takes its original's over in place, and the original leaves alone
/// what its extensions took.
#[derive(Default)]
pub struct Handover<'a> {
    /// The original an extension continues: its objects under a desired name are taken over
    /// (rewritten with the extension's labels).
    pub from: Option<&'a Owner>,
    /// The extensions of an original: objects they hold are theirs now.
    pub to: &'a [Owner],
}

/// Makes the objects of `owner` exactly `desired`, starting from what `index` holds of them,
/// passing objects along an extension chain as `handover` says.
pub async fn converge(
    client: &Client,
    index: &Index,
    owner: &Owner,
    handover: &Handover<'_>,
    desired: &[Object],
) -> Result<Applied, Error> {
    let wanted: Vec<Key> = desired.iter().map(Object::key).collect();
    let mut existing = index.owned_by(owner);
    if let Some(original) = handover.from {
        existing.extend(
            index
                .owned_by(original)
                .into_iter()
                .filter(|o| wanted.contains(&o.key())),
        );
    }
    let taken: Vec<Key> = handover
        .to
        .iter()
        .flat_map(|extension| index.owned_by(extension))
        .map(|o| o.key())
        .collect();
    let desired: Vec<Object> = desired
        .iter()
        .filter(|o| !taken.contains(&o.key()))
        .cloned()
        .collect();
    execute(
        client,
        index,
        &diff(&desired, &existing),
        owner,
        handover.to,
    )
    .await
}

/// How one desired object is written.
#[derive(Clone, Copy)]
enum Write {
    Create,
    Replace,
    Recreate,
}

/// Deletes, then writes (Roles before the bindings that refer to them). The index may lag behind
/// the API server: a create that finds the name taken, or a replace that finds the object changed
/// or gone, decides again from a fresh read of that object, so a lagging index never causes a
/// write to an object the operator does not own, nor a write where nothing changed.
/// An object found held by one of `yields_to` (an extension took it over) is left to it.
pub async fn execute(
    client: &Client,
    index: &Index,
    changes: &Changes,
    owner: &Owner,
    yields_to: &[Owner],
) -> Result<Applied, Error> {
    let to = Target {
        client,
        index,
        owner,
    };
    let mut applied = Applied::default();
    for key in &changes.delete {
        if remove_unless_handed_over(client, key, owner).await? {
            applied.deleted.push(key.to_string());
        }
    }
    let mut writes: Vec<(&Object, Write)> = changes
        .create
        .iter()
        .map(|o| (o, Write::Create))
        .chain(changes.replace.iter().map(|o| (o, Write::Replace)))
        .chain(changes.recreate.iter().map(|o| (o, Write::Recreate)))
        .collect();
    writes.sort_by_key(|(object, _)| object.kind());
    for (object, write) in writes {
        let written = match write {
            Write::Create => create(to, object, yields_to).await?,
            Write::Replace => replace(to, object, yields_to).await?,
            Write::Recreate => recreate(to, object, yields_to).await?,
        };
        if written {
            applied.written.push(object.key().to_string());
        }
    }
    Ok(applied)
}

/// Creates `want`; true when it wrote something.
async fn create(to: Target<'_>, want: &Object, yields_to: &[Owner]) -> Result<bool, Error> {
    match post(to, want).await {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            from_fresh_read(to, want, yields_to).await
        }
        Err(source) => Err(write_error(want, source)),
    }
}

/// Replaces the object at the resourceVersion `want` carries; true when it wrote something.
async fn replace(to: Target<'_>, want: &Object, yields_to: &[Owner]) -> Result<bool, Error> {
    match put(to, want).await {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {
            from_fresh_read(to, want, yields_to).await
        }
        Err(source) => Err(write_error(want, source)),
    }
}

/// Deletes the binding at `want`'s name, which grants another role, and creates `want`.
async fn recreate(to: Target<'_>, want: &Object, yields_to: &[Owner]) -> Result<bool, Error> {
    remove(to.client, &want.key()).await?;
    create(to, want, yields_to).await.map(|_| true)
}

/// Decides one object again from what the API server holds now: creates it if it is gone, leaves
/// it if it is as desired, replaces it (or recreates a binding to another role) if it was created
/// for the same owner, and refuses otherwise.
async fn from_fresh_read(
    to: Target<'_>,
    want: &Object,
    yields_to: &[Owner],
) -> Result<bool, Error> {
    let key = want.key();
    let fresh = get(to.client, &key).await.map_err(|source| Error::List {
        kind: key.kind.as_str().into(),
        source,
    })?;
    let Some(have) = fresh else {
        return match post(to, want).await {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(name_taken(want)),
            Err(source) => Err(write_error(want, source)),
        };
    };
    if have
        .owner()
        .is_some_and(|holder| yields_to.contains(&holder))
    {
        return Ok(false);
    }
    if have.owner().is_none() || have.owner() != want.owner() {
        return Err(name_taken(want));
    }
    if want.role_ref() != have.role_ref() {
        remove(to.client, &key).await?;
        return match post(to, want).await {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(name_taken(want)),
            Err(source) => Err(write_error(want, source)),
        };
    }
    if matches(want, &have) {
        return Ok(false);
    }
    let mut replacement = want.clone();
    replacement.meta_mut().resource_version = have.meta().resource_version.clone();
    put(to, &replacement)
        .await
        .map(|()| true)
        .map_err(|source| write_error(want, source))
}

fn name_taken(want: &Object) -> Error {
    Error::NameTaken {
        kind: want.kind().as_str(),
        name: want.describe(),
        owner: want.owner().map_or("owner", |owner| owner.kind.noun()),
    }
}

/// The error for a failed write: an object the API server refuses as invalid, and for a binding
/// the escalation refusal, get their own messages.
fn write_error(object: &Object, source: kube::Error) -> Error {
    let owner = object.owner().map_or("owner", |owner| owner.kind.noun());
    let source = match Error::invalid(object.kind().as_str(), &object.describe(), owner, source) {
        Ok(invalid) => return invalid,
        Err(source) => source,
    };
    match object.role_ref() {
        Some(role_ref) => Error::apply(object.kind().as_str(), object.describe(), role_ref, source),
        None => Error::Apply {
            kind: object.kind().as_str(),
            name: object.describe(),
            source,
        },
    }
}

fn params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

fn namespaced<K>(client: &Client, key: &Key) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    Api::namespaced(client.clone(), key.namespace.as_deref().unwrap_or_default())
}

/// Where writes go: the API server, and the index told of each version written for whom.
#[derive(Clone, Copy)]
struct Target<'a> {
    client: &'a Client,
    index: &'a Index,
    /// Whom the writes are for.
    owner: &'a Owner,
}

impl Target<'_> {
    /// The write of `key` succeeded with `written`: the watch event of exactly that version is
    /// the operator's own.
    fn wrote<K: Resource>(&self, key: Key, written: &K) {
        if let Some(version) = written.meta().resource_version.clone() {
            self.index.wrote(key, version, self.owner);
        }
    }
}

/// A create: it fails with 409 when the name is taken.
async fn post(to: Target<'_>, object: &Object) -> Result<(), kube::Error> {
    let key = object.key();
    let mut object = object.clone();
    // A new object has no version; the one of a replaced object would be refused.
    object.meta_mut().resource_version = None;
    let client = to.client;
    match &object {
        Object::Secret(o) => namespaced::<Secret>(client, &key)
            .create(&params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
        Object::Role(o) => namespaced::<Role>(client, &key)
            .create(&params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
        Object::RoleBinding(o) => namespaced::<RoleBinding>(client, &key)
            .create(&params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
        Object::ClusterRoleBinding(o) => Api::<ClusterRoleBinding>::all(client.clone())
            .create(&params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
    }
}

/// An update of the whole object (a server-side apply cannot remove keys, labels or annotations
/// another field manager added), at the resourceVersion `object` carries.
async fn put(to: Target<'_>, object: &Object) -> Result<(), kube::Error> {
    let key = object.key();
    let client = to.client;
    match object {
        Object::Secret(o) => namespaced::<Secret>(client, &key)
            .replace(&key.name, &params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
        Object::Role(o) => namespaced::<Role>(client, &key)
            .replace(&key.name, &params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
        Object::RoleBinding(o) => namespaced::<RoleBinding>(client, &key)
            .replace(&key.name, &params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
        Object::ClusterRoleBinding(o) => Api::<ClusterRoleBinding>::all(client.clone())
            .replace(&key.name, &params(), o)
            .await
            .map(|written| to.wrote(key, &written)),
    }
}

async fn get(client: &Client, key: &Key) -> Result<Option<Object>, kube::Error> {
    Ok(match key.kind {
        Kind::Secret => namespaced::<Secret>(client, key)
            .get_opt(&key.name)
            .await?
            .map(Object::from),
        Kind::Role => namespaced::<Role>(client, key)
            .get_opt(&key.name)
            .await?
            .map(Object::from),
        Kind::RoleBinding => namespaced::<RoleBinding>(client, key)
            .get_opt(&key.name)
            .await?
            .map(Object::from),
        Kind::ClusterRoleBinding => Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(&key.name)
            .await?
            .map(Object::from),
    })
}

/// Deletes the object at `key` and proves it gone; true when there was something to delete.
/// Callers pass only objects the operator created (from the index, or a binding its own request
/// recorded under the name only that request has).
pub async fn remove(client: &Client, key: &Key) -> Result<bool, Error> {
    remove_keeping(client, key, None).await
}

/// Like [`remove`], but leaves an object another owner took over meanwhile (an extension
/// continuing `owner`'s share): the index may still list it under `owner`.
async fn remove_unless_handed_over(
    client: &Client,
    key: &Key,
    owner: &Owner,
) -> Result<bool, Error> {
    remove_keeping(client, key, Some(owner)).await
}

async fn remove_keeping(client: &Client, key: &Key, owner: Option<&Owner>) -> Result<bool, Error> {
    let kind = key.kind.as_str();
    let name = &key.name;
    match key.kind {
        Kind::Secret => remove_with(&namespaced::<Secret>(client, key), kind, name, owner).await,
        Kind::Role => remove_with(&namespaced::<Role>(client, key), kind, name, owner).await,
        Kind::RoleBinding => {
            remove_with(&namespaced::<RoleBinding>(client, key), kind, name, owner).await
        }
        Kind::ClusterRoleBinding => {
            let api = Api::<ClusterRoleBinding>::all(client.clone());
            remove_with(&api, kind, name, owner).await
        }
    }
}

/// Deletes an object, and proves it gone: finalizers someone else added (which would keep the
/// object, and the access or data it carries, alive past its end) are stripped first (by update:
/// the operator holds no patch on Secrets), and a read after the delete must find nothing. Gone
/// already is fine (false); a finalizer re-added in between gets a second round. With `owner`,
/// an object the operator created for another owner is left alone (false).
async fn remove_with<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    owner: Option<&Owner>,
) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let failed = |source| Error::Delete {
        kind,
        name: name.to_string(),
        source,
    };
    let mut holding = Vec::new();
    for round in 0..2 {
        let Some(mut existing) = api.get_opt(name).await.map_err(failed)? else {
            return Ok(round > 0);
        };
        if let (Some(owner), Some(holder)) = (owner, Owner::of(existing.meta()))
            && &holder != owner
        {
            return Ok(false);
        }
        holding = existing.meta().finalizers.clone().unwrap_or_default();
        if !holding.is_empty() {
            existing.meta_mut().finalizers = None;
            match api.replace(name, &PostParams::default(), &existing).await {
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(true),
                // Changed meanwhile: read it again.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                other => {
                    other.map_err(failed)?;
                }
            }
        }
        if existing.meta().deletion_timestamp.is_none() {
            match api.delete(name, &DeleteParams::default()).await {
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(true),
                other => {
                    other.map_err(failed)?;
                }
            }
        }
        if api.get_opt(name).await.map_err(failed)?.is_none() {
            return Ok(true);
        }
    }
    Err(Error::StillExists {
        kind,
        name: name.to_string(),
        holding: if holding.is_empty() {
            "its deletion is still pending".to_string()
        } else {
            format!("held by finalizers {}", holding.join(", "))
        },
    })
}
