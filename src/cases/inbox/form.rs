//! The inbox's form bodies (`application/x-www-form-urlencoded`, as GeoReport v2
//! sends them), parsed strictly and checked against the services offered.

use axum::http::HeaderMap;

use super::InboxConfig;
use crate::cases::open311::MAX_DESCRIPTION;

/// A request that passed validation.
#[derive(Debug, Clone, Default)]
pub(super) struct Form {
    pub(super) service_code: String,
    pub(super) lat: Option<f64>,
    pub(super) long: Option<f64>,
    pub(super) address_string: Option<String>,
    pub(super) description: String,
    pub(super) media_url: Option<String>,
    pub(super) status: Option<String>,
    pub(super) attributes: serde_json::Map<String, serde_json::Value>,
}

/// Decodes one form component strictly: `+` is a space, percent escapes must give UTF-8.
fn decode(part: &[u8], what: &str) -> Result<String, String> {
    let spaced: Vec<u8> = part
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{what} is not valid UTF-8"))
}

/// The `api_key` field of a form body, if it has one (read before anything else is
/// looked at: a writer is known before its request is checked).
pub(super) fn api_key_in(body: &[u8]) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let v = pair.strip_prefix(b"api_key=")?;
        decode(v, "api_key").ok()
    })
}

/// Parses and checks a form body against the services offered.
pub(super) fn parse_form(body: &[u8], cfg: &InboxConfig, update: bool) -> Result<Form, String> {
    if std::str::from_utf8(body).is_err() {
        return Err("the request body is not valid UTF-8".into());
    }
    let mut f = Form::default();
    let mut code = None;
    let (mut lat, mut long) = (None, None);
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(k, "a field name")?;
        let value = decode(v, &format!("field {key}"))?;
        if value.contains('\0') {
            return Err(format!("field {key} contains a NUL character"));
        }
        match key.as_str() {
            "service_code" => code = Some(value),
            "lat" => lat = Some(value),
            "long" => long = Some(value),
            "address_string" => f.address_string = Some(value).filter(|v| !v.is_empty()),
            "description" => f.description = value,
            "media_url" => f.media_url = Some(value).filter(|v| !v.is_empty()),
            // the writer's key: read by the client check, not kept
            "api_key" => {}
            "status" => f.status = Some(value),
            _ => {
                if let Some(name) = key
                    .strip_prefix("attribute[")
                    .and_then(|k| k.strip_suffix(']'))
                {
                    if name.is_empty() || name.len() > 100 {
                        return Err(format!("attribute name {name:?} is empty or too long"));
                    }
                    if f.attributes.len() >= 100 {
                        return Err("more than 100 attributes".into());
                    }
                    f.attributes
                        .insert(name.to_string(), serde_json::Value::String(value));
                }
                // other GeoReport fields (email, first_name, device_id, ...) are not kept
            }
        }
    }
    let coord = |v: Option<String>, name: &str, limit: f64| -> Result<Option<f64>, String> {
        match v {
            None => Ok(None),
            Some(s) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x.abs() <= limit => Ok(Some(x)),
                _ => Err(format!("{name} {s:?} is not a number within ±{limit}")),
            },
        }
    };
    f.lat = coord(lat, "lat", 90.0)?;
    f.long = coord(long, "long", 180.0)?;
    if f.lat.is_some() != f.long.is_some() {
        return Err("lat and long must be given together".into());
    }
    if !update {
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or("service_code is required")?;
        if !cfg.services.iter().any(|(c, _, _)| *c == code) {
            return Err(format!("service_code {code} not found"));
        }
        f.service_code = code;
        if f.lat.is_none() && f.address_string.is_none() {
            return Err("a location is required: lat and long, or address_string".into());
        }
    }
    if let Some(s) = &f.status {
        if s != "open" && s != "closed" {
            return Err(format!("status {s:?} is neither open nor closed"));
        }
    }
    let n = f.description.chars().count();
    if n > MAX_DESCRIPTION {
        return Err(format!(
            "description is {n} characters, more than {MAX_DESCRIPTION}"
        ));
    }
    if let Some(m) = &f.media_url {
        match url::Url::parse(m) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(format!("media_url {m:?} is not an http(s) URL")),
        }
    }
    Ok(f)
}

pub(super) fn idempotency_key(headers: &HeaderMap, f: &Form) -> Result<Option<String>, String> {
    let header = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| "the Idempotency-Key header is not text")?
                .to_string(),
        ),
        None => None,
    };
    let key = header.or_else(|| {
        f.attributes
            .get("gridwatch_idempotency_key")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    match key {
        Some(k) if k.is_empty() || k.len() > 200 => {
            Err("the idempotency key must be 1 to 200 characters".into())
        }
        k => Ok(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_checked() {
        let cfg = InboxConfig::default();
        let ok = parse_form(
            b"service_code=0505&lat=31.23&long=121.47&description=van+on+the+kerb%21&attribute[gridwatch_case_id]=7",
            &cfg,
            false,
        )
        .unwrap();
        assert_eq!(ok.description, "van on the kerb!");
        assert_eq!(ok.attributes["gridwatch_case_id"], "7");
        for (body, want) in [
            (&b"lat=1&long=2"[..], "service_code is required"),
            (b"service_code=9999&lat=1&long=2", "not found"),
            (b"service_code=0505&lat=91&long=2", "lat"),
            (b"service_code=0505&lat=NaN&long=2", "lat"),
            (b"service_code=0505&lat=1", "together"),
            (b"service_code=0505", "location"),
            (
                b"service_code=0505&lat=1&long=2&description=%FF%FE",
                "UTF-8",
            ),
            (
                b"service_code=0505&lat=1&long=2&media_url=javascript:alert(1)",
                "media_url",
            ),
        ] {
            let e = parse_form(body, &cfg, false).unwrap_err();
            assert!(e.contains(want), "{e} should say {want}");
        }
        let long = format!(
            "service_code=0505&lat=1&long=2&description={}",
            "x".repeat(4001)
        );
        assert!(parse_form(long.as_bytes(), &cfg, false)
            .unwrap_err()
            .contains("4001"));
        assert!(parse_form(b"\xff\xfe", &cfg, false)
            .unwrap_err()
            .contains("UTF-8"));
    }
}
