//! Statuses tonic itself produces before a request reaches a service, put into RingDB's
//! documented code table: a request that does not decode (invalid UTF-8 in a string field
//! arrives as `INTERNAL` from prost) or is over the message limit (`OUT_OF_RANGE`) is the
//! caller's bad input, so it becomes `INVALID_ARGUMENT` with the limit in the message.

use http::{HeaderMap, HeaderValue, Response};
use percent_encoding::percent_decode;
use tonic::{Code, Status};

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";

/// What tonic's decoder says when a message is larger than the service accepts.
const TOO_LARGE: &str = "decoded message length too large: found ";
/// What tonic's protobuf codec says when a message does not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// The limits quoted in rewritten messages.
#[derive(Debug, Clone, Copy)]
pub struct WireLimits {
    /// Largest request message the client services accept.
    pub max_message_bytes: usize,
    /// Largest document (`--max-document-bytes`).
    pub max_document_bytes: usize,
}

impl WireLimits {
    /// Rewrite the status of a trailers-only response (how tonic answers a request it
    /// refused before the service ran); any other response passes untouched.
    pub fn rewrite<B>(self, mut response: Response<B>) -> Response<B> {
        let headers = response.headers_mut();
        let Some((code, message)) = status_of(headers) else {
            return response;
        };
        if let Some(status) = self.documented(code, &message) {
            headers.remove(GRPC_MESSAGE);
            if let Err(e) = status.add_header(headers) {
                tracing::warn!(error = %e, "cannot rewrite a status header");
            }
        }
        response
    }

    /// The documented status for tonic's own `code` and `message`, if it is one to rewrite.
    pub fn documented(self, code: Code, message: &str) -> Option<Status> {
        match code {
            Code::OutOfRange => {
                let rest = &message[message.find(TOO_LARGE)? + TOO_LARGE.len()..];
                let found: String = rest.chars().take_while(char::is_ascii_digit).collect();
                Some(Status::invalid_argument(format!(
                    "request message is {found} bytes; the limit is {} bytes per message \
                     (documents are limited to {} bytes by --max-document-bytes)",
                    self.max_message_bytes, self.max_document_bytes
                )))
            }
            Code::Internal if message.starts_with(UNDECODABLE) => {
                let detail = message[UNDECODABLE.len()..].trim_start_matches([':', ' ']);
                let utf8 = if detail.contains("UTF-8") {
                    "; strings (collection names, keys, contexts, paths) must be valid UTF-8"
                } else {
                    ""
                };
                Some(Status::invalid_argument(format!(
                    "request is not a valid protobuf message for this call ({detail}){utf8}"
                )))
            }
            _ => None,
        }
    }
}

/// The code and message of a trailers-only response.
fn status_of(headers: &HeaderMap) -> Option<(Code, String)> {
    let code = Code::from_bytes(headers.get(GRPC_STATUS)?.as_bytes());
    if !matches!(code, Code::OutOfRange | Code::Internal) {
        return None;
    }
    let message = headers
        .get(GRPC_MESSAGE)
        .map(HeaderValue::as_bytes)
        .map(|m| percent_decode(m).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WireLimits = WireLimits {
        max_message_bytes: 1000,
        max_document_bytes: 900,
    };

    fn response(status: Status) -> Response<()> {
        let mut r = Response::new(());
        status.add_header(r.headers_mut()).unwrap();
        r
    }

    fn status(r: &Response<()>) -> (Code, String) {
        let code = Code::from_bytes(r.headers()[GRPC_STATUS].as_bytes());
        let m = percent_decode(r.headers()[GRPC_MESSAGE].as_bytes()).decode_utf8_lossy();
        (code, m.into_owned())
    }

    #[test]
    fn tonic_refusals_become_invalid_argument_with_the_limit() {
        let big = Status::out_of_range(
            "Error, decoded message length too large: found 5000 bytes, the limit is: 1000 bytes",
        );
        let (code, m) = status(&LIMITS.rewrite(response(big)));
        assert_eq!(code, Code::InvalidArgument);
        assert!(m.contains("5000 bytes") && m.contains("limit is 1000") && m.contains("900"));

        let utf8 = Status::internal(
            "failed to decode Protobuf message: PutRequest.key: invalid string value: data is \
             not UTF-8 encoded",
        );
        let (code, m) = status(&LIMITS.rewrite(response(utf8)));
        assert_eq!(code, Code::InvalidArgument);
        assert!(
            m.contains("PutRequest.key") && m.contains("valid UTF-8"),
            "{m}"
        );
    }

    #[test]
    fn other_statuses_pass_untouched() {
        for s in [
            Status::internal("a real bug"),
            Status::out_of_range("something else"),
            Status::unavailable("failed to decode Protobuf message"),
        ] {
            let before = status(&response(s.clone()));
            assert_eq!(status(&LIMITS.rewrite(response(s))), before);
        }
        let plain = LIMITS.rewrite(Response::new(()));
        assert!(plain.headers().is_empty());
    }
}
