//! A real SMTP listener on the loopback address: it accepts every mail and hands each one's
//! text over a channel, so tests read what Tollgate sent.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub struct Mailbox {
    pub url: String,
    received: mpsc::UnboundedReceiver<Mail>,
}

#[derive(Debug, Clone)]
pub struct Mail {
    /// The addresses of `RCPT TO`.
    pub recipients: Vec<String>,
    /// The message as sent (headers and body), with quoted-printable undone.
    pub text: String,
}

impl Mail {
    /// The reset token in the mail's link.
    pub fn reset_token(&self) -> String {
        let start = self
            .text
            .find("/reset-password?token=")
            .unwrap_or_else(|| panic!("no reset link in {}", self.text))
            + "/reset-password?token=".len();
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .collect()
    }
}

impl Mailbox {
    pub async fn start() -> Mailbox {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("smtp://{}", listener.local_addr().expect("address"));
        let (deliver, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let deliver = deliver.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 localhost test SMTP\r\n").await;
                    let mut recipients = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let command = line.to_ascii_uppercase();
                        let reply: &[u8] =
                            if command.starts_with("EHLO") || command.starts_with("HELO") {
                                b"250 localhost\r\n"
                            } else if command.starts_with("RCPT TO:") {
                                recipients.push(address(&line["RCPT TO:".len()..]));
                                b"250 OK\r\n"
                            } else if command.starts_with("DATA") {
                                let _ = write.write_all(b"354 go ahead\r\n").await;
                                let mut text = String::new();
                                while let Ok(Some(line)) = lines.next_line().await {
                                    if line == "." {
                                        break;
                                    }
                                    text.push_str(line.strip_prefix('.').unwrap_or(&line));
                                    text.push_str("\r\n");
                                }
                                let mail = Mail {
                                    recipients: std::mem::take(&mut recipients),
                                    text: unquote(&text),
                                };
                                let _ = deliver.send(mail);
                                b"250 accepted\r\n"
                            } else if command.starts_with("QUIT") {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            } else {
                                // MAIL FROM, RSET, NOOP.
                                b"250 OK\r\n"
                            };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Mailbox { url, received }
    }

    /// The next mail, within 10 s.
    pub async fn next(&mut self) -> Mail {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("a mail within 10 s")
            .expect("mailbox open")
    }

    /// True if no mail comes within `wait`.
    pub async fn stays_empty(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .is_err()
    }
}

fn address(text: &str) -> String {
    text.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes (harmless on other text of ours).
fn unquote(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
