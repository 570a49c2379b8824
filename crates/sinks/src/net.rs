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

pub(crate) use ferry_core::error::error_chain;
