//! ApiVersions: generated from the one API table (`table::APIS`), whose ranges the caller
//! hands in (so this file does not depend on the table that lists it).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};

use super::Outcome;

pub fn response(
    error_code: i16,
    apis: impl Iterator<Item = (ApiKey, i16, i16)>,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            apis.map(|(api, min, max)| {
                ApiVersion::default()
                    .with_api_key(api as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
        )
}

/// A (supported) ApiVersions request: success and every range of the table.
pub fn handle(apis: impl Iterator<Item = (ApiKey, i16, i16)>) -> Outcome {
    Outcome::Respond(ResponseKind::ApiVersions(response(
        crate::error::NO_ERROR_CODE,
        apis,
    )))
}
