//! `kubectl gatehouse report`: the auditor's table of who had what access when, approved by whom,
//! from the AccessRecords the operator keeps after requests and agreements are gone.
//!
//! The binary lists the records (narrowed server-side by [`Filter::label_selector`]); everything
//! else is here: [`Filter`] parses the flags and matches each record's spec (label values are
//! sanitised, so the spec decides), [`rows`] orders what matches, and [`table`], [`csv`] and
//! [`json`] render it.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::Value;

use super::table::{self, NONE};
use super::{Kind, PluginError};
use crate::access::describe_subjects;
use crate::api::common::Decision;
use crate::api::{AccessRecord, AccessRecordSpec};
use crate::controller::records::{KIND_LABEL, POLICY_LABEL, REQUESTER_LABEL, label_value};

/// The columns of the table and of the CSV, in order.
pub const HEADERS: [&str; 15] = [
    "KIND",
    "OBJECT",
    "REQUESTER",
    "SUBJECTS",
    "WHAT",
    "POLICY",
    "APPROVERS",
    "ACTIVATED",
    "EXPIRES",
    "ENDED",
    "OUTCOME",
    "END REASON",
    "ENDED BY",
    "REMOVAL VERIFIED",
    "RECORD",
];

/// `--since`: a time, or a duration back from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    At(Timestamp),
    Ago(Duration),
}

impl Since {
    /// `24h`, `90m`, `1h30m` (durations as policies write them), `7d` or `7d12h` (days, which
    /// durations lack but audit periods are counted in), or an RFC 3339 time.
    pub fn parse(value: &str) -> Result<Since, PluginError> {
        let invalid = || PluginError::InvalidSince {
            value: value.to_string(),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid());
        }
        if let Ok(at) = value.parse::<Timestamp>() {
            return Ok(Since::At(at));
        }
        let (days, rest) = match value.split_once('d') {
            Some((days, rest)) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
                (days.parse::<u64>().map_err(|_| invalid())?, rest)
            }
            _ => (0, value),
        };
        let rest = if rest.is_empty() {
            Duration::ZERO
        } else {
            crate::lifecycle::duration::length(rest).map_err(|_| invalid())?
        };
        let days = days
            .checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(invalid)?;
        Ok(Since::Ago(days.checked_add(rest).ok_or_else(invalid)?))
    }

    /// The time `--since` names, `now` for a duration.
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Since::At(at) => at,
            Since::Ago(ago) => now.checked_sub(ago).unwrap_or(Timestamp::MIN),
        }
    }
}

/// `--role`: the role an AccessRequest granted, as `ClusterRole/NAME`, `Role/NAME` or only `NAME`
/// (either kind). The record's `what` starts with the role as `KIND/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleFilter {
    /// `ClusterRole` or `Role`, when given.
    pub kind: Option<String>,
    pub name: String,
}

impl RoleFilter {
    pub fn parse(value: &str) -> Result<RoleFilter, PluginError> {
        let invalid = || PluginError::InvalidRoleFilter {
            value: value.to_string(),
        };
        let (kind, name) = match value.split_once('/') {
            Some((kind @ ("ClusterRole" | "Role"), name)) => (Some(kind.to_string()), name),
            Some(_) => return Err(invalid()),
            None => (None, value),
        };
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('/') {
            return Err(invalid());
        }
        Ok(RoleFilter {
            kind,
            name: name.to_string(),
        })
    }

    /// Whether the record is an AccessRequest's that granted this role; agreements grant none.
    fn matches(&self, spec: &AccessRecordSpec) -> bool {
        if spec.object.kind != Kind::AccessRequest.name() {
            return false;
        }
        let granted = spec.what.split_whitespace().next().unwrap_or_default();
        let Some((kind, name)) = granted.split_once('/') else {
            return false;
        };
        name == self.name && self.kind.as_deref().is_none_or(|k| k == kind)
    }
}

impl std::fmt::Display for RoleFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Some(kind) => write!(f, "{kind}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Which records the report keeps; every field unset keeps all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub since: Option<Since>,
    /// The requester exactly as recorded.
    pub requester: Option<String>,
    /// The governing policy's name.
    pub policy: Option<String>,
    pub role: Option<RoleFilter>,
    pub kind: Option<Kind>,
    /// The namespace of the recorded object (`-n`, only when given).
    pub namespace: Option<String>,
}

impl Filter {
    /// A label selector narrowing the list on the server. Only a pre-filter: label values are
    /// sanitised (`alice@example.com` becomes `alice_example.com`), so [`Filter::matches`] still
    /// compares the spec.
    pub fn label_selector(&self) -> Option<String> {
        let mut terms = Vec::new();
        if let Some(kind) = self.kind {
            terms.push(format!("{KIND_LABEL}={}", kind.name()));
        }
        if let Some(requester) = &self.requester {
            terms.push(format!("{REQUESTER_LABEL}={}", label_value(requester)));
        }
        if let Some(policy) = &self.policy {
            terms.push(format!("{POLICY_LABEL}={}", label_value(policy)));
        }
        (!terms.is_empty()).then(|| terms.join(","))
    }

    /// Whether `record` passes every filter given. `--since` keeps a record active at or after
    /// the time: activated, ended or created then, or not ended yet (access still held counts).
    pub fn matches(&self, record: &AccessRecord, now: Timestamp) -> bool {
        let spec = &record.spec;
        if let Some(since) = self.since {
            let since = since.resolve(now);
            let activity = [
                spec.activated_at.as_ref(),
                spec.end.as_ref().map(|end| &end.at),
                record.metadata.creation_timestamp.as_ref(),
            ];
            let recent = activity.into_iter().flatten().any(|t| t.0 >= since);
            if !recent && spec.end.is_some() {
                return false;
            }
        }
        self.requester.as_ref().is_none_or(|r| r == &spec.requester)
            && self
                .policy
                .as_ref()
                .is_none_or(|p| spec.policy.as_ref().is_some_and(|rp| &rp.name == p))
            && self.role.as_ref().is_none_or(|role| role.matches(spec))
            && self.kind.is_none_or(|kind| spec.object.kind == kind.name())
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| ns == &spec.object.namespace)
    }

    /// What the filters ask for, e.g. `requester alice, since 2026-01-01T00:00:00Z`.
    fn describe(&self, now: Timestamp) -> String {
        let mut parts = Vec::new();
        if let Some(kind) = self.kind {
            parts.push(format!("kind {}", kind.name()));
        }
        if let Some(ns) = &self.namespace {
            parts.push(format!("namespace {ns}"));
        }
        if let Some(requester) = &self.requester {
            parts.push(format!("requester {requester}"));
        }
        if let Some(policy) = &self.policy {
            parts.push(format!("policy {policy}"));
        }
        if let Some(role) = &self.role {
            parts.push(format!("role {role}"));
        }
        if let Some(since) = self.since {
            // To the second, as every other time the report shows.
            let since = since.resolve(now);
            let since = Timestamp::from_second(since.as_second()).unwrap_or(since);
            parts.push(format!("since {since}"));
        }
        parts.join(", ")
    }
}

/// What the report says when nothing matched (on stderr, as `pending` does).
pub fn no_match(filter: &Filter, now: Timestamp) -> String {
    let asked = filter.describe(now);
    if asked.is_empty() {
        "No records match: the cluster holds no AccessRecords.".to_string()
    } else {
        format!("No records match {asked}.")
    }
}

/// One record, as the report shows it.
#[derive(Clone, Debug)]
pub struct Row<'a> {
    pub record: &'a AccessRecord,
    /// `AccessRequest` or `DataSharingAgreement`.
    pub kind: String,
    /// `namespace/name` of the recorded object.
    pub object: String,
    pub requester: String,
    /// Who received it: the request's subjects, or the share's recipient.
    pub subjects: String,
    pub what: String,
    pub policy: Option<String>,
    /// `role:user` for each decision in stage order, a denial marked `(denied)`.
    pub approvers: Option<String>,
    pub activated: Option<String>,
    pub expires: Option<String>,
    pub ended: Option<String>,
    pub outcome: String,
    pub end_reason: Option<String>,
    pub ended_by: Option<String>,
    /// Whether what it provided was removed and the removal verified.
    pub removal_verified: bool,
}

impl<'a> Row<'a> {
    fn new(record: &'a AccessRecord) -> Self {
        let spec = &record.spec;
        let subjects = match &spec.share {
            Some(share) => share.recipient.clone(),
            None => describe_subjects(&spec.subjects),
        };
        let approvers: Vec<String> = spec
            .decisions
            .iter()
            .map(|d| match d.decision {
                Decision::Approved => format!("{}:{}", d.role, d.user),
                Decision::Denied => format!("{}:{} (denied)", d.role, d.user),
                Decision::ChangesRequested => {
                    format!("{}:{} (changes requested)", d.role, d.user)
                }
            })
            .collect();
        let time = |t: Option<&_>| t.map(|t| table::time(Some(t)));
        Row {
            record,
            kind: spec.object.kind.clone(),
            object: format!("{}/{}", spec.object.namespace, spec.object.name),
            requester: spec.requester.clone(),
            subjects,
            what: spec.what.clone(),
            policy: spec.policy.as_ref().map(|p| p.name.clone()),
            approvers: (!approvers.is_empty()).then(|| approvers.join(", ")),
            activated: time(spec.activated_at.as_ref()),
            expires: time(spec.expires_at.as_ref()),
            ended: time(spec.end.as_ref().map(|e| &e.at)),
            outcome: spec.outcome.to_string(),
            end_reason: spec.end.as_ref().map(|e| e.reason.clone()),
            ended_by: spec.end.as_ref().and_then(|e| e.by.clone()),
            removal_verified: spec.removal.is_some(),
        }
    }

    /// The cells under [`HEADERS`], `none` where there is nothing.
    pub fn cells(&self, none: &str) -> Vec<String> {
        let or_none = |cell: &Option<String>| cell.clone().unwrap_or_else(|| none.to_string());
        vec![
            self.kind.clone(),
            self.object.clone(),
            self.requester.clone(),
            self.subjects.clone(),
            self.what.clone(),
            or_none(&self.policy),
            or_none(&self.approvers),
            or_none(&self.activated),
            or_none(&self.expires),
            or_none(&self.ended),
            self.outcome.clone(),
            or_none(&self.end_reason),
            or_none(&self.ended_by),
            if self.removal_verified { "yes" } else { "no" }.to_string(),
            self.record.name_any(),
        ]
    }
}

/// The records `filter` keeps, ordered by when they started (activation, or creation for those
/// never activated), then by namespace and name of the object.
pub fn rows<'a>(records: &'a [AccessRecord], filter: &Filter, now: Timestamp) -> Vec<Row<'a>> {
    let mut kept: Vec<&AccessRecord> = records
        .iter()
        .filter(|record| filter.matches(record, now))
        .collect();
    kept.sort_by_cached_key(|record| {
        let started = record
            .spec
            .activated_at
            .as_ref()
            .or(record.metadata.creation_timestamp.as_ref())
            .map(|t| t.0);
        (
            started,
            record.spec.object.namespace.clone(),
            record.spec.object.name.clone(),
            record.name_any(),
        )
    });
    kept.into_iter().map(Row::new).collect()
}

/// The table `kubectl gatehouse report` prints.
pub fn table(rows: &[Row<'_>]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|row| row.cells(NONE)).collect();
    table::render(&HEADERS, &cells)
}

/// RFC 4180 CSV: a header row, then one row per record, the table's columns with empty fields
/// where the table shows `<none>`; CRLF line ends.
pub fn csv(rows: &[Row<'_>]) -> String {
    let mut out = String::new();
    let header: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
    for line in std::iter::once(header).chain(rows.iter().map(|row| row.cells(""))) {
        let fields: Vec<String> = line.iter().map(|cell| csv_field(cell)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A field quoted when it holds a comma, a quote or a line break, its quotes doubled.
fn csv_field(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// The matching records' specs as a JSON array, each with its `metadata.name`.
pub fn json(rows: &[Row<'_>]) -> String {
    let records: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut spec = serde_json::to_value(&row.record.spec).unwrap_or(Value::Null);
            if let Some(fields) = spec.as_object_mut() {
                fields.insert(
                    "metadata".into(),
                    serde_json::json!({ "name": row.record.name_any() }),
                );
            }
            spec
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".to_string());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::{ApprovalRecord, Subject, SubjectKind};
    use crate::api::{
        Outcome, RecordedData, RecordedEnd, RecordedObject, RecordedPolicy, RecordedRemoval,
        RecordedShare, TransferMethod,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const T0: i64 = 1_767_261_600; // 2026-01-01T10:00:00Z

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid test timestamp"))
    }

    fn decision(role: &str, user: &str, decision: Decision) -> ApprovalRecord {
        ApprovalRecord {
            role: role.into(),
            user: user.into(),
            decision,
            reason: None,
            time: Some(at(T0)),
        }
    }

    /// An AccessRequest's record, created at `created`, granted `role` (`KIND/NAME`), activated
    /// 60 s later and revoked after an hour by its requester.
    fn access(ns: &str, name: &str, requester: &str, role: &str, created: i64) -> AccessRecord {
        let object = RecordedObject {
            kind: "AccessRequest".into(),
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        };
        let mut record = AccessRecord::new(
            &format!("accessrequest.{ns}.{name}.uid-{name}"),
            AccessRecordSpec {
                object,
                requester: requester.into(),
                filed_by: None,
                subjects: vec![Subject {
                    kind: SubjectKind::User,
                    name: requester.into(),
                    namespace: None,
                }],
                what: format!("{role} in {ns}"),
                why: "OPS-42".into(),
                share: None,
                policy: Some(RecordedPolicy {
                    name: "payments-db".into(),
                    generation: Some(1),
                }),
                decisions: vec![
                    decision("manager", "bob", Decision::Approved),
                    decision("data-owner", "carol", Decision::Approved),
                ],
                findings: Vec::new(),
                activated_at: Some(at(created + 60)),
                expires_at: Some(at(created + 60 + 3600)),
                outcome: Outcome::Revoked,
                end: Some(RecordedEnd {
                    at: at(created + 3600),
                    reason: "Revoked".into(),
                    by: Some(requester.into()),
                    message: "revoked".into(),
                }),
                removal: Some(RecordedRemoval {
                    at: at(created + 3600),
                    verified: "the RoleBindings were read back as gone".into(),
                }),
                complete: true,
                retain_until: None,
            },
        );
        record.metadata.creation_timestamp = Some(at(created));
        record
    }

    /// A DataSharingAgreement's record that was denied: never activated, never shared.
    fn denied_share(ns: &str, name: &str, created: i64) -> AccessRecord {
        let mut record = access(ns, name, "erin", "unused", created);
        record.metadata.name = Some(format!("datasharingagreement.{ns}.{name}.uid-{name}"));
        let spec = &mut record.spec;
        spec.object.kind = "DataSharingAgreement".into();
        spec.subjects = Vec::new();
        spec.what = "Secret/orders-db[host] to analytics/reporting by Copy".into();
        spec.share = Some(RecordedShare {
            recipient: "analytics/reporting".into(),
            method: TransferMethod::Copy,
            agreement: None,
            data: vec![RecordedData {
                source: "Secret/orders-db".into(),
                keys: vec!["host".into()],
            }],
            objects: Vec::new(),
            syncs: Vec::new(),
        });
        spec.decisions = vec![decision("privacy", "dave", Decision::Denied)];
        spec.activated_at = None;
        spec.expires_at = None;
        spec.outcome = Outcome::Denied;
        spec.end = Some(RecordedEnd {
            at: at(created + 10),
            reason: "Denied".into(),
            by: Some("dave".into()),
            message: "denied".into(),
        });
        record
    }

    fn names(rows: &[Row<'_>]) -> Vec<String> {
        rows.iter().map(|r| r.object.clone()).collect()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(T0 + 10 * 24 * 3600).expect("valid")
    }

    #[test]
    fn since_takes_durations_days_and_rfc3339() {
        assert_eq!(
            Since::parse("24h").unwrap(),
            Since::Ago(Duration::from_secs(86_400))
        );
        assert_eq!(
            Since::parse("1h30m").unwrap(),
            Since::Ago(Duration::from_secs(5_400))
        );
        assert_eq!(
            Since::parse("7d").unwrap(),
            Since::Ago(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            Since::parse("1d12h").unwrap(),
            Since::Ago(Duration::from_secs(36 * 3600))
        );
        assert_eq!(
            Since::parse("2026-01-01T10:00:00Z").unwrap(),
            Since::At(Timestamp::from_second(T0).unwrap())
        );
        assert_eq!(
            Since::parse("2026-01-01T11:00:00+01:00").unwrap(),
            Since::At(Timestamp::from_second(T0).unwrap())
        );
        for bad in ["", "yesterday", "7", "-1h", "d", "1w", "2026-01-01"] {
            let err = Since::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("write e.g. 24h, 7d"), "{bad}: {err}");
        }
    }

    /// Found by the property tests: kube's Go-compatible parser panicked on a number beyond any
    /// duration (it multiplies in floating point).
    #[test]
    fn since_refuses_durations_beyond_any_clock() {
        for huge in [
            "99999999999999999999h",
            "1d5032305210004141m",
            "999999999999999999999d",
        ] {
            let err = Since::parse(huge).expect_err(huge).to_string();
            assert!(err.contains("write e.g. 24h, 7d"), "{huge}: {err}");
        }
    }

    #[test]
    fn since_resolves_against_now() {
        let now = Timestamp::from_second(T0).unwrap();
        assert_eq!(
            Since::Ago(Duration::from_secs(3600)).resolve(now),
            Timestamp::from_second(T0 - 3600).unwrap()
        );
        assert_eq!(Since::At(now).resolve(Timestamp::MAX), now);
    }

    #[test]
    fn role_filters_name_a_role_with_or_without_its_kind() {
        assert_eq!(
            RoleFilter::parse("ClusterRole/db-reader").unwrap(),
            RoleFilter {
                kind: Some("ClusterRole".into()),
                name: "db-reader".into()
            }
        );
        assert_eq!(RoleFilter::parse("db-reader").unwrap().kind, None);
        for bad in ["", "Secret/x", "ClusterRole/", "a/b/c", "db reader"] {
            let err = RoleFilter::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("ClusterRole/NAME"), "{bad}: {err}");
        }
        let cluster = access("p", "a", "alice", "ClusterRole/db-reader", T0);
        let role = access("p", "b", "alice", "Role/db-reader", T0);
        let other = access("p", "c", "alice", "ClusterRole/db-reader-x", T0);
        let share = denied_share("p", "d", T0);
        let records = [cluster, role, other, share];
        let kept = |role: &str| {
            let filter = Filter {
                role: Some(RoleFilter::parse(role).unwrap()),
                ..Default::default()
            };
            names(&rows(&records, &filter, now()))
        };
        assert_eq!(kept("db-reader"), vec!["p/a", "p/b"]);
        assert_eq!(kept("ClusterRole/db-reader"), vec!["p/a"]);
        assert_eq!(kept("Role/db-reader"), vec!["p/b"]);
        assert!(kept("unused").is_empty(), "agreements grant no role");
    }

    #[test]
    fn filters_compare_the_spec() {
        let mut email = access("p", "email", "alice@example.com", "ClusterRole/r", T0);
        email.spec.policy = None;
        let records = [
            email,
            access("p", "alice", "alice", "ClusterRole/r", T0 + 1),
            access("q", "bob", "bob", "ClusterRole/r", T0 + 2),
            denied_share("p", "share", T0 + 3),
        ];
        let kept = |filter: Filter| names(&rows(&records, &filter, now()));
        assert_eq!(
            kept(Filter::default()),
            vec!["p/share", "p/email", "p/alice", "q/bob"],
            "by activation (a minute after creation), else creation"
        );
        assert_eq!(
            kept(Filter {
                requester: Some("alice@example.com".into()),
                ..Default::default()
            }),
            vec!["p/email"]
        );
        assert_eq!(
            kept(Filter {
                requester: Some("alice_example.com".into()),
                ..Default::default()
            }),
            Vec::<String>::new(),
            "the sanitised label value is not the requester"
        );
        assert_eq!(
            kept(Filter {
                policy: Some("payments-db".into()),
                ..Default::default()
            }),
            vec!["p/share", "p/alice", "q/bob"]
        );
        assert_eq!(
            kept(Filter {
                kind: Some(Kind::DataSharingAgreement),
                ..Default::default()
            }),
            vec!["p/share"]
        );
        assert_eq!(
            kept(Filter {
                namespace: Some("q".into()),
                ..Default::default()
            }),
            vec!["q/bob"]
        );
    }

    #[test]
    fn since_keeps_what_was_active_then() {
        let old = access("p", "old", "alice", "ClusterRole/r", T0);
        let mut running = access("p", "running", "alice", "ClusterRole/r", T0);
        running.spec.end = None;
        running.spec.removal = None;
        running.spec.outcome = Outcome::Active;
        let recent = access("p", "recent", "alice", "ClusterRole/r", T0 + 5 * 24 * 3600);
        // Activated before, revoked after the time: it was held then.
        let mut ended_late = access("p", "ended-late", "alice", "ClusterRole/r", T0);
        ended_late.spec.end.as_mut().unwrap().at = at(T0 + 4 * 24 * 3600);
        let records = [old, running, recent, ended_late];
        let filter = Filter {
            since: Some(Since::At(
                Timestamp::from_second(T0 + 2 * 24 * 3600).unwrap(),
            )),
            ..Default::default()
        };
        assert_eq!(
            names(&rows(&records, &filter, now())),
            vec!["p/ended-late", "p/running", "p/recent"]
        );
        let at_the_second = Filter {
            since: Some(Since::At(Timestamp::from_second(T0 + 60).unwrap())),
            ..Default::default()
        };
        assert_eq!(
            names(&rows(&records[..1], &at_the_second, now())),
            vec!["p/old"],
            "activated exactly then counts"
        );
    }

    #[test]
    fn label_selector_narrows_by_sanitised_labels() {
        assert_eq!(Filter::default().label_selector(), None);
        let filter = Filter {
            kind: Some(Kind::AccessRequest),
            requester: Some("alice@example.com".into()),
            policy: Some("payments-db".into()),
            role: Some(RoleFilter::parse("db-reader").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            filter.label_selector().as_deref(),
            Some(
                "gatehouse.dev/record-kind=AccessRequest,gatehouse.dev/requester=alice_example.com,gatehouse.dev/policy=payments-db"
            )
        );
    }

    #[test]
    fn renders_who_had_what_when_approved_by_whom() {
        let records = [
            access(
                "payments",
                "alice-read",
                "alice",
                "ClusterRole/db-reader",
                T0,
            ),
            denied_share("orders", "to-analytics", T0 + 100),
        ];
        let rows = rows(&records, &Filter::default(), now());
        assert_eq!(
            table(&rows),
            "KIND                   OBJECT                REQUESTER   SUBJECTS              WHAT                                                    POLICY        APPROVERS                       ACTIVATED              EXPIRES                ENDED                  OUTCOME   END REASON   ENDED BY   REMOVAL VERIFIED   RECORD\n\
             AccessRequest          payments/alice-read   alice       User alice            ClusterRole/db-reader in payments                       payments-db   manager:bob, data-owner:carol   2026-01-01T10:01:00Z   2026-01-01T11:01:00Z   2026-01-01T11:00:00Z   Revoked   Revoked      alice      yes                accessrequest.payments.alice-read.uid-alice-read\n\
             DataSharingAgreement   orders/to-analytics   erin        analytics/reporting   Secret/orders-db[host] to analytics/reporting by Copy   payments-db   privacy:dave (denied)           <none>                 <none>                 2026-01-01T10:01:50Z   Denied    Denied       dave       yes                datasharingagreement.orders.to-analytics.uid-to-analytics\n"
        );
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"no\""), "\"say \"\"no\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_record() {
        let mut record = access("payments", "alice-read", "alice", "ClusterRole/r", T0);
        record.spec.what = "ClusterRole/r in a, b".into();
        record.spec.end.as_mut().unwrap().by = Some("the \"operator\"".into());
        record.spec.policy = None;
        let records = [record];
        let text = csv(&rows(&records, &Filter::default(), now()));
        assert_eq!(
            text,
            "KIND,OBJECT,REQUESTER,SUBJECTS,WHAT,POLICY,APPROVERS,ACTIVATED,EXPIRES,ENDED,OUTCOME,END REASON,ENDED BY,REMOVAL VERIFIED,RECORD\r\n\
             AccessRequest,payments/alice-read,alice,User alice,\"ClusterRole/r in a, b\",,\"manager:bob, data-owner:carol\",2026-01-01T10:01:00Z,2026-01-01T11:01:00Z,2026-01-01T11:00:00Z,Revoked,Revoked,\"the \"\"operator\"\"\",yes,accessrequest.payments.alice-read.uid-alice-read\r\n"
        );
        assert_eq!(
            csv(&[]),
            "KIND,OBJECT,REQUESTER,SUBJECTS,WHAT,POLICY,APPROVERS,ACTIVATED,EXPIRES,ENDED,OUTCOME,END REASON,ENDED BY,REMOVAL VERIFIED,RECORD\r\n"
        );
    }

    #[test]
    fn json_is_the_record_specs_with_their_names() {
        let records = [access("p", "a", "alice", "ClusterRole/r", T0)];
        let text = json(&rows(&records, &Filter::default(), now()));
        let parsed: Vec<Value> = serde_json::from_str(&text).expect("a JSON array");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0]["metadata"]["name"], "accessrequest.p.a.uid-a");
        assert_eq!(parsed[0]["requester"], "alice");
        assert_eq!(parsed[0]["outcome"], "Revoked");
        assert_eq!(parsed[0]["decisions"][1]["user"], "carol");
        assert_eq!(json(&[]), "[]\n");
    }

    #[test]
    fn an_empty_report_says_no_records_match_and_what_was_asked() {
        let now = Timestamp::from_second(T0).unwrap() + std::time::Duration::from_millis(250);
        assert_eq!(
            no_match(&Filter::default(), now),
            "No records match: the cluster holds no AccessRecords."
        );
        let filter = Filter {
            requester: Some("alice".into()),
            kind: Some(Kind::AccessRequest),
            since: Some(Since::Ago(Duration::from_secs(3600))),
            ..Default::default()
        };
        assert_eq!(
            no_match(&filter, now),
            "No records match kind AccessRequest, requester alice, since 2026-01-01T09:00:00Z."
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{config, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// `--since` and `--role` take any text: a value or an error saying what to write,
        /// never a panic.
        #[test]
        fn report_filters_never_panic(value in tricky_text()) {
            if let Err(err) = Since::parse(&value) {
                prop_assert!(err.to_string().contains("write e.g. 24h, 7d"), "{}", err);
            }
            if let Ok(filter) = RoleFilter::parse(&value) {
                prop_assert!(!filter.name.is_empty() && !filter.name.contains('/'), "{:?}", filter);
            }
        }

        /// Days and a duration count back exactly their sum.
        #[test]
        fn since_counts_days_and_duration(days in 0u64..100_000, hours in 0u64..1_000_000) {
            let ago = Since::parse(&format!("{days}d{hours}h")).unwrap();
            prop_assert_eq!(ago, Since::Ago(Duration::from_secs(days * 86_400 + hours * 3600)));
        }
    }
}
