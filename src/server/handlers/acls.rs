//! CreateAcls, DescribeAcls and DeleteAcls (v1-3; v0 is gone from Kafka 4 and from the
//! codec), as Kafka's `AclApis`: CreateAcls and DeleteAcls need Alter on the Cluster,
//! DescribeAcls Describe (else CLUSTER_AUTHORIZATION_FAILED); without an authorizer every
//! answer is SECURITY_DISABLED. A binding or filter Kafka refuses (an unknown code, `Any` or
//! `Match` in a binding, an empty name, a Cluster not named `kafka-cluster`, a principal not
//! of the form `Type:name`) is answered INVALID_REQUEST with Kafka's message, per binding or
//! filter; the others are applied. Changes are durable when answered (`AclStore`).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::checks;
use super::{Ctx, Outcome};
use crate::error::AuthzError;
use crate::security::Principal;
use crate::security::acl::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, ResourceType,
};
use crate::server::session::Caller;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Why the whole request is refused before any binding is looked at, if it is.
fn refused(ctx: &Ctx, caller: &Caller, op: AclOperation) -> Option<(AuthzError, &'static str)> {
    if ctx.config.authorizer.is_none() {
        return Some((
            AuthzError::SecurityDisabled,
            "No Authorizer is configured on the broker",
        ));
    }
    if !checks(ctx, caller).allows_cluster(op) {
        return Some((
            AuthzError::ClusterAuthorizationFailed,
            "Request is not authorized.",
        ));
    }
    None
}

pub fn create_acls(ctx: &Ctx, req: CreateAclsRequest, caller: &Caller) -> Outcome {
    let result = |e: Option<(AuthzError, String)>| match e {
        None => AclCreationResult::default(),
        Some((e, m)) => AclCreationResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(m))),
    };
    if let Some((e, m)) = refused(ctx, caller, AclOperation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| result(Some((e, m.to_string()))))
            .collect();
        return respond_create(results);
    }
    let parsed: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let principal: Principal = c.principal.parse().map_err(|_| {
                format!(
                    "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
                    c.principal
                )
            })?;
            let b = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type),
                name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type),
                principal,
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation),
                permission: AclPermission::from_code(c.permission_type),
            };
            b.validate().map(|()| b)
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
    let stored = ctx.broker.acls().create(&valid);
    let results = parsed
        .into_iter()
        .map(|r| match (r, &stored) {
            (Err(m), _) => result(Some((AuthzError::InvalidRequest, m))),
            (Ok(_), Ok(())) => result(None),
            (Ok(_), Err(e)) => result(Some((AuthzError::UnknownServerError, e.to_string()))),
        })
        .collect();
    respond_create(results)
}

fn respond_create(results: Vec<AclCreationResult>) -> Outcome {
    Outcome::Respond(ResponseKind::CreateAcls(
        CreateAclsResponse::default().with_results(results),
    ))
}

fn filter(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(resource_type),
        name: name.as_ref().map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        operation: AclOperation::from_code(operation),
        permission: AclPermission::from_code(permission),
    }
}

pub fn describe_acls(ctx: &Ctx, req: DescribeAclsRequest, caller: &Caller) -> Outcome {
    let error = |e: AuthzError, m: String| {
        Outcome::Respond(ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_string(m))),
        ))
    };
    if let Some((e, m)) = refused(ctx, caller, AclOperation::Describe) {
        return error(e, m.to_string());
    }
    let f = filter(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    );
    if let Err(m) = f.validate() {
        return error(AuthzError::InvalidRequest, m);
    }
    // Grouped by resource pattern, as Kafka's `DescribeAclsResponse.aclsResources`.
    let mut by_pattern: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in ctx.broker.acls().read().bindings().filter(|b| f.matches(b)) {
        by_pattern
            .entry((b.resource_type, b.name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(b.principal.to_string()))
                    .with_host(text(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = by_pattern
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt.code())
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pt.code())
                .with_acls(acls)
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeAcls(
        DescribeAclsResponse::default().with_resources(resources),
    ))
}

pub fn delete_acls(ctx: &Ctx, req: DeleteAclsRequest, caller: &Caller) -> Outcome {
    let failed = |e: AuthzError, m: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(text(m)))
    };
    if let Some((e, m)) = refused(ctx, caller, AclOperation::Alter) {
        let results = req.filters.iter().map(|_| failed(e, m)).collect();
        return respond_delete(results);
    }
    let filters: Vec<Result<AclBindingFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            let f = filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            );
            f.validate().map(|()| f)
        })
        .collect();
    let valid: Vec<AclBindingFilter> = filters.iter().filter_map(|f| f.clone().ok()).collect();
    let deleted = ctx.broker.acls().delete(&valid);
    let mut deleted_per_filter = match &deleted {
        Ok(d) => d.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = filters
        .iter()
        .map(|f| match (f, &deleted) {
            (Err(m), _) => failed(AuthzError::InvalidRequest, m),
            (Ok(_), Err(e)) => failed(AuthzError::UnknownServerError, &e.to_string()),
            (Ok(_), Ok(_)) => {
                let matching = deleted_per_filter
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(StrBytes::from_string(b.name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(StrBytes::from_string(b.principal.to_string()))
                            .with_host(StrBytes::from_string(b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
        })
        .collect();
    respond_delete(results)
}

fn respond_delete(results: Vec<DeleteAclsFilterResult>) -> Outcome {
    Outcome::Respond(ResponseKind::DeleteAcls(
        DeleteAclsResponse::default().with_filter_results(results),
    ))
}
