//! DescribeUserScramCredentials (v0) and AlterUserScramCredentials (v0): SCRAM credentials
//! managed over the wire (`kafka-configs --entity-type users`, the admin clients), with Kafka's
//! checks and messages (`ScramControlManager`, `ScramImage`). Both need the Cluster resource's
//! Describe / Alter permission. The client salts the password itself; the broker derives
//! StoredKey and ServerKey from the salted password and keeps only those.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::{CLUSTER_NAME, allowed};
use super::{Ctx, Outcome, message};
use crate::broker::security::users::{UserChange, check_credential};
use crate::error::{Error, NO_ERROR_CODE};
use crate::limits::SCRAM_CREDENTIAL_FIELD_BYTES_MAX;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::sasl::{ScramCredential, ScramHash};
use crate::server::session::Caller;

pub fn describe(
    ctx: &Ctx,
    request: DescribeUserScramCredentialsRequest,
    caller: &Caller,
) -> Outcome {
    let mut response = DescribeUserScramCredentialsResponse::default();
    if !allowed(
        ctx,
        caller,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Outcome::Respond(ResponseKind::DescribeUserScramCredentials(response));
    }
    let all = ctx.broker.users().list();
    let by_name: BTreeMap<&str, &Vec<(ScramHash, u32)>> =
        all.iter().map(|(n, v)| (n.as_str(), v)).collect();
    // Each name once, with whether it was asked for twice.
    let mut asked: BTreeMap<String, bool> = BTreeMap::new();
    match request.users {
        Some(users) if !users.is_empty() => {
            for u in users {
                match asked.get_mut(u.name.as_str()) {
                    Some(duplicate) => *duplicate = true,
                    None => {
                        asked.insert(u.name.to_string(), false);
                    }
                }
            }
        }
        _ => asked.extend(all.iter().map(|(n, _)| (n.clone(), false))),
    }
    response.results = asked
        .into_iter()
        .map(|(name, duplicate)| {
            let mut r = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(name.clone()));
            let e = if duplicate {
                Some(Error::DuplicateResource(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                )))
            } else if let Some(creds) = by_name.get(name.as_str()) {
                r.credential_infos = creds
                    .iter()
                    .map(|(h, it)| {
                        CredentialInfo::default()
                            .with_mechanism(h.wire_type())
                            .with_iterations(i32::try_from(*it).unwrap_or(i32::MAX))
                    })
                    .collect();
                None
            } else {
                Some(Error::ResourceNotFound(format!(
                    "Attempt to describe a user credential that does not exist: {name}"
                )))
            };
            if let Some(e) = e {
                r.error_code = e.kafka_code();
                r.error_message = message(&e);
            }
            r
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeUserScramCredentials(response))
}

pub fn alter(ctx: &Ctx, request: AlterUserScramCredentialsRequest, caller: &Caller) -> Outcome {
    let result = |user: &str, e: Option<Error>| {
        let mut r = AlterUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_error_code(NO_ERROR_CODE)
            .with_error_message(None);
        if let Some(e) = e {
            r.error_code = e.kafka_code();
            r.error_message = message(&e);
        }
        r
    };
    let mut response = AlterUserScramCredentialsResponse::default();
    if !allowed(
        ctx,
        caller,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        let users: BTreeSet<String> = request
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(request.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        response.results = users
            .iter()
            .map(|u| {
                let mut r = result(u, None);
                r.error_code = ResponseError::ClusterAuthorizationFailed.code();
                r
            })
            .collect();
        return Outcome::Respond(ResponseKind::AlterUserScramCredentials(response));
    }
    let store = ctx.broker.users();
    let mut errors: BTreeMap<String, Error> = BTreeMap::new();
    let mut changes: BTreeMap<String, UserChange> = BTreeMap::new();
    let twice = || {
        Error::DuplicateResource(
            "A user credential cannot be altered twice in the same request".into(),
        )
    };
    for d in &request.deletions {
        let name = d.name.to_string();
        if errors.contains_key(&name) {
            continue;
        }
        if changes.remove(&name).is_some() {
            errors.insert(name, twice());
            continue;
        }
        let e = match ScramHash::from_wire_type(d.mechanism) {
            _ if name.is_empty() => Err(Error::UnacceptableCredential(
                "Username must not be empty".into(),
            )),
            None => Err(Error::UnsupportedSaslMechanism(
                "Unknown SCRAM mechanism".into(),
            )),
            Some(hash) if store.credential(&name, hash).is_none() => Err(Error::ResourceNotFound(
                "Attempt to delete a user credential that does not exist".into(),
            )),
            Some(hash) => Ok(UserChange::Delete {
                name: name.clone(),
                hash,
            }),
        };
        match e {
            Ok(c) => {
                changes.insert(name, c);
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }
    for u in &request.upsertions {
        let name = u.name.to_string();
        if errors.contains_key(&name) {
            continue;
        }
        if changes.remove(&name).is_some() {
            errors.insert(name, twice());
            continue;
        }
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        let checked = match ScramHash::from_wire_type(u.mechanism) {
            _ if name.is_empty() => Err(Error::UnacceptableCredential(
                "Username must not be empty".into(),
            )),
            None => Err(Error::UnsupportedSaslMechanism(
                "Unknown SCRAM mechanism".into(),
            )),
            Some(hash) => match check_credential(&name, iterations) {
                Err(why) => Err(Error::UnacceptableCredential(why.into())),
                Ok(())
                    if u.salt.is_empty()
                        || u.salt.len() > SCRAM_CREDENTIAL_FIELD_BYTES_MAX
                        || u.salted_password.len() != hash.output_bytes() =>
                {
                    Err(Error::UnacceptableCredential(
                        "salt or salted password of an unacceptable length".into(),
                    ))
                }
                Ok(()) => Ok(UserChange::Upsert {
                    name: name.clone(),
                    hash,
                    credential: ScramCredential::from_salted_password(
                        hash,
                        u.salt.to_vec(),
                        &u.salted_password,
                        iterations,
                    ),
                }),
            },
        };
        match checked {
            Ok(c) => {
                changes.insert(name, c);
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }
    let applied: Vec<UserChange> = changes.values().cloned().collect();
    if let Err(e) = store.apply(&applied) {
        log::error!("AlterUserScramCredentials: {e}");
        for name in changes.keys() {
            errors.insert(name.clone(), Error::Metadata(e.to_string()));
        }
        changes.clear();
    }
    response.results = changes
        .keys()
        .map(|n| result(n, None))
        .chain(errors.into_iter().map(|(n, e)| result(&n, Some(e))))
        .collect();
    Outcome::Respond(ResponseKind::AlterUserScramCredentials(response))
}
