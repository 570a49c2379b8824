//! What the HTTP targets share: the client, and error texts that never show a URL (robot URLs
//! carry tokens and signatures; API URLs may carry keys).

use ferry_core::FerryError;

/// Builds the HTTP client the robot and HTTP sinks share. TLS uses the ring provider, installed
/// here if the process has not installed one yet (the `ferry` binary does it at start-up).
pub fn http_client() -> Result<reqwest::Client, FerryError> {
    // Installing twice is refused harmlessly: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .map_err(|e| FerryError::config(format!("cannot build an HTTP client: {e}")))
}

/// `e` and its sources, `: `-separated (reqwest's own text is often just "error sending request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
