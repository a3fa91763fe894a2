//! The activation window both kinds share: when access or a share started and when it ends, and
//! the operator's proof that it chose those times itself.
//!
//! Status is the operator's memory, and the `gatehouse-status` admission policy lets only the
//! operator write it. In depth, the operator never takes a recorded window on trust: it seals the
//! window it opens (HMAC-SHA256 over the kind, the object's UID and both times, keyed by a secret
//! only the operator reads) and accepts a recorded window only with a valid seal. A status written
//! by anyone else cannot start access, move an expiry or revive an ended grant.

use std::time::Duration;

use hmac::{Hmac, Mac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sha2::Sha256;

use super::duration::{after, second_ceil, second_floor};

/// Bytes of a seal key.
pub const KEY_LENGTH: usize = 32;

/// How far in the future a recorded activation may lie (clock skew between replicas).
const SKEW: Duration = Duration::from_secs(60);

/// Version prefix of a seal, so that the scheme can change without misreading old seals.
const SEAL_VERSION: &str = "hmac-sha256";

/// The key the operator seals activation windows with. Only the operator reads it.
#[derive(Clone)]
pub struct SealKey(Vec<u8>);

impl SealKey {
    /// A key from stored bytes; `None` unless it has exactly [`KEY_LENGTH`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == KEY_LENGTH).then(|| Self(bytes.to_vec()))
    }

    fn mac(&self, object: &Sealed) -> Hmac<Sha256> {
        // A key of any length is valid for HMAC; from_bytes admits only KEY_LENGTH anyway.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        for part in [
            object.kind,
            object.uid,
            &object.activated_at.to_string(),
            &object.expires_at.to_string(),
        ] {
            // Length-prefixed, so that no two different windows hash the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The seal of a window.
    pub fn seal(&self, object: &Sealed) -> String {
        let tag = self.mac(object).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{SEAL_VERSION}:{hex}")
    }

    /// Whether `seal` is this key's seal of the window (compared in constant time).
    pub fn verifies(&self, object: &Sealed, seal: &str) -> bool {
        let Some(hex) = seal
            .strip_prefix(SEAL_VERSION)
            .and_then(|s| s.strip_prefix(':'))
        else {
            return false;
        };
        let Some(tag) = decode_hex(hex) else {
            return false;
        };
        self.mac(object).verify_slice(&tag).is_ok()
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// What a seal covers: the kind and UID of the object, and its window.
pub struct Sealed<'a> {
    pub kind: &'a str,
    pub uid: &'a str,
    pub activated_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Who is asking: the object a window belongs to, and the key.
#[derive(Clone, Copy)]
pub struct Sealer<'a> {
    pub key: &'a SealKey,
    pub kind: &'a str,
    pub uid: &'a str,
}

/// An activation window as the operator records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub activated_at: Time,
    pub expires_at: Time,
    pub seal: String,
}

impl Sealer<'_> {
    /// Opens a window of `length` starting `now`, sealed. Whole seconds, so that the recorded
    /// times (RFC 3339 in status) are exactly the sealed ones; the end rounds up, never short.
    pub fn open(&self, now: Timestamp, length: Duration) -> Window {
        let activated_at = second_floor(now);
        let expires_at = second_ceil(after(now, length));
        let seal = self.key.seal(&self.sealed(activated_at, expires_at));
        Window {
            activated_at: Time(activated_at),
            expires_at: Time(expires_at),
            seal,
        }
    }

    /// Checks a recorded window: sealed by this operator for this object, started no later than
    /// now, and ending after it started. `Err` says what is wrong, for the `StatusTampered`
    /// condition.
    pub fn check(
        &self,
        activated_at: &Time,
        expires_at: &Time,
        seal: Option<&str>,
        now: Timestamp,
    ) -> Result<(), String> {
        let sealed = self.sealed(activated_at.0, expires_at.0);
        match seal {
            None => Err(format!(
                "the recorded activation ({} until {}) carries no seal; the operator never wrote it",
                activated_at.0, expires_at.0
            )),
            Some(seal) if !self.key.verifies(&sealed, seal) => Err(format!(
                "the recorded activation ({} until {}) does not match its seal; someone other than the operator wrote it",
                activated_at.0, expires_at.0
            )),
            Some(_) if activated_at.0 > after(now, SKEW) || expires_at.0 <= activated_at.0 => {
                Err(format!(
                    "the recorded activation ({} until {}) is impossible",
                    activated_at.0, expires_at.0
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks what a status records: its window, if any, and `executed_phase`, the name of its
    /// phase when that phase claims access exists (which needs a window). One check for both kinds.
    pub fn check_status(
        &self,
        window: Option<(&Time, &Time, Option<&str>)>,
        executed_phase: Option<&str>,
        now: Timestamp,
    ) -> Result<(), String> {
        match (window, executed_phase) {
            (Some((activated_at, expires_at, seal)), _) => {
                self.check(activated_at, expires_at, seal, now)
            }
            (None, Some(phase)) => {
                Err(format!("the status says {phase} but records no activation"))
            }
            (None, None) => Ok(()),
        }
    }

    fn sealed(&self, activated_at: Timestamp, expires_at: Timestamp) -> Sealed<'_> {
        Sealed {
            kind: self.kind,
            uid: self.uid,
            activated_at,
            expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid")
    }

    fn key_of(byte: u8) -> SealKey {
        SealKey::from_bytes(&[byte; KEY_LENGTH]).expect("32 bytes")
    }

    #[test]
    fn a_window_the_operator_opened_checks_out() {
        let key = key_of(7);
        let sealer = Sealer {
            key: &key,
            kind: "AccessRequest",
            uid: "u-1",
        };
        let window = sealer.open(at(0), Duration::from_secs(3600));
        assert_eq!(window.expires_at.0, at(3600));
        assert_eq!(
            sealer.check(
                &window.activated_at,
                &window.expires_at,
                Some(&window.seal),
                at(10)
            ),
            Ok(())
        );
    }

    #[test]
    fn a_moved_time_another_object_another_kind_or_another_key_fails() {
        let key = key_of(7);
        let sealer = Sealer {
            key: &key,
            kind: "AccessRequest",
            uid: "u-1",
        };
        let window = sealer.open(at(0), Duration::from_secs(3600));
        let stretched = Time(at(3600 * 24 * 365));
        let error = sealer
            .check(&window.activated_at, &stretched, Some(&window.seal), at(10))
            .expect_err("a stretched expiry");
        assert!(error.contains("does not match its seal"), "{error}");
        let restarted = Time(at(100));
        assert!(
            sealer
                .check(&restarted, &window.expires_at, Some(&window.seal), at(200))
                .is_err()
        );
        for other in [
            Sealer {
                uid: "u-2",
                ..sealer
            },
            Sealer {
                kind: "DataSharingAgreement",
                ..sealer
            },
        ] {
            assert!(
                other
                    .check(
                        &window.activated_at,
                        &window.expires_at,
                        Some(&window.seal),
                        at(10)
                    )
                    .is_err()
            );
        }
        let forger = key_of(8);
        let forged = Sealer {
            key: &forger,
            ..sealer
        }
        .open(at(0), Duration::from_secs(3600));
        assert!(
            sealer
                .check(
                    &forged.activated_at,
                    &forged.expires_at,
                    Some(&forged.seal),
                    at(10)
                )
                .is_err()
        );
    }

    #[test]
    fn a_missing_or_garbled_seal_or_a_future_start_fails() {
        let key = key_of(7);
        let sealer = Sealer {
            key: &key,
            kind: "AccessRequest",
            uid: "u-1",
        };
        let window = sealer.open(at(0), Duration::from_secs(60));
        let missing = sealer
            .check(&window.activated_at, &window.expires_at, None, at(1))
            .expect_err("no seal");
        assert!(missing.contains("carries no seal"), "{missing}");
        for garbled in [
            "",
            "v1:",
            "v1:zz",
            "v2:00",
            &window.seal[..10],
            "v1:ab\u{e9}",
        ] {
            assert!(
                sealer
                    .check(
                        &window.activated_at,
                        &window.expires_at,
                        Some(garbled),
                        at(1)
                    )
                    .is_err(),
                "{garbled:?}"
            );
        }
        let future = sealer.open(at(1000), Duration::from_secs(60));
        assert!(
            sealer
                .check(
                    &future.activated_at,
                    &future.expires_at,
                    Some(&future.seal),
                    at(0)
                )
                .is_err(),
            "sealed, but it starts in the future"
        );
        assert!(SealKey::from_bytes(&[1; 16]).is_none());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{config, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// A recorded seal is status text anyone with status access could write: any text is
        /// checked without a panic, and none but the operator's own seal of that window passes.
        #[test]
        fn only_the_operators_seal_verifies(
            key in prop::array::uniform32(any::<u8>()),
            opened in 0i64..4_000_000_000,
            length in 1u64..1_000_000,
            forged in prop_oneof![tricky_text(), "hmac-sha256:[0-9a-f]{64}"],
        ) {
            let key = SealKey::from_bytes(&key).unwrap();
            let window = Sealed {
                kind: "AccessRequest",
                uid: "u-1",
                activated_at: Timestamp::from_second(opened).unwrap(),
                expires_at: Timestamp::from_second(opened + length as i64).unwrap(),
            };
            let seal = key.seal(&window);
            prop_assert!(key.verifies(&window, &seal));
            prop_assert_eq!(key.verifies(&window, &forged), forged == seal, "{:?}", forged);
        }
    }
}
