//! TLS for `rediss://` URLs (feature `tls`): rustls, certificates always verified.

use ::redis::{Client, ConnectionAddr, ConnectionInfo, TlsCertificates};

use crate::error::{Error, Result};

/// Readies `info` for TLS: makes sure a rustls crypto provider is installed (ring's, unless
/// the application installed one) and, if `roots` (PEM) are given, trusts those instead of
/// the system's certificate store.
pub(crate) fn prepare(info: ConnectionInfo, roots: Option<&[u8]>) -> Result<ConnectionInfo> {
    let is_tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    let Some(certificates) = certificates(is_tls, roots)? else {
        return Ok(info);
    };
    Client::build_with_tls(info, certificates)
        .map(|client| client.get_connection_info().clone())
        .map_err(|e| Error::InvalidConfig {
            reason: "cannot use the TLS root certificates".into(),
            source: Some(super::errors::cause(e)),
        })
}

/// [`prepare`] for a cluster client: the roots apply to every node it discovers.
#[cfg(feature = "cluster")]
pub(crate) fn prepare_cluster(
    builder: ::redis::cluster::ClusterClientBuilder,
    settings: &super::config::Settings,
) -> Result<::redis::cluster::ClusterClientBuilder> {
    let is_tls = settings.urls.iter().any(|url| url.starts_with("rediss://"));
    Ok(match certificates(is_tls, settings.tls_roots.as_deref())? {
        Some(certificates) => builder.certs(certificates),
        None => builder,
    })
}

/// Installs a crypto provider for TLS URLs and turns `roots` into certificates to trust;
/// refuses roots for a URL without TLS (surely a mistake: nothing would be verified).
pub(crate) fn certificates(is_tls: bool, roots: Option<&[u8]>) -> Result<Option<TlsCertificates>> {
    if !is_tls {
        return match roots {
            Some(_) => Err(Error::config(
                "TLS root certificates were given for a URL without TLS (use rediss://)",
            )),
            None => Ok(None),
        };
    }
    // Err means a provider is installed already: the application's choice stands.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(roots.map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }))
}
