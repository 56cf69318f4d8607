//! JSON webhook client. Each delivery is one `POST {url}` with a JSON body (schema in
//! `docs/cases.md`), the headers `Idempotency-Key`, `X-Gridwatch-Event` and
//! `X-Gridwatch-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>`.
//! Any 2xx is delivery; an `id` field in the answer is kept as the receiver's id.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::config::DeliveryConfig;
use super::exchange::{exchange, http_client, Outgoing, Sent};
use super::Event;

/// The client.
pub struct WebhookClient {
    http: reqwest::Client,
    cfg: DeliveryConfig,
    secret: String,
}

/// `sha256=<hex>` of the body under the secret.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!(
        "sha256={}",
        crate::secret::hex(&mac.finalize().into_bytes())
    )
}

/// Checks a signature header against a body in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

impl WebhookClient {
    /// A client for the config's webhook.
    pub fn new(cfg: &DeliveryConfig) -> Result<Self, String> {
        let secret = cfg
            .secret()
            .ok_or("a webhook needs a signing secret (secret_env or secret)")?;
        let http = http_client(cfg)?;
        Ok(Self {
            http,
            cfg: cfg.clone(),
            secret,
        })
    }

    /// Its delivery config.
    pub fn config(&self) -> &DeliveryConfig {
        &self.cfg
    }

    /// The JSON body of a delivery.
    pub fn body(&self, out: &Outgoing) -> Vec<u8> {
        let c = &out.case;
        let event = match out.delivery.event {
            Event::Create => "case.opened",
            _ => "case.updated",
        };
        let public = self
            .cfg
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/'));
        let doc = json!({
            "event": event,
            "idempotency_key": out.delivery.idempotency_key,
            "sent_at_ms": super::now_ms(),
            "case": {
                "id": c.id,
                "kind": c.kind,
                "service_code": self.cfg.service_code(c.kind.as_str()),
                "cell": c.cell,
                "admin_path": c.admin_path,
                "status": c.status,
                "lat": c.lat,
                "lon": c.lon,
                "first_seen_ms": c.first_seen_ms,
                "last_seen_ms": c.last_seen_ms,
                "count": c.count,
                "cameras": c.cameras,
                "description": out.description(4000),
            },
            "evidence": out.evidence.iter().map(|e| {
                let mut item = json!({
                    "url": public.map(|p| format!("{p}/{}", e.file)),
                    "sha256": e.sha256,
                    "camera": e.camera,
                    "at_ms": e.at_ms,
                    "role": e.role,
                    "content_type": e.content_type(),
                });
                if let Some(b) = out.attached(e.id) {
                    item["data"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
                }
                item
            }).collect::<Vec<_>>(),
            "reviews": out.reviews,
        });
        serde_json::to_vec(&doc).expect("JSON")
    }

    /// One attempt.
    pub async fn send(&self, out: &Outgoing) -> Sent {
        match out.delivery.event {
            Event::Resolve => return Sent::Skipped("webhooks answer with no token".into()),
            Event::Update if !self.cfg.updates => {
                return Sent::Skipped("the receiver takes no follow-ups (updates = false)".into())
            }
            _ => {}
        }
        let body = self.body(out);
        let req = self
            .http
            .post(&self.cfg.url)
            .header("Idempotency-Key", &out.delivery.idempotency_key)
            .header(
                "X-Gridwatch-Event",
                if out.delivery.event == Event::Create {
                    "case.opened"
                } else {
                    "case.updated"
                },
            )
            .header(
                "X-Gridwatch-Signature",
                signature(self.secret.as_bytes(), &body),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let reply = match exchange(req).await {
            Ok(r) => r,
            Err(sent) => return sent,
        };
        let (status, bytes) = (reply.status, &reply.body);
        if !status.is_success() {
            return reply.refusal(super::exchange::truncate_chars(
                String::from_utf8_lossy(bytes).trim(),
                300,
            ));
        }
        let remote_id = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| match v.get("id") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
        Sent::Ok {
            remote_id,
            token: None,
            detail: format!("HTTP {}", status.as_u16()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(
            b"Jefe",
            b"what do ya want for nothing?",
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for nothing!",
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
    }
}
