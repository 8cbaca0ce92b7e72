//! ApiVersions: generated from the one API table (`table::APIS`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseKind};

use super::Outcome;
use super::table::supported_apis;

pub fn response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            supported_apis()
                .map(|(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(api as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

/// A (supported) ApiVersions request: success and every range of the table.
pub fn handle() -> Outcome {
    Outcome::Respond(ResponseKind::ApiVersions(response(
        crate::error::NO_ERROR_CODE,
    )))
}
