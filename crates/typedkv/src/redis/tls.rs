//! TLS for `rediss://` URLs (feature `tls`): rustls, certificates always verified.

use ::redis::{Client, ConnectionAddr, ConnectionInfo, TlsCertificates};

use crate::error::{Error, Result};

/// Readies `info` for TLS: makes sure a rustls crypto provider is installed (ring's, unless
/// the application installed one) and, if `roots` (PEM) are given, trusts those instead of
/// the system's certificate store.
pub(crate) fn prepare(info: ConnectionInfo, roots: Option<&[u8]>) -> Result<ConnectionInfo> {
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        return match roots {
            Some(_) => Err(Error::config(
                "TLS root certificates were given for a URL without TLS (use rediss://)",
            )),
            None => Ok(info),
        };
    }
    // Err means a provider is installed already: the application's choice stands.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(pem) = roots else {
        return Ok(info);
    };
    let certificates = TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    };
    Client::build_with_tls(info, certificates)
        .map(|client| client.get_connection_info().clone())
        .map_err(|e| Error::InvalidConfig {
            reason: "cannot use the TLS root certificates".into(),
            source: Some(Box::new(e)),
        })
}
