//! HTTPS without a proxy: rustls with a certificate made here, HTTP/2 and HTTP/1.1 by ALPN, and
//! a certificate renewed on disk while the server runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::process::tollgate;
use crate::common::spawn_app_with;

/// A certificate authority the test client trusts, and leaf certificates it signs.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Authority {
    fn new() -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("tollgate-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Authority { issuer, dir }
    }

    /// A certificate for `localhost` and 127.0.0.1, with its own new key.
    fn leaf(&self) -> Leaf {
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn client(&self, alpn: &[u8]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replaces a file the way renewal tools do: written beside it, then renamed over it.
fn replace(path: &Path, contents: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(temporary, path).unwrap();
}

struct Answer {
    version: Version,
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: String,
    /// The leaf certificate the server presented.
    certificate: CertificateDer<'static>,
}

/// One request on a new TLS connection that offers only `alpn`.
async fn request(
    authority: &Authority,
    addr: SocketAddr,
    alpn: &[u8],
    request: Request<Full<Bytes>>,
) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = authority
        .client(alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let certificate = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(negotiated.as_deref(), Some(alpn), "ALPN");
    let io = TokioIo::new(tls);
    let response = if alpn == b"h2" {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let (version, status) = (response.version(), response.status());
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        version,
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        certificate,
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(Full::default())
        .unwrap()
}

fn address(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

#[tokio::test]
async fn https_speaks_http2_and_http1_and_serves_a_renewed_certificate_without_a_restart() {
    let authority = Authority::new();
    let first = authority.leaf();
    replace(&authority.cert_file(), &first.cert_pem);
    replace(&authority.key_file(), &first.key_pem);
    let app = spawn_app_with(&[
        "--tls-cert",
        authority.cert_file().to_str().unwrap(),
        "--tls-key",
        authority.key_file().to_str().unwrap(),
    ])
    .await;
    assert!(app.address.starts_with("https://"), "{}", app.address);
    let addr = address(&app.address);

    let h2 = request(&authority, addr, b"h2", get("/healthz")).await;
    assert_eq!((h2.version, h2.status), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(h2.certificate, first.der);
    assert_eq!(h2.headers["strict-transport-security"], "max-age=63072000");
    // A sign-in (a body, a cookie) over each protocol.
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let login = Request::post("https://localhost/api/login")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"username":"user1","password":"password"}"#,
            )))
            .unwrap();
        let answer = request(&authority, addr, alpn, login).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(answer.body.contains("accessToken"), "{}", answer.body);
    }
    let h1 = request(&authority, addr, b"http/1.1", get("/healthz")).await;
    assert_eq!((h1.version, h1.status), (Version::HTTP_11, StatusCode::OK));

    // Renewal writes the certificate, then the key: in between they do not belong together,
    // and the previous pair goes on being served.
    let second = authority.leaf();
    replace(&authority.cert_file(), &second.cert_pem);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let between = request(&authority, addr, b"h2", get("/healthz")).await;
    assert_eq!(between.certificate, first.der, "a half-written renewal");
    replace(&authority.key_file(), &second.key_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = request(&authority, addr, b"h2", get("/healthz")).await;
        assert_eq!(answer.status, StatusCode::OK);
        if answer.certificate == second.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Written in place rather than renamed, and not a certificate at all: changes nothing.
    std::fs::write(authority.cert_file(), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = request(&authority, addr, b"http/1.1", get("/healthz")).await;
    assert_eq!(
        (after.status, after.certificate),
        (StatusCode::OK, second.der.clone())
    );

    // Renewal by a symbolic link moved to a new pair (certbot's `live/`, Kubernetes secrets).
    let third = authority.leaf();
    let pair = authority.dir.join("third");
    std::fs::create_dir(&pair).unwrap();
    std::fs::write(pair.join("cert.pem"), &third.cert_pem).unwrap();
    std::fs::write(pair.join("key.pem"), &third.key_pem).unwrap();
    for name in ["cert.pem", "key.pem"] {
        let link = authority.dir.join(format!("{name}.link"));
        std::os::unix::fs::symlink(pair.join(name), &link).unwrap();
        std::fs::rename(&link, authority.dir.join(name)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while request(&authority, addr, b"h2", get("/healthz"))
        .await
        .certificate
        != third.der
    {
        assert!(
            Instant::now() < deadline,
            "the linked certificate is never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_client_that_sends_nothing_after_the_handshake_is_closed() {
    let authority = Authority::new();
    let leaf = authority.leaf();
    replace(&authority.cert_file(), &leaf.cert_pem);
    replace(&authority.key_file(), &leaf.key_pem);
    let app = spawn_app_with(&[
        "--tls-cert",
        authority.cert_file().to_str().unwrap(),
        "--tls-key",
        authority.key_file().to_str().unwrap(),
        "--request-timeout",
        "2s",
    ])
    .await;
    let addr = address(&app.address);
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = authority
            .client(alpn)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        let mut buffer = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            // The server may say something first (HTTP/2 settings); then it must hang up.
            loop {
                match tls.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "{} connection left open",
            String::from_utf8_lossy(alpn)
        );
    }
}

#[test]
fn an_unusable_tls_file_stops_the_start_with_one_line_naming_its_setting() {
    let authority = Authority::new();
    let leaf = authority.leaf();
    let other = authority.leaf();
    let file = |name: &str, contents: &str| {
        let path = authority.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cert = file("cert.pem", &leaf.cert_pem);
    let key = file("key.pem", &leaf.key_pem);
    let other_key = file("other-key.pem", &other.key_pem);
    let garbage = file("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let empty = file("empty.pem", "");
    let missing = authority.dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    for (cert, key, setting) in [
        (missing, key.as_str(), "TOLLGATE_TLS_CERT"),
        (&garbage, &key, "TOLLGATE_TLS_CERT"),
        (&empty, &key, "TOLLGATE_TLS_CERT"),
        // A key file holding a certificate, and another certificate's key.
        (&cert, &cert, "TOLLGATE_TLS_KEY"),
        (&cert, &other_key, "TOLLGATE_TLS_KEY"),
        (&cert, missing, "TOLLGATE_TLS_KEY"),
    ] {
        let output = tollgate()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("TOLLGATE_DATABASE_URL", "sqlite::memory:")
            .env("TOLLGATE_TLS_CERT", cert)
            .env("TOLLGATE_TLS_KEY", key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{cert} {key}: {stderr}");
        let lines: Vec<_> = stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(setting), "{setting}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    // One without the other is refused too.
    let output = tollgate()
        .args(["serve", "--tls-cert", &cert])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("tls-key"));
}
