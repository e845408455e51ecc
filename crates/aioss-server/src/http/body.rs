//! Reading a request's body: at most [`MAX_BODY`] bytes of UTF-8, within
//! `body_read_timeout_secs` (the handlers' deadline; the connection's own are in
//! `crate::listen`).

use axum::body::Body;

use super::{App, MAX_BODY};
use crate::error::{ApiError, ErrorCode};

/// The body of an admitted request; a refusal otherwise (a timeout is 408 `body_timeout`
/// and a body that cannot be read 400 `malformed_body`, both closing the connection).
pub(super) async fn read(app: &App, body: Body) -> Result<String, ApiError> {
    let secs = app.settings.body_read_timeout_secs;
    let limit = crate::listen::secs(secs);
    let Ok(read) = tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await else {
        return Err(ApiError::new(
            ErrorCode::BodyTimeout,
            format!("the body did not arrive within {secs} s"),
        ));
    };
    match read {
        Ok(b) => String::from_utf8(b.to_vec()).map_err(|_| {
            ApiError::new(
                ErrorCode::Input(aioss_core::InputCode::MalformedJson),
                "the body is not UTF-8",
            )
            .with_body(String::from_utf8_lossy(&b))
        }),
        Err(e) if too_large(&e) => Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("the body is larger than {MAX_BODY} bytes"),
        )),
        // A broken chunked encoding and the like (caught: answered 413 `too_large`).
        Err(e) => Err(ApiError::new(
            ErrorCode::MalformedBody,
            format!("the body could not be read: {e}"),
        )),
    }
}

/// Whether reading a body failed because it is over [`MAX_BODY`].
fn too_large(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}
