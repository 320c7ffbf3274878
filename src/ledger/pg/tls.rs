//! TLS to the PostgreSQL server with rustls (the stack the API client uses), keeping libpq's
//! meaning of `sslmode`: `prefer` and `require` encrypt without verifying the server (as libpq
//! does), `verify-ca` checks the certificate chain, `verify-full` the chain and the host name.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{RootCert, Target, TlsMode};
use crate::ledger::{Cause, Hint, LedgerError};

/// Why TLS to the server cannot be set up.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsSetupError {
    #[error("cannot set up TLS")]
    Rustls(#[source] rustls::Error),
    #[error("cannot use the CA certificates")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("cannot read sslrootcert {}", .0.display())]
    RootFile(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error(
        "sslrootcert {} holds no usable certificate; point it at the PEM file of the server's CA",
        .0.display()
    )]
    NoCertificate(PathBuf),
    #[error("the system trust store holds no certificates; use sslrootcert=FILE")]
    NoSystemCertificate,
}

/// The driver's `sslmode` for ours.
pub(super) fn driver_mode(mode: TlsMode) -> tokio_postgres::config::SslMode {
    use tokio_postgres::config::SslMode;
    match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
    }
}

/// The TLS connector `target`'s `sslmode` calls for.
pub(super) fn connector(target: &Target) -> Result<MakeRustlsConnect, LedgerError> {
    setup(target).map_err(|e| LedgerError::Unavailable {
        at: target.shown().to_owned(),
        hint: Hint::default(),
        cause: Cause::new(e),
    })
}

fn setup(target: &Target) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Rustls)?;
    let chain: Option<Arc<dyn ServerCertVerifier>> = match target.tls {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => None,
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let roots = Arc::new(roots(target.root_cert.as_ref())?);
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(TlsSetupError::Verifier)?;
            Some(chain)
        }
    };
    let verifier = Verifier {
        provider,
        chain,
        any_name: target.tls == TlsMode::VerifyCa,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn roots(root: Option<&RootCert>) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match root {
        Some(RootCert::File(path)) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsSetupError::RootFile(path.clone(), e))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError::NoCertificate(path.clone()));
            }
        }
        Some(RootCert::System) | None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsSetupError::NoSystemCertificate);
            }
        }
    }
    Ok(store)
}

/// How the server's certificate is checked. Signatures in the handshake are always checked,
/// so the handshake itself is sound whatever `sslmode` says.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    /// `None`: libpq's `prefer` and `require`, the server not authenticated.
    chain: Option<Arc<dyn ServerCertVerifier>>,
    /// libpq's `verify-ca`: the chain must lead to a trusted CA, the name in it is not checked.
    any_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.any_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
