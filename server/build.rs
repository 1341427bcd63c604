//! With the `embed-web` feature, the built web client goes into the binary.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "embed-web")]
    embed_web();
}

#[cfg(feature = "embed-web")]
fn embed_web() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist/tollgate-web/browser");
    if !dir.join("index.html").is_file() {
        panic!(
            "the embed-web feature embeds the web client, but {} holds none: run `make web` first",
            dir.display()
        );
    }
    // One line per file otherwise.
    std::env::set_var("MEMORY_SERVE_QUIET", "1");
    memory_serve::load_names_directories([("web", dir)], true);
}
