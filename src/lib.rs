//! Gatehouse: data access and data sharing approval as Kubernetes resources.
//!
//! - An [`api::AccessRequest`] asks for an RBAC role for a time; the cluster-scoped
//!   [`api::AccessPolicy`] that governs it says which roles, where, for how long, and which approver
//!   roles must approve in order.
//! - A [`api::DataSharingAgreement`] asks to share keys of Secrets and ConfigMaps with a recipient;
//!   the cluster-scoped [`api::SharingPolicy`] says which reviews that needs.
//!
//! Approvers annotate the objects (`approve.gatehouse.dev/<role>=<username>`); admission policies
//! make the API server verify who wrote each annotation. The controllers observe the objects, decide
//! in pure functions ([`lifecycle`], [`access`], [`sharing`]), act through server-side apply, and record every decision in status
//! conditions and Events.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod apply;
pub mod controller;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod plugin;
#[cfg(test)]
mod properties;
pub mod server;
pub mod sharing;
pub mod telemetry;
