//! Open311 GeoReport v2 client.
//!
//! - create: `POST {url}/requests.json`, form-encoded: `service_code`, `lat`, `long`,
//!   `address_string`, `description` (≤ 4000 characters), `media_url`,
//!   `attribute[...]`, plus `api_key` / `jurisdiction_id` when configured; with
//!   `media = "attach"` the same fields as `multipart/form-data`, the violation photo
//!   as the file part `media` (GeoReport v2 names only `media_url`; receivers that
//!   take uploads take this). The receiver
//!   answers `[{"service_request_id": ...}]` or `[{"token": ...}]`; a token is resolved
//!   later with `GET {url}/tokens/{token}.json`.
//! - follow-ups: `POST {url}/requests/{service_request_id}/updates.json` with the same
//!   fields (an extension GeoReport v2 lacks; the built-in inbox serves it). With
//!   `updates = false` follow-ups are recorded as skipped.
//! - errors: the receiver's `[{"code": ..., "description": ...}]` list is kept as the
//!   failure reason.
//!
//! Every request carries the delivery's idempotency key as the `Idempotency-Key` header
//! and as `attribute[gridwatch_idempotency_key]`. When a create is answered with a
//! `service_request_id`, that request is read back (`GET {url}/requests/{id}.json`):
//! if what it shows is not this case's — another `gridwatch_case_id` or idempotency key,
//! or other coordinates — the receiver answered gridwatch's request with someone else's
//! (a request filed first under the same key), and the delivery fails for good with
//! that reason instead of being counted as delivered. What the receiver does not show,
//! or a read it does not answer, is taken at its word.

use serde::Deserialize;

use super::config::DeliveryConfig;
use super::exchange::{case_attributes, exchange, http_client, Outgoing, Sent};
use super::Event;

/// Longest description GeoReport v2 allows.
pub const MAX_DESCRIPTION: usize = 4000;

/// The client.
pub struct Open311Client {
    http: reqwest::Client,
    base: String,
    cfg: DeliveryConfig,
}

/// One entry of a POST answer or a token lookup.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default, deserialize_with = "id_string")]
    service_request_id: Option<String>,
    #[serde(default, deserialize_with = "id_string")]
    token: Option<String>,
    #[serde(default)]
    service_notice: Option<String>,
}

/// Ids come as strings or numbers depending on the server.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// An Open311 error list as one line: `400 service_code not found; ...`. Falls back
/// to the raw body (shortened).
pub fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        code: serde_json::Value,
        description: String,
    }
    match serde_json::from_slice::<Vec<E>>(body) {
        Ok(list) if !list.is_empty() => list
            .iter()
            .map(|e| format!("{} {}", e.code, e.description).replace('"', ""))
            .collect::<Vec<_>>()
            .join("; "),
        _ => super::exchange::truncate_chars(String::from_utf8_lossy(body).trim(), 300),
    }
}

impl Open311Client {
    /// A client for the config's endpoint.
    pub fn new(cfg: &DeliveryConfig) -> Result<Self, String> {
        let http = http_client(cfg)?;
        Ok(Self {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            cfg: cfg.clone(),
        })
    }

    /// Its delivery config.
    pub fn config(&self) -> &DeliveryConfig {
        &self.cfg
    }

    /// The fields of a create or follow-up, in order.
    pub fn fields(&self, out: &Outgoing) -> Vec<(String, String)> {
        let c = &out.case;
        let mut f: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: String| f.push((k.to_string(), v));
        if let Some(k) = self.cfg.api_key() {
            add("api_key", k);
        }
        if let Some(j) = &self.cfg.jurisdiction_id {
            add("jurisdiction_id", j.clone());
        }
        add("service_code", self.cfg.service_code(c.kind.as_str()));
        add("lat", format!("{:.7}", c.lat));
        add("long", format!("{:.7}", c.lon));
        add("address_string", c.admin_path.clone());
        add("description", out.description(MAX_DESCRIPTION));
        if let Some(m) = out.media_url(self.cfg.public_url.as_deref()) {
            add("media_url", m);
        }
        if out.delivery.event == Event::Update {
            let status = match c.status {
                super::CaseStatus::Open | super::CaseStatus::Confirmed => "open",
                super::CaseStatus::Rejected | super::CaseStatus::Closed => "closed",
            };
            add("status", status.to_string());
        }
        for (k, v) in case_attributes(out) {
            add(&format!("attribute[{k}]"), v);
        }
        f
    }

    /// The form body of a create or follow-up, URL-encoded.
    pub fn form(&self, out: &Outgoing) -> String {
        let mut f = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields(out) {
            f.append_pair(&k, &v);
        }
        f.finish()
    }

    /// The body and its content type: the URL-encoded form; or, when the violation
    /// photo is carried (`media = "attach"`), the same fields as `multipart/form-data`
    /// with the photo as the `media` file part.
    pub fn body(&self, out: &Outgoing) -> (String, Vec<u8>) {
        let photo = out
            .violation_photo()
            .and_then(|e| out.attached(e.id).map(|b| (e, b)));
        let Some((e, bytes)) = photo else {
            return (
                "application/x-www-form-urlencoded".into(),
                self.form(out).into_bytes(),
            );
        };
        let mut m = super::multipart::Multipart::new();
        for (k, v) in self.fields(out) {
            m.text(&k, &v);
        }
        let name = e.file.rsplit('/').next().unwrap_or("media.jpg");
        m.file(
            "media",
            &format!("{}-{name}", out.case.id),
            e.content_type(),
            bytes,
        );
        m.finish()
    }

    /// One attempt of a delivery.
    pub async fn send(&self, out: &Outgoing) -> Sent {
        match out.delivery.event {
            Event::Create => {
                let url = format!("{}/requests.json", self.base);
                self.post(out, &url).await
            }
            Event::Update => {
                if !self.cfg.updates {
                    return Sent::Skipped(
                        "the receiver takes no follow-ups (updates = false)".into(),
                    );
                }
                let Some(id) = &out.remote_id else {
                    return Sent::NotYet("the case has no service_request_id yet".into());
                };
                let url = format!(
                    "{}/requests/{}/updates.json",
                    self.base,
                    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
                );
                self.post(out, &url).await
            }
            Event::Resolve => self.resolve(out).await,
        }
    }

    async fn post(&self, out: &Outgoing, url: &str) -> Sent {
        let (content_type, body) = self.body(out);
        let req = self
            .http
            .post(url)
            .header("Idempotency-Key", &out.delivery.idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        let reply = match exchange(req).await {
            Ok(r) => r,
            Err(sent) => return sent,
        };
        let (status, body) = (reply.status, &reply.body);
        if !status.is_success() {
            return reply.refusal(error_text(body));
        }
        match serde_json::from_slice::<Vec<Answer>>(body) {
            Ok(list) => {
                let a = list.into_iter().next();
                let remote_id = a.as_ref().and_then(|a| a.service_request_id.clone());
                let token = a.as_ref().and_then(|a| a.token.clone());
                if let (Event::Create, Some(id)) = (out.delivery.event, &remote_id) {
                    if let Some(why) = self.not_ours(out, id).await {
                        tracing::warn!(
                            case = out.case.id,
                            "{url} answered case {}'s request with request {id}, which is not this case's: {why}",
                            out.case.id
                        );
                        return Sent::Failed(crate::cases::retry::AttemptResult::NotOurs(format!(
                            "the receiver answered with request {id}, which is not this case's \
                             ({why}): not counted as delivered"
                        )));
                    }
                }
                if out.delivery.event == Event::Create && remote_id.is_none() && token.is_none() {
                    // taken, but with no way to refer to it: nothing to retry, say so
                    tracing::warn!(
                        case = out.case.id,
                        "{url} took case {} but answered with neither service_request_id nor token",
                        out.case.id
                    );
                }
                Sent::Ok {
                    detail: format!(
                        "HTTP {}{}",
                        status.as_u16(),
                        a.and_then(|a| a.service_notice)
                            .map(|n| format!(": {n}"))
                            .unwrap_or_default()
                    ),
                    remote_id,
                    token,
                }
            }
            // a 2xx whose body we cannot read: the receiver has it, and a retry would be
            // answered from its idempotency record; keep the raw answer for the log
            Err(_) => Sent::Ok {
                remote_id: None,
                token: None,
                detail: format!(
                    "HTTP {} with an unreadable body: {}",
                    status.as_u16(),
                    error_text(body)
                ),
            },
        }
    }

    /// Reads request `id` back: what in it shows that it is not `out`'s case, if
    /// anything (nothing when the receiver does not answer or does not show it).
    async fn not_ours(&self, out: &Outgoing, id: &str) -> Option<String> {
        let mut url = format!(
            "{}/requests/{}.json",
            self.base,
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        if let Some(j) = &self.cfg.jurisdiction_id {
            url.push_str("?jurisdiction_id=");
            url.extend(form_urlencoded::byte_serialize(j.as_bytes()));
        }
        let reply = exchange(self.http.get(&url)).await.ok()?;
        if !reply.status.is_success() {
            return None;
        }
        let list: Vec<serde_json::Value> = serde_json::from_slice(&reply.body).ok()?;
        stored_mismatch(out, &list.into_iter().next()?)
    }

    async fn resolve(&self, out: &Outgoing) -> Sent {
        let Some(token) = &out.token else {
            return Sent::Skipped("no token to resolve".into());
        };
        let mut url = format!(
            "{}/tokens/{}.json",
            self.base,
            percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
        );
        if let Some(j) = &self.cfg.jurisdiction_id {
            url.push_str("?jurisdiction_id=");
            url.extend(form_urlencoded::byte_serialize(j.as_bytes()));
        }
        let reply = match exchange(self.http.get(&url)).await {
            Ok(r) => r,
            Err(sent) => return sent,
        };
        if reply.status.as_u16() == 404 {
            return Sent::NotYet(format!("token {token} not resolved yet"));
        }
        if !reply.status.is_success() {
            return reply.refusal(error_text(&reply.body));
        }
        let id = serde_json::from_slice::<Vec<Answer>>(&reply.body)
            .ok()
            .and_then(|l| l.into_iter().next())
            .and_then(|a| a.service_request_id);
        match id {
            Some(id) => Sent::Ok {
                detail: format!("token {token} is request {id}"),
                remote_id: Some(id),
                token: None,
            },
            None => Sent::NotYet(format!("token {token} not resolved yet")),
        }
    }
}

/// What in a stored request (as `GET requests/{id}.json` shows it) differs from the
/// case `out` carries: its `gridwatch_case_id`, its idempotency key, its coordinates
/// (more than about a metre off). Fields the receiver does not show are not compared.
fn stored_mismatch(out: &Outgoing, stored: &serde_json::Value) -> Option<String> {
    let attr = |k: &str| stored.get("attributes").and_then(|a| a.get(k));
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(case) = attr("gridwatch_case_id") {
        if text(case) != out.case.id.to_string() {
            return Some(format!("its gridwatch_case_id is {}", text(case)));
        }
    }
    if let Some(key) = attr("gridwatch_idempotency_key").or_else(|| stored.get("idempotency_key")) {
        if !key.is_null() && text(key) != out.delivery.idempotency_key {
            return Some(format!("its idempotency key is {}", text(key)));
        }
    }
    let num = |k: &str| {
        stored
            .get(k)
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
    };
    if let (Some(lat), Some(lon)) = (num("lat"), num("long")) {
        if (lat - out.case.lat).abs() > 1e-5 || (lon - out.case.lon).abs() > 1e-5 {
            return Some(format!(
                "it is at {lat:.6}, {lon:.6}, the case at {:.6}, {:.6}",
                out.case.lat, out.case.lon
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lists_are_read() {
        assert_eq!(
            error_text(br#"[{"code":400,"description":"service_code not found"},{"code":400,"description":"lat out of range"}]"#),
            "400 service_code not found; 400 lat out of range"
        );
        assert_eq!(
            error_text(b"Internal Server Error"),
            "Internal Server Error"
        );
    }
}
