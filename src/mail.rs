//! Outgoing mail: verification, password-reset and email-change messages, sent over SMTP with
//! lettre (plain, STARTTLS or TLS, from `BURNCLOUD_SMTP_*`). Every message is text + HTML from
//! the askama templates `templates/email/action.{txt,html}`: a paragraph, labelled values (a
//! receipt's), one link, a footnote.
//! Links are built from the public URL (the `site.public_url` setting, else
//! `BURNCLOUD_PUBLIC_URL`), never from a request's Host header. The mailer is rebuilt when the
//! operator changes the SMTP settings (`AppState::refresh_mailer`). Sending runs
//! in the background, so a slow or failing server never shows in response times (which must not
//! tell known addresses from unknown ones); failures are logged.

use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpSecurity};
use crate::i18n::Lang;

/// The SMTP transport, when one is configured.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("configured", &self.is_configured()).finish()
    }
}

/// One message: what it says, in the reader's language, around one link.
pub struct ActionMail {
    pub lang: Lang,
    pub site_name: String,
    pub subject: &'static str,
    pub intro: &'static str,
    pub action: &'static str,
    pub link: String,
    pub footnote: &'static str,
    /// Labelled values shown under the intro (a receipt's amounts); usually empty.
    pub details: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "email/action.txt")]
struct TextBody<'a> {
    mail: &'a ActionMail,
}

#[derive(Template)]
#[template(path = "email/action.html")]
struct HtmlBody<'a> {
    mail: &'a ActionMail,
}

impl ActionMail {
    fn t<'a>(&self, text: &'a str) -> &'a str {
        self.lang.t(text)
    }
}

impl Mailer {
    /// A mailer that sends nothing (no SMTP configured).
    pub fn disabled() -> Self {
        Self { transport: None }
    }

    pub fn from_config(config: Option<&SmtpConfig>) -> Result<Self, String> {
        let Some(config) = config else { return Ok(Self::disabled()) };
        let builder = match config.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("BURNCLOUD_SMTP_HOST: {e}"))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| format!("BURNCLOUD_SMTP_HOST: {e}"))?,
        };
        let mut builder = builder.port(config.port).timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        let from = config.from.parse::<Mailbox>().map_err(|e| format!("BURNCLOUD_SMTP_FROM: {e}"))?;
        Ok(Self { transport: Some((builder.build(), from)) })
    }

    pub fn is_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Sends `mail` to `to` now; without SMTP, does nothing.
    pub async fn send(&self, to: &str, mail: &ActionMail) -> Result<(), String> {
        let Some((transport, from)) = &self.transport else { return Ok(()) };
        let to = to.parse::<Mailbox>().map_err(|e| format!("recipient: {e}"))?;
        let text = TextBody { mail }.render().map_err(|e| e.to_string())?;
        let html = HtmlBody { mail }.render().map_err(|e| e.to_string())?;
        let subject = format!("{} · {}", mail.t(mail.subject), mail.site_name);
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| e.to_string())?;
        transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
