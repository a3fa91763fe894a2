//! Notifications, the same for both kinds: where a policy sends them (`spec.notifications`), and
//! what a status records of each one sent (`status.notifications`), so that delivery survives a
//! restart (at least once) and anyone reading the object sees whether its approvers were told.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::named_enum;

named_enum! {
    /// The body a destination receives.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
    pub enum NotificationFormat {
        /// A CloudEvents 1.0 event in structured JSON mode
        /// (`Content-Type: application/cloudevents+json`).
        CloudEvents,
        /// A Slack incoming-webhook message (`{"text": ...}`).
        Slack,
    }
}

/// Where a policy's notifications go. Every body is signed: the header `X-Gatehouse-Signature:
/// sha256=<hex>` carries the HMAC-SHA256 of the exact body under the key in `secretRef`; a
/// notification whose key cannot be read is never sent unsigned (its delivery fails, and the
/// object's `status.notifications` says why).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTarget {
    /// A name for this destination, shown in `status.notifications` (the URL is not: a webhook
    /// URL is often a credential). Defaults to the format and the URL's scheme and host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// The `http://` or `https://` URL the notification is POSTed to.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// `CloudEvents` (structured JSON, CloudEvents 1.0) or `Slack` (incoming-webhook payload).
    pub format: NotificationFormat,
    /// The Secret, in the operator's namespace, holding the HMAC key the body is signed with.
    pub secret_ref: NotificationSecretRef,
    /// Approver roles whose "waiting for approval" notifications go here, e.g. `[security]` for
    /// the security team's channel. Unset: every stage's. Every other event goes to every
    /// destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 63)))]
    pub roles: Vec<String>,
}

/// A key of a Secret in the operator's namespace.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct NotificationSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in its data holding the HMAC key. Default `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

impl NotificationSecretRef {
    /// The key in the Secret's data.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("key")
    }
}

impl NotificationTarget {
    /// How status names this destination: its `name`, or the format with the URL's scheme and
    /// host (never its path or query, where webhook tokens live).
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Credentials in the URL (`user:password@host`) are never shown. What is left must look
        // like a host and port: a malformed URL (`https://user:pa/ss@host` ends its authority
        // inside the password) shows no part of it.
        let host = host.rsplit('@').next().unwrap_or(host);
        if looks_like_host_and_port(host) {
            format!("{} {scheme}://{host}", self.format)
        } else {
            format!("{} {scheme}://(unreadable host)", self.format)
        }
    }
}

/// `host` or `host:port` with a DNS name, an IPv4 address or a bracketed IPv6 address.
fn looks_like_host_and_port(authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => {
            !ipv6.is_empty()
                && ipv6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }
    };
    host_ok
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()))
}

named_enum! {
    /// What a notification tells.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
    pub enum NotificationEvent {
        /// It waits for the approvers of a stage (to that stage's destinations).
        Waiting,
        /// Approvers decided: fully approved, denied, or changes requested.
        Decided,
        /// What was approved is provided.
        Active,
        /// Its window ends within the policy's `notifyExpiringBefore`.
        ExpiringSoon,
        /// It ended: expired, revoked, timed out or withdrawn; nothing is provided.
        Ended,
        /// What was approved could not be provided; it is retried within the window.
        ProvisioningFailed,
    }
}

named_enum! {
    /// How far one notification reached one destination.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
    pub enum DeliveryState {
        /// Not yet accepted by the destination; being sent, or retried.
        Pending,
        /// The destination answered 2xx.
        Delivered,
        /// Every attempt failed, or it could not be signed; `lastError` says why.
        Failed,
    }
}

/// One notification and how far it reached each destination.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// Unique and the same on every attempt (the CloudEvents `id`): receivers drop duplicates of
    /// an at-least-once delivery by it.
    pub id: String,
    pub event: NotificationEvent,
    /// When the operator decided to send it.
    pub at: Time,
    /// The phase it tells of.
    pub phase: String,
    /// The approver role waited for (`Waiting`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Who decided so far, as `<user> (<role>)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The end of the window, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// What it says.
    pub message: String,
    /// One entry per destination.
    pub deliveries: Vec<Delivery>,
}

/// How far one notification reached one destination.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The destination, as [`NotificationTarget::name`] or its default.
    pub destination: String,
    pub state: DeliveryState,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl NotificationRecord {
    /// Whether every destination has its final answer.
    pub fn settled(&self) -> bool {
        self.deliveries
            .iter()
            .all(|d| d.state != DeliveryState::Pending)
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::config;

    proptest! {
        #![proptest_config(config())]

        /// Status names a destination by scheme and host only: credentials, path, query and
        /// fragment (where webhook tokens live) never show.
        #[test]
        fn labels_show_no_credentials_nor_path(
            scheme in prop_oneof![Just("http"), Just("https")],
            userinfo in prop::option::of("[A-Za-z0-9:%._~-]{1,12}"),
            host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
            rest in prop::option::of("[/?#][!-~]{0,30}"),
        ) {
            let url = format!(
                "{scheme}://{}{host}{}",
                userinfo.as_deref().map(|u| format!("{u}@")).unwrap_or_default(),
                rest.as_deref().unwrap_or_default()
            );
            let target = NotificationTarget {
                name: None,
                url,
                format: NotificationFormat::Slack,
                secret_ref: NotificationSecretRef { name: "hook".into(), key: None },
                roles: Vec::new(),
            };
            prop_assert_eq!(target.label(), format!("Slack {scheme}://{host}"));
        }

        /// Whatever the URL, no character of its userinfo shows unless it could be a host name.
        #[test]
        fn a_malformed_authority_shows_no_part_of_a_password(
            password in "[a-z]{3,8}/[a-z]{2,8}",
            host in "[a-z]{1,10}",
        ) {
            let target = NotificationTarget {
                name: None,
                url: format!("https://user:{password}@{host}/hook"),
                format: NotificationFormat::Slack,
                secret_ref: NotificationSecretRef { name: "hook".into(), key: None },
                roles: Vec::new(),
            };
            let label = target.label();
            let first = password.split('/').next().unwrap_or_default();
            // What the label says of the authority; the fixed words for an unreadable one may
            // contain any short password (`nre` is in "unreadable").
            let shown = label.trim_start_matches("Slack https://");
            prop_assert!(
                shown == "(unreadable host)" || !shown.contains(first),
                "{label} shows {first}"
            );
        }
    }
}
