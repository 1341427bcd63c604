//! HTTPS through rustls. The certificate chain and key come from PEM files; they are read at
//! start (a file that cannot be used stops the start) and read again whenever they change, so a
//! renewed certificate is served without a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::aws_lc_rs::digest;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigError;

/// How often the files are compared with what was last read. Two small reads a second cost
/// nothing, and polling also sees a renewal done by swapping a symbolic link.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Where the certificate chain and its private key are (`TOLLGATE_TLS_CERT`, `TOLLGATE_TLS_KEY`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate file's contents and the key file's.
type PemFiles = (Vec<u8>, Vec<u8>);

/// The certificate served, and where it came from.
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    served: RwLock<Arc<CertifiedKey>>,
    /// A digest of what the files held when the served certificate was read.
    loaded: digest::Digest,
}

/// Paths only: what is served includes the private key.
impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What the files hold, without keeping the key's bytes around: a digest of both, or the
/// error reading them.
fn fingerprint(contents: &Result<PemFiles, String>) -> Result<digest::Digest, String> {
    let (cert, key) = contents.as_ref().map_err(String::clone)?;
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&(cert.len() as u64).to_be_bytes());
    context.update(cert);
    context.update(key);
    Ok(context.finish())
}

fn same(a: &Result<digest::Digest, String>, b: &Result<digest::Digest, String>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a.as_ref() == b.as_ref(),
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

impl Certificates {
    /// Reads and checks both files; the error names the setting at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<Certificates>, ConfigError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let contents = read_both(&files)?;
        let key = certified_key(&files, &contents, &provider)?;
        let loaded = fingerprint(&Ok(contents)).expect("the files were read");
        Ok(Arc::new(Certificates {
            files,
            provider,
            served: RwLock::new(Arc::new(key)),
            loaded,
        }))
    }

    /// A TLS acceptor offering HTTP/2 and HTTP/1.1, always with the current certificate.
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }

    /// Looks at the files every second for as long as it runs. A change that is usable is
    /// served to new connections; one that is not keeps the certificate served and is
    /// reported once (a renewal may write the certificate before the key).
    pub async fn watch(self: Arc<Self>) {
        let mut interval = tokio::time::interval(RELOAD_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_seen = Ok(self.loaded);
        loop {
            interval.tick().await;
            let files = self.files.clone();
            let Ok(contents) = tokio::task::spawn_blocking(move || read_both(&files)).await else {
                continue;
            };
            let contents = contents.map_err(|error| error.to_string());
            let seen = fingerprint(&contents);
            if same(&seen, &last_seen) {
                continue;
            }
            last_seen = seen;
            self.consider(contents);
        }
    }

    fn consider(&self, contents: Result<PemFiles, String>) {
        let renewed = contents.and_then(|contents| {
            certified_key(&self.files, &contents, &self.provider).map_err(|error| error.to_string())
        });
        match renewed {
            Ok(key) => {
                *self.served.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => tracing::warn!(
                %error,
                "the TLS files changed but cannot be used; the previous certificate is still served"
            ),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.served
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read_both(files: &TlsFiles) -> Result<PemFiles, ConfigError> {
    let read = |path: &Path, setting: Setting| {
        std::fs::read(path).map_err(|error| setting.error(path, error.to_string()))
    };
    Ok((
        read(&files.cert, Setting::Cert)?,
        read(&files.key, Setting::Key)?,
    ))
}

/// The chain (leaf first) and the key, checked to belong together.
fn certified_key(
    files: &TlsFiles,
    (cert_pem, key_pem): &PemFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ConfigError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Setting::Cert.error(&files.cert, pem_problem(error, "certificate")))?;
    if chain.is_empty() {
        return Err(Setting::Cert.error(&files.cert, "no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|error| Setting::Key.error(&files.key, pem_problem(error, "private key")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => Setting::Key.error(
            &files.key,
            format!(
                "the key does not belong to the first certificate in {} (the leaf must come first)",
                files.cert.display()
            ),
        ),
        rustls::Error::InvalidCertificate(problem) => {
            Setting::Cert.error(&files.cert, format!("unusable certificate: {problem:?}"))
        }
        other => Setting::Key.error(&files.key, format!("unusable private key: {other}")),
    })
}

fn pem_problem(error: pem::Error, what: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("no PEM {what} in the file"),
        other => format!("not a valid PEM {what}: {other}"),
    }
}

#[derive(Clone, Copy)]
enum Setting {
    Cert,
    Key,
}

impl Setting {
    fn error(self, path: &Path, message: impl std::fmt::Display) -> ConfigError {
        let (variable, flag) = match self {
            Setting::Cert => ("TOLLGATE_TLS_CERT", "tls-cert"),
            Setting::Key => ("TOLLGATE_TLS_KEY", "tls-key"),
        };
        ConfigError::new(variable, flag, format!("{}: {message}", path.display()))
    }
}
