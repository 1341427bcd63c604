//! The web client: the one built into the binary (feature `embed-web`), a directory
//! (`TOLLGATE_WEB_DIR`, for client development), or, with neither, a page saying where the API
//! is. Client routes (`/profile`) get `index.html`; a missing file gets 404, never the page.
//! Either way fingerprinted files are cached for a year and the rest is revalidated.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::ApiError;
use crate::config::ConfigError;

/// Angular's build names every script, style and font after its content: a new build gets new
/// names, so these can be kept for a year. Everything else is revalidated (with its `ETag`, or
/// `Last-Modified` from a directory), `index.html` above all: it names the current scripts.
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

const PLACEHOLDER_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Tollgate</title>\
<h1>Tollgate</h1><p>The API is at <code>/api</code>; its description at \
<a href=/api/openapi.json>/api/openapi.json</a>. This binary was built without the web client \
(<code>make release</code> builds one with it), and <code>TOLLGATE_WEB_DIR</code> is not set.</p>";

#[derive(Clone)]
pub enum WebClient {
    #[cfg(feature = "embed-web")]
    Embedded(embedded::Assets),
    Directory {
        files: ServeDir,
        index: ServeFile,
    },
    Missing,
}

impl WebClient {
    /// The directory when one is given (it must hold `index.html`), else the embedded client.
    pub fn new(dir: Option<&Path>) -> Result<WebClient, ConfigError> {
        let Some(dir) = dir else {
            #[cfg(feature = "embed-web")]
            return Ok(WebClient::Embedded(embedded::Assets::get()));
            #[cfg(not(feature = "embed-web"))]
            return Ok(WebClient::Missing);
        };
        let index = dir.join("index.html");
        if !index.is_file() {
            return Err(ConfigError::new(
                "TOLLGATE_WEB_DIR",
                "web-dir",
                format!("{}: no index.html in the directory", dir.display()),
            ));
        }
        Ok(WebClient::Directory {
            files: ServeDir::new(dir),
            index: ServeFile::new(index),
        })
    }

    /// Answers a GET or HEAD outside `/api`.
    pub async fn serve(&self, request: Request) -> Response {
        let path = request.uri().path().to_owned();
        let response = match self {
            #[cfg(feature = "embed-web")]
            WebClient::Embedded(assets) => assets.serve(request).await,
            WebClient::Directory { files, index } => {
                let response = if is_file_like(&path) {
                    files.clone().oneshot(request).await
                } else {
                    index.clone().oneshot(request).await
                };
                match response {
                    Ok(response) => response.into_response(),
                    Err(never) => match never {},
                }
            }
            WebClient::Missing if is_file_like(&path) => StatusCode::NOT_FOUND.into_response(),
            WebClient::Missing => Html(PLACEHOLDER_PAGE).into_response(),
        };
        if response.status() == StatusCode::NOT_FOUND {
            return ApiError::NotFound.into_response();
        }
        with_cache_control(response, &path)
    }
}

/// A year for a fingerprinted file; revalidation for the rest, `index.html` above all, and for
/// anything but the file itself (an error must not be kept for a year).
fn with_cache_control(mut response: Response, path: &str) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    let is_the_file = matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED);
    let cache = if is_fingerprinted(path) && is_the_file && !is_html {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    response.headers_mut().insert(header::CACHE_CONTROL, cache);
    response
}

/// `/main-4KQ7XZ2B.js` and `/favicon.ico` name files; `/profile` is one of the client's routes.
fn is_file_like(path: &str) -> bool {
    last_segment(path).contains('.')
}

fn last_segment(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, last)| last)
}

/// `main-4KQ7XZ2B.js`, `styles-5INURTSO.css`, `media/font-3GXL7TQA.woff2`: a name, a dash, the
/// eight-character content hash of Angular's builder, an extension.
fn is_fingerprinted(path: &str) -> bool {
    let Some((stem, extension)) = last_segment(path).rsplit_once('.') else {
        return false;
    };
    let Some((name, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    !name.is_empty()
        && !extension.is_empty()
        && hash.len() == 8
        && hash
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
}

#[cfg(feature = "embed-web")]
mod embedded {
    use std::collections::HashSet;
    use std::sync::{Arc, OnceLock};

    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::Router;
    use memory_serve::CacheControl;
    use tower::ServiceExt;

    /// The client's files, in memory: brotli-compressed at build time, gzip at start, both sent
    /// as they are to a client that accepts them, with an `ETag` each.
    #[derive(Clone)]
    pub struct Assets {
        router: Router,
        routes: Arc<HashSet<&'static str>>,
    }

    impl Assets {
        /// Built once: memory-serve keeps the decompressed files for the life of the process.
        pub fn get() -> Assets {
            static ASSETS: OnceLock<Assets> = OnceLock::new();
            ASSETS
                .get_or_init(|| {
                    let files = memory_serve::load!("web");
                    let routes = files.manifest().iter().map(|(route, _)| route).collect();
                    let router = files
                        .index_file(Some("/index.html"))
                        .fallback(Some("/index.html"))
                        .fallback_status(StatusCode::OK)
                        .enable_brotli(true)
                        .enable_gzip(true)
                        // Set per file by the caller.
                        .html_cache_control(CacheControl::NoCache)
                        .cache_control(CacheControl::NoCache)
                        .into_router();
                    Assets {
                        router,
                        routes: Arc::new(routes),
                    }
                })
                .clone()
        }

        /// A file, or `index.html` for a client route; 404 for a missing file.
        pub async fn serve(&self, request: Request) -> Response {
            let path = request.uri().path();
            if super::is_file_like(path) && !self.routes.contains(path) {
                return StatusCode::NOT_FOUND.into_response();
            }
            match self.router.clone().oneshot(request).await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_fingerprinted;

    #[test]
    fn only_names_with_a_build_hash_count_as_fingerprinted() {
        for path in [
            "/main-4KQ7XZ2B.js",
            "/chunk-ABCDEFGH.js",
            "/styles-5INURTSO.css",
            "/media/font-3GXL7TQA.woff2",
        ] {
            assert!(is_fingerprinted(path), "{path}");
        }
        for path in [
            "/",
            "/index.html",
            "/favicon.ico",
            "/profile",
            "/main.js",
            "/main-4kq7xz2b.js",
            "/main-4KQ7XZ2.js",
            "/-4KQ7XZ2B.js",
            "/main-4KQ7XZ2B",
            "/media-4KQ7XZ2B/favicon.ico",
        ] {
            assert!(!is_fingerprinted(path), "{path}");
        }
    }
}
