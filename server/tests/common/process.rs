//! `tollgate` as a separate process, the way users run it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The binary under test, with a clean environment.
pub fn tollgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// `tollgate ARGS` on `database` (such as `keys rotate` or `migrate`); panics unless it succeeds.
pub fn run_ok(args: &[&str], database: &str) {
    let output = tollgate()
        .args(args)
        .env("TOLLGATE_DATABASE_URL", database)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process on a random port; killed when dropped. Its log goes to a file.
pub struct Server {
    pub child: std::process::Child,
    pub address: String,
    pub client: reqwest::Client,
    pub log: PathBuf,
    port: u16,
}

impl Server {
    pub fn start(database: &str, command: &str) -> Server {
        Server::start_with(database, command, &[])
    }

    /// Starts `tollgate COMMAND` on `database` with extra flags and waits until it listens.
    pub fn start_with(database: &str, command: &str, extra: &[&str]) -> Server {
        let mut server = Server::spawn(database, command, extra);
        server.wait_ready();
        server
    }

    /// Starts `tollgate COMMAND` without waiting for it to listen.
    pub fn spawn(database: &str, command: &str, extra: &[&str]) -> Server {
        Server::spawn_on(free_port(), database, command, extra)
    }

    /// Starts `tollgate COMMAND` on `port` without waiting for it to listen.
    pub fn spawn_on(port: u16, database: &str, command: &str, extra: &[&str]) -> Server {
        let log = std::env::temp_dir().join(format!("tollgate-test-{}.log", uuid::Uuid::new_v4()));
        // Rate limits off unless the test sets its own.
        let login_rate = if extra.contains(&"--login-rate") {
            &[][..]
        } else {
            &["--login-rate", "off"][..]
        };
        let child = tollgate()
            .args([command, "--addr", &format!("127.0.0.1:{port}")])
            .args(login_rate)
            .args(extra)
            .env("TOLLGATE_DATABASE_URL", database)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server {
            child,
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            log,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn wait_ready(&mut self) {
        let (port, server) = (self.port, self);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("tollgate exited with {status}: {}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        let body = json!({ "username": username, "password": password });
        let url = format!("{}/api/login", self.address);
        self.client.post(url).json(&body).send().await.unwrap()
    }

    /// Signs in with a demo user's password; panics unless it is 200.
    pub async fn login_ok(&self, username: &str) -> Value {
        let response = self.login(username, "password").await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        let body = json!({ "refreshToken": refresh_token });
        let url = format!("{}/api/refresh-token", self.address);
        self.client.post(url).json(&body).send().await.unwrap()
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, access_token: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.address);
        self.client
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    pub async fn jwks(&self) -> Value {
        let url = format!("{}/.well-known/jwks.json", self.address);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
