//! The bodies destinations receive, and their signature. A body is rendered once per delivery
//! from the notification as its status records it, so every attempt sends the same bytes.
//!
//! CloudEvents are written here as structured JSON (CloudEvents 1.0, JSON event format) rather
//! than with the `cloudevents-sdk` crate: the format is nine fields, and the SDK would bring its
//! own time and URL types and HTTP bindings for what `serde_json` writes directly.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::{GROUP, NotificationEvent, NotificationFormat, NotificationRecord};

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Gatehouse-Signature";

/// The object a notification is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct About {
    /// `AccessRequest`, `DataSharingAgreement`.
    pub kind: String,
    /// `accessrequests`, `datasharingagreements`.
    pub plural: String,
    pub version: String,
    pub namespace: String,
    pub name: String,
    pub requester: String,
}

/// The event's name in a CloudEvents `type`: `expiring-soon` in
/// `dev.gatehouse.accessrequest.expiring-soon`.
fn type_suffix(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::Waiting => "waiting",
        NotificationEvent::Decided => "decided",
        NotificationEvent::Active => "active",
        NotificationEvent::ExpiringSoon => "expiring-soon",
        NotificationEvent::Ended => "ended",
        NotificationEvent::ProvisioningFailed => "provisioning-failed",
    }
}

/// The `Content-Type` a destination of `format` receives.
pub fn content_type(format: NotificationFormat) -> &'static str {
    match format {
        NotificationFormat::CloudEvents => "application/cloudevents+json; charset=utf-8",
        NotificationFormat::Slack => "application/json",
    }
}

/// The body for a destination of `format`.
pub fn body(format: NotificationFormat, about: &About, record: &NotificationRecord) -> Vec<u8> {
    let value = match format {
        NotificationFormat::CloudEvents => cloud_event(about, record),
        NotificationFormat::Slack => slack(about, record),
    };
    value.to_string().into_bytes()
}

/// A CloudEvents 1.0 event, structured mode: `id` is the notification's (the same on every
/// attempt), `source` the object's collection, `subject` its name.
fn cloud_event(about: &About, record: &NotificationRecord) -> Value {
    json!({
        "specversion": "1.0",
        "id": record.id,
        "type": format!("dev.gatehouse.{}.{}", about.kind.to_lowercase(), type_suffix(record.event)),
        "source": format!("/apis/{GROUP}/{}/namespaces/{}/{}", about.version, about.namespace, about.plural),
        "subject": about.name,
        "time": record.at.0.to_string(),
        "datacontenttype": "application/json",
        "data": {
            "kind": about.kind,
            "name": about.name,
            "namespace": about.namespace,
            "requester": about.requester,
            "event": record.event,
            "phase": record.phase,
            "stage": record.stage,
            "approvers": record.approvers,
            "expiresAt": record.expires_at.as_ref().map(|t| t.0.to_string()),
            "message": record.message,
        }
    })
}

/// A Slack incoming-webhook message: one line of text.
fn slack(about: &About, record: &NotificationRecord) -> Value {
    let text = format!(
        "{} {}/{} (requested by {}): {}",
        about.kind, about.namespace, about.name, about.requester, record.message
    );
    json!({ "text": text })
}

/// The value of [`SIGNATURE_HEADER`]: `sha256=<hex of HMAC-SHA256(key, body)>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
