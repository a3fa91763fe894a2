//! How a controller caches the objects of its own kind: the spec and the metadata a scan reads
//! typed, for the watches, links, gauges and sweep that go over every object, and the status and
//! annotations as compact JSON, parsed again only for the reconcile of that one object.
//!
//! Why: the typed status is the largest part of the operator's memory at scale. Its conditions,
//! approvals, approvers, scope and grant are dozens of small heap strings, about 5 KB a request
//! in the cache against 1–2 KB of JSON, and the annotations' map takes a node of eleven slots for
//! the two or three an object has; at 10,000 requests that is most of the heap. Parsing them
//! again costs microseconds, once per reconcile of that object.
//!
//! That JSON is compressed with zstd against a dictionary of what requests' and agreements'
//! statuses and annotations typically say (`cached.dictionary.json`: the field names, condition
//! types, reasons and messages): objects of one kind repeat each other, so a converged request's
//! 2 KB become about 200 bytes (700 without the dictionary), 20 MB fewer at 10,000 requests. A
//! status the dictionary does not foresee is compressed as well as it can be, never refused.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use kube::Resource;
use kube::api::ObjectMeta;
use kube::core::object::HasStatus;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// What the packed JSON of requests and agreements typically says (see the module's comment).
const DICTIONARY: &[u8] = include_bytes!("cached.dictionary.json");
/// zstd's default level: packing runs once per watch event of an object, unpacking once per
/// reconcile; higher levels gained a few bytes an object for several times the time.
const LEVEL: i32 = 3;

static ENCODER: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY));

thread_local! {
    // One zstd context per thread, reused: creating one costs more than compressing a status.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `json` compressed against the dictionary.
fn compress(json: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|compressor| {
        let compressor = match compressor {
            Some(compressor) => compressor,
            None => compressor.insert(Compressor::with_prepared_dictionary(&ENCODER)?),
        };
        compressor.compress(json)
    })
}

/// What [`compress`] made of it, whole again.
fn decompress(packed: &[u8]) -> std::io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(packed)
        .ok()
        .flatten()
        .and_then(|size| usize::try_from(size).ok())
        .ok_or_else(|| std::io::Error::other("the frame does not say its size"))?;
    DECOMPRESSOR.with_borrow_mut(|decompressor| {
        let decompressor = match decompressor {
            Some(decompressor) => decompressor,
            None => decompressor.insert(Decompressor::with_prepared_dictionary(&DECODER)?),
        };
        decompressor.decompress(packed, size)
    })
}

/// An object of `K` as the controller's cache holds it. A watch deserializes `K` as usual (so a
/// status that does not parse fails there, as before), then packs it.
#[derive(Clone, Debug)]
pub struct Cached<K: HasStatus> {
    /// The object without its status and annotations (and its managed fields, which nothing
    /// reads).
    typed: K,
    /// Its status and annotations, as the JSON of a [`Packed`], compressed.
    packed: Box<[u8]>,
}

/// What a cached object holds as JSON.
#[derive(Serialize, Deserialize)]
struct Packed<S> {
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<S>,
}

/// A [`Packed`] read for its status alone: the annotations are skipped, not built.
#[derive(Deserialize)]
struct PackedStatus<S> {
    status: Option<S>,
}

/// Why a cached object could not be read back.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read back the cached status and annotations of {object}: {source}; this is a bug (the cache wrote them)"
)]
pub struct Error {
    object: String,
    #[source]
    source: Codec,
}

/// What failed in reading a cached object back, or in packing one.
#[derive(Debug, thiserror::Error)]
pub enum Codec {
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("zstd: {0}")]
    Compression(#[from] std::io::Error),
}

impl<K> Cached<K>
where
    K: Resource + HasStatus<Status: Serialize + DeserializeOwned>,
{
    /// Packs `object` for the cache.
    pub fn pack(mut object: K) -> Result<Self, Codec> {
        let meta = object.meta_mut();
        meta.managed_fields = None;
        let packed = Packed {
            annotations: meta.annotations.take(),
            status: object.status_mut().take(),
        };
        Ok(Self {
            packed: compress(&serde_json::to_vec(&packed)?)?.into_boxed_slice(),
            typed: object,
        })
    }

    /// The whole object, as it was watched (without its managed fields).
    pub fn unpack(&self) -> Result<K, Error>
    where
        K: Clone,
    {
        let packed: Packed<K::Status> = self.read()?;
        let mut object = self.typed.clone();
        object.meta_mut().annotations = packed.annotations;
        *object.status_mut() = packed.status;
        Ok(object)
    }

    /// The object without its status and annotations: what a scan over every object reads
    /// (its spec, name, namespace, labels, finalizers).
    pub fn typed(&self) -> &K {
        &self.typed
    }

    /// The part of the status that `T` declares (e.g. its phase), parsed without building the
    /// rest.
    pub fn status_as<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.read::<PackedStatus<T>>().map(|packed| packed.status)
    }

    fn read<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let json = |packed: &[u8]| -> Result<T, Codec> {
            Ok(serde_json::from_slice(&decompress(packed)?)?)
        };
        json(&self.packed).map_err(|source| Error {
            object: format!(
                "{}/{}",
                self.typed.meta().namespace.as_deref().unwrap_or_default(),
                self.typed.meta().name.as_deref().unwrap_or_default()
            ),
            source,
        })
    }
}

impl<'de, K> Deserialize<'de> for Cached<K>
where
    K: Resource + HasStatus<Status: Serialize + DeserializeOwned> + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = K::deserialize(deserializer)?;
        Self::pack(object).map_err(serde::de::Error::custom)
    }
}

impl<K: Resource + HasStatus> Resource for Cached<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.typed.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.typed.meta_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccessPhase, AccessRequest, AccessRequestStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ManagedFieldsEntry, Time};

    fn converged() -> AccessRequest {
        let mut request = crate::api::fixtures::access_request();
        request.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        request.metadata.annotations = Some(BTreeMap::from([(
            "approve.gatehouse.dev/manager".to_string(),
            "true".to_string(),
        )]));
        request.status = Some(AccessRequestStatus {
            phase: Some(AccessPhase::Active),
            waiting_for: Some("security".into()),
            required_approvals: vec!["manager".into(), "security".into()],
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Granted".into(),
                message: "granted until 2026-12-03T00:00:00Z".into(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: Some(3),
            }],
            ..AccessRequestStatus::default()
        });
        request
    }

    fn json(value: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(value).expect("serializes")
    }

    #[test]
    fn a_cached_object_unpacks_to_what_was_watched_without_its_managed_fields() {
        let watched = converged();
        let cached = Cached::pack(watched.clone()).expect("packs");
        let mut expected = watched;
        expected.metadata.managed_fields = None;
        assert_eq!(json(&cached.unpack().expect("unpacks")), json(&expected));
        assert!(cached.typed().status.is_none());
        assert_eq!(cached.typed().metadata.annotations, None);
        assert_eq!(json(&cached.typed().spec), json(&expected.spec));
    }

    #[test]
    fn a_partial_view_of_the_status_reads_only_its_fields() {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Waiting {
            phase: Option<AccessPhase>,
            waiting_for: Option<String>,
        }
        let cached = Cached::pack(converged()).expect("packs");
        let waiting = cached
            .status_as::<Waiting>()
            .expect("parses")
            .expect("has a status");
        assert_eq!(waiting.phase, Some(AccessPhase::Active));
        assert_eq!(waiting.waiting_for.as_deref(), Some("security"));
    }

    #[test]
    fn an_object_without_a_status_unpacks_without_one() {
        let request = crate::api::fixtures::access_request();
        let cached = Cached::pack(request.clone()).expect("packs");
        assert_eq!(
            cached.status_as::<AccessRequestStatus>().expect("parses"),
            None
        );
        assert_eq!(json(&cached.unpack().expect("unpacks")), json(&request));
    }

    #[test]
    fn a_converged_request_is_cached_in_a_fraction_of_its_json() {
        let request = converged();
        let json = serde_json::to_vec(&Packed {
            annotations: request.metadata.annotations.clone(),
            status: request.status.clone(),
        })
        .expect("serializes");
        let cached = Cached::pack(request).expect("packs");
        assert!(
            cached.packed.len() * 3 < json.len(),
            "{} bytes cached for {} of JSON",
            cached.packed.len(),
            json.len()
        );
    }

    #[test]
    fn a_status_the_dictionary_does_not_foresee_is_cached_whole() {
        let mut request = converged();
        let unforeseen: String = (0..4000u32)
            .map(|i| char::from_u32(0x4e00 + i * 7 % 20000).unwrap_or('x'))
            .collect();
        if let Some(status) = request.status.as_mut() {
            status.findings_summary = Some(unforeseen);
        }
        let cached = Cached::pack(request.clone()).expect("packs");
        request.metadata.managed_fields = None;
        assert_eq!(json(&cached.unpack().expect("unpacks")), json(&request));
    }

    #[test]
    fn the_cache_deserializes_what_the_api_server_sends() {
        let json = serde_json::to_value(converged()).expect("serializes");
        let cached: Cached<AccessRequest> = serde_json::from_value(json).expect("deserializes");
        assert_eq!(cached.unpack().expect("unpacks").status, converged().status);
    }
}
