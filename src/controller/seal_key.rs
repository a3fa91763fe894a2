//! The key the operator seals activation windows with ([`crate::lifecycle::activation`]): a Secret in
//! the operator's own namespace, created with 32 random bytes by the first replica that finds none,
//! and never changed (immutable). Only cluster admins and the operator can read it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::Error;
use crate::api::MANAGED_BY;
use crate::lifecycle::activation::{KEY_LENGTH, SealKey};

/// Name of the Secret that holds the seal key.
pub const SECRET_NAME: &str = "gatehouse-seal-key";

/// Data key of the seal key in the Secret.
const DATA_KEY: &str = "key";

/// Reads the seal key, creating it when there is none yet.
pub async fn load(client: &Client, namespace: &str) -> Result<SealKey, Error> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let failed = |source| Error::SealKey {
        namespace: namespace.to_string(),
        source,
    };
    if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(failed)? {
        return key_of(&secret).ok_or_else(|| unusable(namespace));
    }
    let mut bytes = [0u8; KEY_LENGTH];
    getrandom::fill(&mut bytes).map_err(|e| Error::SealKeyInvalid {
        namespace: namespace.to_string(),
        problem: format!("no randomness from the operating system: {e}"),
    })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            ..Default::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            DATA_KEY.to_string(),
            ByteString(bytes.to_vec()),
        )])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            tracing::info!(namespace, secret = SECRET_NAME, "created the seal key");
            key_of(&created).ok_or_else(|| unusable(namespace))
        }
        // Another replica created it first: use theirs.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = api.get(SECRET_NAME).await.map_err(failed)?;
            key_of(&secret).ok_or_else(|| unusable(namespace))
        }
        Err(source) => Err(failed(source)),
    }
}

fn key_of(secret: &Secret) -> Option<SealKey> {
    let bytes = secret.data.as_ref()?.get(DATA_KEY)?;
    SealKey::from_bytes(&bytes.0)
}

fn unusable(namespace: &str) -> Error {
    Error::SealKeyInvalid {
        namespace: namespace.to_string(),
        problem: format!("data.{DATA_KEY} must hold exactly {KEY_LENGTH} bytes"),
    }
}
