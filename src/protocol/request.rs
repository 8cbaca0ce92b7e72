//! Decoding one request frame: the steps the worker takes before dispatching, in one place so
//! the server and the fuzz target (`fuzz/fuzz_targets/request_decode.rs`) run the same code.
//!
//! Order: an 8-byte peek (API key, version, correlation id), the API key, the supported version
//! range (looked up by the caller's `SupportedRange`: the server's API table,
//! `server::handlers::table`, which this layer does not depend on), the request header at the header version of that API and version, then
//! the body. Nothing is allocated by a count read from the frame before the vendored decoder
//! has checked it against the bytes remaining.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

/// The supported version range `(min, max)` of an API, or `None` if it is not implemented.
pub type SupportedRange = fn(ApiKey) -> Option<(i16, i16)>;

/// A request frame decoded as the server decodes it.
#[derive(Debug)]
pub struct DecodedRequest {
    pub api: ApiKey,
    pub header: RequestHeader,
    pub request: RequestKind,
}

/// Why a frame could not be decoded, and what the server does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// ApiVersions at a version we do not support: answered (v0, UNSUPPORTED_VERSION, our
    /// ranges) so the client can retry with one we do, as Kafka does.
    UnsupportedApiVersions { correlation_id: i32 },
    /// Anything else: the connection is closed (the request cannot be parsed, so it cannot be
    /// answered); the reason is logged.
    Close(String),
}

/// Decodes one request frame (size prefix already removed), accepting the versions
/// `supported_range` gives.
pub fn decode_request(
    frame: Bytes,
    supported_range: SupportedRange,
) -> Result<DecodedRequest, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let mut peek = &frame[..8];
    let api_key_raw = peek.get_i16();
    let api_version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let Ok(api) = ApiKey::try_from(api_key_raw) else {
        return Err(DecodeError::Close(format!("unknown API key {api_key_raw}")));
    };
    if !supported_range(api).is_some_and(|(min, max)| (min..=max).contains(&api_version)) {
        if api == ApiKey::ApiVersions {
            return Err(DecodeError::UnsupportedApiVersions { correlation_id });
        }
        return Err(DecodeError::Close(format!(
            "unsupported version {api_version} of {api:?}"
        )));
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(api_version))
        .map_err(|e| DecodeError::Close(format!("bad {api:?} request header: {e}")))?;
    let request = RequestKind::decode(api, &mut buf, api_version).map_err(|e| {
        DecodeError::Close(format!("cannot decode {api:?} v{api_version} request: {e}"))
    })?;
    Ok(DecodedRequest {
        api,
        header,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame(api: ApiKey, version: i16, correlation_id: i32) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("t")))
            .encode(&mut buf, api.request_header_version(version))
            .unwrap_or_else(|e| panic!("{e}"));
        ApiVersionsRequest::default()
            .encode(&mut buf, version.clamp(0, 3))
            .unwrap_or_else(|e| panic!("{e}"));
        buf.freeze()
    }

    /// ApiVersions 0..=3 and Produce 3..=9, as the server's table has them.
    fn ranges(api: ApiKey) -> Option<(i16, i16)> {
        match api {
            ApiKey::ApiVersions => Some((0, 3)),
            ApiKey::Produce => Some((3, 9)),
            _ => None,
        }
    }

    fn decode_request(frame: Bytes) -> Result<DecodedRequest, DecodeError> {
        super::decode_request(frame, ranges)
    }

    #[test]
    fn decodes_a_supported_request_and_classifies_the_rest() {
        let ok =
            decode_request(frame(ApiKey::ApiVersions, 3, 7)).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((ok.api, ok.header.correlation_id), (ApiKey::ApiVersions, 7));
        assert_eq!(
            decode_request(frame(ApiKey::ApiVersions, 99, 8)).err(),
            Some(DecodeError::UnsupportedApiVersions { correlation_id: 8 })
        );
        assert!(matches!(
            decode_request(frame(ApiKey::Produce, 99, 9)),
            Err(DecodeError::Close(_))
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1, 2])),
            Err(DecodeError::Close(_))
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1])),
            Err(DecodeError::Close(_))
        ));
    }
}
