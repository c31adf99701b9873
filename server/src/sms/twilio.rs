//! Twilio's Messages API over reqwest, and verification of Twilio's signed webhooks.

use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;

use super::{Sent, SmsConfig, SmsError};

/// A Twilio client for one account; cheap to clone.
#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("base", &self.base)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    status: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Deserialize)]
struct MessageList {
    messages: Vec<MessageResource>,
}

#[derive(Deserialize)]
struct ErrorResource {
    code: Option<i64>,
}

/// Twilio error codes that will not change on retry.
fn opted_out(code: i64) -> bool {
    code == 21610
}

/// Error codes worth retrying: queue full, and bad credentials (an operator fixes those, and an
/// SOS text must still go out once they do).
fn retryable(code: i64) -> bool {
    matches!(code, 20429 | 21611 | 20003)
}

impl Twilio {
    /// Builds the client; needs an account SID, auth token and a sender.
    pub fn new(cfg: &SmsConfig, timeout: Duration) -> anyhow::Result<Self> {
        let account_sid = cfg
            .twilio_account_sid
            .clone()
            .context("TWILIO_ACCOUNT_SID is required for the twilio provider")?;
        let auth_token =
            cfg.twilio_auth_token.clone().context("TWILIO_AUTH_TOKEN is required for the twilio provider")?;
        anyhow::ensure!(
            cfg.twilio_from.is_some() || cfg.twilio_messaging_service_sid.is_some(),
            "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is required for the twilio provider"
        );
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Self {
            http,
            base: cfg.twilio_api_base.trim_end_matches('/').to_owned(),
            account_sid,
            auth_token,
            from: cfg.twilio_from.clone(),
            messaging_service_sid: cfg.twilio_messaging_service_sid.clone(),
        })
    }

    fn messages_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base, self.account_sid)
    }

    /// `POST …/Messages.json`.
    pub async fn send(&self, to: &str, body: &str, status_callback: &str) -> Result<Sent, SmsError> {
        let mut form: Vec<(&str, &str)> =
            vec![("To", to), ("Body", body), ("StatusCallback", status_callback)];
        match (&self.messaging_service_sid, &self.from) {
            (Some(mg), _) => form.push(("MessagingServiceSid", mg)),
            (None, Some(from)) => form.push(("From", from)),
            (None, None) => unreachable!("checked in new()"),
        }
        let res = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            // Refused before anything was sent: nothing can have been accepted.
            Err(e) if e.is_connect() => return Err(SmsError::Retryable("connection failed".into())),
            Err(e) if e.is_timeout() => return Err(SmsError::InDoubt("timed out".into())),
            Err(_) => return Err(SmsError::InDoubt("request failed mid-way".into())),
        };
        let status = res.status();
        if status.as_u16() == 201 || status.as_u16() == 200 {
            let m: MessageResource =
                res.json().await.map_err(|_| SmsError::InDoubt("unreadable 201 body".into()))?;
            return Ok(Sent { sid: m.sid, status: m.status });
        }
        if status.as_u16() == 429 {
            return Err(SmsError::Retryable("429".into()));
        }
        if status.is_server_error() {
            return Err(SmsError::InDoubt(status.as_u16().to_string()));
        }
        let code = res.json::<ErrorResource>().await.ok().and_then(|e| e.code).unwrap_or(0);
        if retryable(code) {
            tracing::error!(code, "Twilio refused the request; check the account settings. Retrying.");
            return Err(SmsError::Retryable(code.to_string()));
        }
        Err(SmsError::Rejected { code: code.to_string(), opted_out: opted_out(code) })
    }

    /// The provider's current status of a message (for texts whose callbacks never came).
    pub async fn status(&self, sid: &str) -> Result<String, SmsError> {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages/{sid}.json", self.base, self.account_sid);
        let res = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .send()
            .await
            .map_err(|_| SmsError::Retryable("status request failed".into()))?;
        if !res.status().is_success() {
            return Err(SmsError::Retryable(format!("status request got {}", res.status().as_u16())));
        }
        let m: MessageResource =
            res.json().await.map_err(|_| SmsError::Retryable("unreadable message".into()))?;
        Ok(m.status)
    }

    /// Lists recent messages to `to` and returns the one with exactly this body, if any.
    pub async fn find(&self, to: &str, body: &str) -> Result<Option<Sent>, SmsError> {
        let res = self
            .http
            .get(self.messages_url())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .query(&[("To", to), ("PageSize", "100")])
            .send()
            .await
            .map_err(|_| SmsError::Retryable("reconcile request failed".into()))?;
        if !res.status().is_success() {
            return Err(SmsError::Retryable(format!("reconcile got {}", res.status().as_u16())));
        }
        let list: MessageList =
            res.json().await.map_err(|_| SmsError::Retryable("unreadable message list".into()))?;
        Ok(list
            .messages
            .into_iter()
            .find(|m| m.body.as_deref() == Some(body) && m.to.as_deref().is_none_or(|t| t == to))
            .map(|m| Sent { sid: m.sid, status: m.status }))
    }

    /// Checks `X-Twilio-Signature` of a webhook to `url` with form `params`.
    pub fn verify(&self, url: &str, params: &[(String, String)], signature: &str) -> bool {
        verify_signature(&self.auth_token, url, params, signature)
    }
}

/// Twilio's request signature MAC: HMAC-SHA1(auth token, URL + each POST parameter sorted by
/// name, as name+value).
fn signature_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// The `X-Twilio-Signature` value for a webhook (what Twilio, and our fake, send).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(signature_mac(auth_token, url, params).finalize().into_bytes())
}

/// Verifies a signature in constant time.
pub fn verify_signature(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    signature_mac(auth_token, url, params).verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_signature("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!verify_signature("12345", url, &params, "1/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!verify_signature("12346", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!verify_signature("12345", url, &params, "not base64!"));
    }
}
