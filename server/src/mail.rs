//! Outgoing mail over SMTP (`TOLLGATE_SMTP_URL`), through `lettre`.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP URL cannot be used")]
    Url(#[source] lettre::transport::smtp::Error),
    #[error("the sender address is not valid")]
    Sender(#[source] lettre::address::AddressError),
    #[error("the message cannot be built")]
    Message(#[source] lettre::error::Error),
    #[error("the mail server refused or cannot be reached")]
    Send(#[source] lettre::transport::smtp::Error),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where the web client is reached, without a trailing slash: links in mails start here.
    public_url: String,
}

impl Mailer {
    /// `smtp_url`: `smtp://user:pass@host:port` (add `?tls=required` for STARTTLS) or
    /// `smtps://…` (TLS from the first byte).
    pub fn new(smtp_url: &str, from: &str, public_url: &str) -> Result<Mailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(MailError::Url)?
            .build();
        Ok(Mailer {
            transport,
            from: from.parse().map_err(MailError::Sender)?,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Mails `username` at `to` a link that sets a new password with `token`.
    pub async fn send_password_reset(
        &self,
        to: &str,
        username: &str,
        token: &str,
    ) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(MailError::Sender)?;
        let link = format!("{}/reset-password?token={token}", self.public_url);
        let body = format!(
            "Hello {username},\r\n\r\n\
             Someone asked to reset the password of your account \"{username}\".\r\n\
             To choose a new password, open this link within one hour:\r\n\r\n\
             {link}\r\n\r\n\
             The link works once. Setting a new password signs you out on every device.\r\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\r\n"
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Reset your password")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(MailError::Message)?;
        self.transport
            .send(message)
            .await
            .map_err(MailError::Send)?;
        Ok(())
    }
}
