//! The reference pictures of PTZ presets (`camera@preset`), by which the scene
//! recognises which preset the camera is at: read the one in use (viewers); capture
//! one from the camera's live frame, or upload one, and delete one (admins; every
//! change in the audit log). A capture is refused, with the reason, when the view is
//! not a preset of a camera in the list, the picture does not decode, is not the
//! size of the camera's frames, or has too few features to be recognised. The
//! camera starts again with it within a registry poll (this node's at once).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{read_body, same_site, Admin, Viewer};
use super::cameras::{list_writable, registry_call, write};
use super::{ApiError, ApiState, Seg, St};
use crate::config::{CameraEntry, PresetEntry};
use crate::decode::Frame;
use crate::geo::view::{ViewConfig, ViewWatch};
use crate::registry::references::MAX_BYTES;
use crate::registry::RegistryError;

/// The camera and preset a view names; or why it names none.
fn preset_of(s: &ApiState, key: &str) -> Result<(CameraEntry, PresetEntry), RegistryError> {
    let missing = |m: String| RegistryError::NotFound(m);
    let Some((cam, preset)) = key.split_once('@') else {
        return Err(RegistryError::Invalid(vec![format!(
            "view: {key:?} is not a preset (\"<camera>@<preset>\"): a camera's one view learns its reference from its first good frame"
        )]));
    };
    let rec = s
        .view
        .get(cam)
        .ok_or_else(|| missing(format!("camera {cam:?} in the camera list")))?;
    let p = rec
        .camera
        .presets
        .iter()
        .find(|p| p.id == preset)
        .cloned()
        .ok_or_else(|| missing(format!("preset {preset:?} of camera {cam}")))?;
    Ok((rec.camera, p))
}

/// `GET /api/references`: the pictures captured in the registry (without them).
pub(super) async fn list(State(s): St, _: Viewer) -> Result<Json<Value>, ApiError> {
    let all = registry_call(&s, |s| Ok(s.registry.references()?)).await?;
    Ok(Json(json!(all)))
}

/// `GET /api/references/{view}`: the picture the preset is recognised by — the
/// captured one, else its `reference` file; `X-Reference-Source` says which.
pub(super) async fn get(
    State(s): St,
    _: Viewer,
    Seg(key): Seg<String>,
) -> Result<Response, ApiError> {
    let (bytes, source) = registry_call(&s, move |s| {
        let (c, p) = preset_of(s, &key)?;
        if let Some((_, jpeg)) = s.registry.reference(&key)? {
            return Ok((jpeg, "registry"));
        }
        let Some(file) = p.reference else {
            return Err(RegistryError::NotFound(format!(
                "reference picture of preset {} of camera {} yet: capture one",
                p.id, c.id
            )));
        };
        let bytes = std::fs::read(&file).map_err(|e| {
            tracing::error!("api: reading reference {}: {e}", file.display());
            RegistryError::NotFound(format!("readable reference picture of {key}"))
        })?;
        Ok((bytes, "file"))
    })
    .await?;
    let ctype = if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::HeaderName::from_static("x-reference-source"),
                source,
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Why `picture` cannot be a preset's reference: not the size of the camera's
/// frames (`frame`: the last one this node decoded, if any), or too few features
/// to be recognised by.
fn unfit(picture: &Frame, frame: Option<(u32, u32)>) -> Option<String> {
    if let Some((w, h)) = frame.filter(|&f| f != (picture.width, picture.height)) {
        return Some(format!(
            "picture: {}×{}, the camera's frames are {w}×{h}: a reference is a frame of the stream the camera is sampled from",
            picture.width, picture.height
        ));
    }
    let mut check = match ViewWatch::new(ViewConfig::default()) {
        Ok(c) => c,
        Err(e) => return Some(format!("picture: the view check cannot start ({e})")),
    };
    check
        .add_preset(picture)
        .err()
        .map(|e| format!("picture: it has {e}"))
}

/// `POST /api/references/{view}`: takes the camera's live frame (an empty body) or
/// the picture sent (`image/jpeg` or `image/png`) as the preset's reference; 400
/// with the reason it cannot be.
pub(super) async fn capture(
    State(s): St,
    Admin(actor): Admin,
    Seg(key): Seg<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    list_writable(
        &s,
        "save /api/cameras/<id>/frame.jpg as the preset's reference file",
    )?;
    let sent = headers.contains_key(header::CONTENT_TYPE);
    same_site(
        &headers,
        if sent {
            &["image/jpeg", "image/png"]
        } else {
            &[]
        },
    )?;
    let body = read_body(body, MAX_BYTES).await?;
    let out = registry_call(&s, move |s| {
        let (c, _) = preset_of(s, &key)?;
        let live = s.metrics.last_frame(&c.id);
        let invalid = |m: String| RegistryError::Invalid(vec![m]);
        // the live frame is its own size; a picture sent is checked against it
        let (bytes, live_size) = if body.is_empty() {
            let frame = live.ok_or_else(|| {
                invalid(format!(
                    "picture: no frame from camera {} on this node yet to capture",
                    c.id
                ))
            })?;
            (frame, None)
        } else {
            let size = live.and_then(|j| {
                let mut f = Frame::default();
                crate::decode::image::decode_image(&j, &mut f)
                    .ok()
                    .map(|_| (f.width, f.height))
            });
            (body.to_vec(), size)
        };
        let mut picture = Frame::default();
        crate::decode::image::decode_image(&bytes, &mut picture)
            .map_err(|e| invalid(format!("picture: {e}")))?;
        if let Some(problem) = unfit(&picture, live_size) {
            return Err(invalid(problem));
        }
        // kept as JPEG, as the live frame is
        let jpeg = if bytes.starts_with(&[0xFF, 0xD8]) {
            bytes
        } else {
            crate::draw::encode_jpeg(&picture, 90)
                .map_err(|e| invalid(format!("picture: cannot be encoded as JPEG ({e})")))?
        };
        let size = (picture.width, picture.height);
        let r = s.registry.put_reference(&actor, &key, &jpeg, size)?;
        s.cameras_changed.notify_one();
        tracing::info!(
            view = key.as_str(),
            version = r.version,
            "api: reference picture captured"
        );
        Ok(json!(r))
    })
    .await?;
    Ok(Json(out))
}

/// A camera's first preset ends its one view (`camera`): refused while something
/// of the registry's is made for that view, which its presets would not use.
fn first_preset_problems(s: &ApiState, cam: &str) -> Result<(), RegistryError> {
    let Some(rec) = s.view.get(cam) else {
        return Ok(());
    };
    if !rec.camera.presets.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    if s.registry.calibration(cam)?.is_some() {
        out.push(format!(
            "presets: camera {cam}'s one view has a calibration (DELETE /api/calibrations/{cam} first): a camera with presets is calibrated preset by preset"
        ));
    }
    let zones: Vec<String> = s
        .registry
        .zones()?
        .into_iter()
        .filter(|z| z.doc["properties"]["camera"] == cam)
        .map(|z| z.id)
        .collect();
    if !zones.is_empty() {
        out.push(format!(
            "presets: the pixel zones {zones:?} are drawn on camera {cam}'s one view: move them to a preset (\"{cam}@<preset>\") or delete them first"
        ));
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Invalid(out))
    }
}

/// `POST /api/cameras/{id}/presets` (`{"id": "<preset>"}`, 201): adds a preset with
/// no picture yet (the editor's *New preset*; its picture is captured next); 400
/// with the reason it cannot be added.
pub(super) async fn add_preset(
    State(s): St,
    Admin(actor): Admin,
    Seg(id): Seg<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    list_writable(&s, "add the preset to the camera there")?;
    same_site(&headers, &["application/json"])?;
    let bytes = read_body(body, 4096).await?;
    let doc: Value = super::auth::json_body(&bytes, "a preset, as JSON")?;
    let Some(preset) = doc["id"].as_str().map(str::to_string) else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "id: the preset's name, as {\"id\": \"road\"}".into(),
        ));
    };
    let (cam, name) = (id.clone(), preset.clone());
    let r = write(&s, move |s| {
        first_preset_problems(s, &cam)?;
        s.registry.add_preset(&actor, &cam, &name)
    })
    .await?;
    tracing::info!(
        camera = id.as_str(),
        preset = preset.as_str(),
        "api: preset added"
    );
    let out = json!({"camera": id, "preset": preset, "view": format!("{id}@{preset}"), "revision": r.revision});
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /api/references/{view}` (204): the preset goes back to its `reference`
/// file, if any (without one, its rules wait for a new capture).
pub(super) async fn delete(
    State(s): St,
    Admin(actor): Admin,
    Seg(key): Seg<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    list_writable(&s, "change the preset's reference file there")?;
    super::zones::delete_and_wake(&s, &headers, move |s| {
        s.registry.delete_reference(&actor, &key)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_picture_or_one_of_another_size_is_unfit_with_the_reason() {
        let mut flat = Frame::default();
        flat.reshape(640, 480);
        flat.data.fill(128);
        let why = unfit(&flat, None).unwrap();
        assert!(why.starts_with("picture: it has 0 features"), "{why}");
        let why = unfit(&flat, Some((1280, 720))).unwrap();
        assert!(
            why.contains("640×480, the camera's frames are 1280×720"),
            "{why}"
        );
        // a photo is fit, at its own size
        let dog = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/dog.jpg");
        let mut photo = Frame::default();
        crate::decode::image::decode_image(&std::fs::read(dog).unwrap(), &mut photo).unwrap();
        let size = (photo.width, photo.height);
        assert_eq!(unfit(&photo, Some(size)), None);
        assert_eq!(unfit(&photo, None), None);
    }
}
