//! The caption strip under every evidence photo: when (in the city's time zone), what
//! the photo is in the sequence, the kind, zone, camera, place, grid cell and
//! coordinates, burned into the image so that a print or a forwarded file still says
//! where and when it was taken.
//!
//! OpenCV's `put_text` knows Hershey fonts only, which have no CJK glyphs, and camera,
//! zone and street names in a Chinese city are Chinese. The text is drawn here with
//! `ab_glyph` over a TrueType font that covers CJK: by default Debian's
//! `fonts-wqy-microhei` (WenQuanYi Micro Hei), which `scripts/setup.sh` installs.

use std::path::{Path, PathBuf};

use ab_glyph::{point, Font, FontVec, PxScale, ScaleFont};
use opencv::core::{Mat, Scalar, CV_8UC3};
use opencv::prelude::*;
use serde::Deserialize;

use super::RuleEvent;
use crate::cases::photo::PhotoRole;

/// Where Debian's `fonts-wqy-microhei` puts its font.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// `[cases.captions]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptionConfig {
    /// Draw the strip under every evidence photo (on by default).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The TrueType/OpenType font (or collection; its first face) the strip is drawn
    /// in; it must cover the scripts of the camera, zone and place names.
    #[serde(default = "default_font")]
    pub font: PathBuf,
}

fn yes() -> bool {
    true
}

/// Debian's font, or the bundle's copy of it (`share/fonts/` beside `bin/`,
/// scripts/make-bundle.sh) where the system has none.
fn default_font() -> PathBuf {
    let system = PathBuf::from(DEFAULT_FONT);
    let bundled = crate::source_dir().join("share/fonts/wqy-microhei.ttc");
    if !system.exists() && bundled.exists() {
        bundled
    } else {
        system
    }
}

impl Default for CaptionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            font: default_font(),
        }
    }
}

impl CaptionConfig {
    /// The captioner this config asks for: `None` when captions are off; an error
    /// naming the font file (and what to do) when it cannot be read.
    pub fn load(&self) -> Result<Option<Captioner>, String> {
        if !self.enabled {
            return Ok(None);
        }
        Captioner::load(&self.font).map(Some).map_err(|e| {
            format!(
                "cases.captions.font: {e} (install Debian's fonts-wqy-microhei, name another \
                 CJK font, or set cases.captions.enabled = false)"
            )
        })
    }
}

const BACKGROUND: [u8; 3] = [24, 24, 24];
const INK: [u8; 3] = [255, 255, 255];

/// Draws caption strips in one font.
pub struct Captioner {
    font: FontVec,
}

impl std::fmt::Debug for Captioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Captioner")
    }
}

/// Text size and spacing of a strip for an image `width` pixels wide.
struct Layout {
    px: f32,
    pad: u32,
    line: u32,
}

impl Layout {
    fn of(width: u32) -> Self {
        let px = (width as f32 / 52.0).clamp(12.0, 44.0).round();
        Self {
            px,
            pad: (px * 0.35).ceil() as u32,
            line: (px * 1.3).ceil() as u32,
        }
    }

    fn height(&self, lines: usize) -> u32 {
        2 * self.pad + lines as u32 * self.line
    }
}

impl Captioner {
    /// Reads a font file (a collection's first face).
    pub fn load(path: &Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let font = FontVec::try_from_vec_and_index(data, 0)
            .map_err(|e| format!("{}: not a font ({e})", path.display()))?;
        Ok(Self { font })
    }

    /// Whether the font has a glyph for every character of `text` (spaces aside).
    #[cfg(test)]
    fn covers(&self, text: &str) -> bool {
        text.chars()
            .filter(|c| !c.is_whitespace())
            .all(|c| self.font.glyph_id(c).0 != 0)
    }

    /// The strip for an image `width` pixels wide: `lines` of light text on a dark band,
    /// each cut at the right edge; BGR, 8 bits.
    pub fn strip(&self, width: u32, lines: &[String]) -> opencv::Result<Mat> {
        let layout = Layout::of(width);
        let height = layout.height(lines.len());
        let bg = Scalar::new(
            BACKGROUND[0] as f64,
            BACKGROUND[1] as f64,
            BACKGROUND[2] as f64,
            0.0,
        );
        let mut m = Mat::new_rows_cols_with_default(height as i32, width as i32, CV_8UC3, bg)?;
        let data = m.data_bytes_mut()?;
        let scale = PxScale::from(layout.px);
        let font = self.font.as_scaled(scale);
        for (i, line) in lines.iter().enumerate() {
            let baseline = (layout.pad + i as u32 * layout.line) as f32 + font.ascent();
            let mut x = layout.pad as f32;
            let mut previous = None;
            for c in line.chars() {
                let id = self.font.glyph_id(c);
                if let Some(p) = previous {
                    x += font.kern(p, id);
                }
                previous = Some(id);
                let advance = font.h_advance(id);
                if x + advance > (width - layout.pad) as f32 {
                    break;
                }
                let glyph = id.with_scale_and_position(scale, point(x, baseline));
                x += advance;
                let Some(outline) = self.font.outline_glyph(glyph) else {
                    continue;
                };
                let b = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px < 0 || py < 0 || px >= width as i64 || py >= height as i64 {
                        return;
                    }
                    let at = (py as usize * width as usize + px as usize) * 3;
                    let a = coverage.clamp(0.0, 1.0);
                    for k in 0..3 {
                        let v = data[at + k] as f32 + (INK[k] as f32 - data[at + k] as f32) * a;
                        data[at + k] = v.round() as u8;
                    }
                });
            }
        }
        Ok(m)
    }

    /// `image` with the strip of `lines` under it (the image keeps its pixels; the
    /// result is taller by the strip).
    pub fn caption(&self, image: &Mat, lines: &[String]) -> opencv::Result<Mat> {
        let strip = self.strip(image.cols() as u32, lines)?;
        let mut out = Mat::default();
        opencv::core::vconcat2(image, &strip, &mut out)?;
        Ok(out)
    }

    /// How tall the strip of `lines` is under an image `width` pixels wide.
    pub fn strip_height(width: u32, lines: usize) -> u32 {
        Layout::of(width).height(lines)
    }
}

/// Where and by whom a violation was seen, as its photos' strips say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Place<'a> {
    /// The camera's id.
    pub camera: &'a str,
    /// The place's name (the grid cell's administrative path: district, street, …).
    pub name: &'a str,
    /// The grid cell.
    pub cell: &'a str,
    /// WGS 84.
    pub lat: f64,
    /// WGS 84.
    pub lon: f64,
}

/// The lines of a photo's strip: when, what and where in the camera; which camera and
/// where on the ground; the place's name (which names the grid cell) or the cell.
pub fn caption_lines(
    role: PhotoRole,
    at_ms: i64,
    tz: Option<chrono_tz::Tz>,
    event: &RuleEvent,
    place: &Place,
) -> Vec<String> {
    let [camera, name] = place_lines(place);
    vec![
        format!(
            "{}  {}  {}",
            local_time(at_ms, tz),
            role.label(),
            subject_words(event)
        ),
        camera,
        name,
    ]
}

/// What the strip's first line says after the time and role: the kind and the zone.
pub fn subject_words(event: &RuleEvent) -> String {
    format!("{}  zone {}", event.kind, event.zone)
}

/// The strip's last two lines: which camera and where on the ground; the place's name
/// (which names the grid cell) or the cell.
pub fn place_lines(place: &Place) -> [String; 2] {
    let mut name = place.name.to_string();
    if !name.contains(place.cell) {
        if !name.is_empty() {
            name += "  ";
        }
        name += &format!("cell {}", place.cell);
    }
    [
        format!(
            "camera {}  {:.6}, {:.6}",
            place.camera, place.lat, place.lon
        ),
        name,
    ]
}

/// A time as the strip shows it: local time in `tz` with its UTC offset, or UTC.
pub fn local_time(at_ms: i64, tz: Option<chrono_tz::Tz>) -> String {
    use chrono::TimeZone;
    let Some(utc) = chrono::Utc.timestamp_millis_opt(at_ms).single() else {
        return format!("{at_ms} ms");
    };
    match tz {
        Some(tz) => utc
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        None => utc.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Rect, Vector};
    use opencv::imgcodecs;

    fn captioner() -> Captioner {
        Captioner::load(Path::new(DEFAULT_FONT))
            .unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh (fonts-wqy-microhei)"))
    }

    /// Mean absolute difference of two grey images over columns `x0..x1`.
    fn diff(a: &Mat, b: &Mat, x0: i32, x1: i32) -> f64 {
        let mut sum = 0.0;
        for y in 0..a.rows() {
            for x in x0..x1 {
                let (p, q) = (*a.at_2d::<u8>(y, x).unwrap(), *b.at_2d::<u8>(y, x).unwrap());
                sum += (p as f64 - q as f64).abs();
            }
        }
        sum / ((x1 - x0) * a.rows()) as f64
    }

    fn grey(m: &Mat) -> Mat {
        let mut g = Mat::default();
        opencv::imgproc::cvt_color_def(m, &mut g, opencv::imgproc::COLOR_BGR2GRAY).unwrap();
        g
    }

    #[test]
    fn chinese_names_have_glyphs() {
        let c = captioner();
        assert!(c.covers("街口-1 解放路 违法停车 2026-12-03"));
        let strip = c.strip(400, &["街口".into()]).unwrap();
        let (mut lo, mut hi) = (255u8, 0u8);
        for v in strip.data_bytes().unwrap() {
            (lo, hi) = (lo.min(*v), hi.max(*v));
        }
        assert_eq!(lo, BACKGROUND[0]);
        assert!(hi > 200, "the CJK glyphs put ink on the strip");
    }

    #[test]
    fn a_stored_strip_reads_as_its_text_and_not_as_another() {
        let c = captioner();
        let image =
            Mat::new_rows_cols_with_default(360, 640, CV_8UC3, Scalar::new(90.0, 120.0, 60.0, 0.0))
                .unwrap();
        let t = local_time(1_764_750_005_000, Some(chrono_tz::Asia::Shanghai));
        assert_eq!(t, "2025-12-03 16:20:05 +08:00");
        let said = vec![
            format!("{t}  违法停车  zone 解放路-东"),
            "camera 街口-1".into(),
        ];
        let other = vec![
            format!(
                "{}  违法停车  zone 解放路-东",
                t.replace("16:20:05", "16:29:05")
            ),
            "camera 街口-7".into(),
        ];
        let captioned = c.caption(&image, &said).unwrap();
        let h = Captioner::strip_height(640, 2) as i32;
        assert_eq!((captioned.cols(), captioned.rows()), (640, 360 + h));
        // stored as evidence is: JPEG
        let mut buf = Vector::<u8>::new();
        imgcodecs::imencode(".jpg", &captioned, &mut buf, &Vector::new()).unwrap();
        let back = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).unwrap();
        let strip = grey(
            &Mat::roi(&back, Rect::new(0, 360, 640, h))
                .unwrap()
                .try_clone()
                .unwrap(),
        );
        let (a, b) = (
            grey(&c.strip(640, &said).unwrap()),
            grey(&c.strip(640, &other).unwrap()),
        );
        // the columns where the two texts differ (the minutes, the camera's number)
        let cols: Vec<i32> = (0..640).filter(|&x| diff(&a, &b, x, x + 1) > 0.0).collect();
        assert!(!cols.is_empty());
        let (x0, x1) = (cols[0], cols[cols.len() - 1] + 1);
        let (near, far) = (diff(&strip, &a, x0, x1), diff(&strip, &b, x0, x1));
        assert!(
            near < 6.0 && far > 3.0 * near,
            "the stored strip is {near:.1} from its text, {far:.1} from the other"
        );
        // and the image above it is untouched
        let top = grey(
            &Mat::roi(&back, Rect::new(0, 0, 640, 360))
                .unwrap()
                .try_clone()
                .unwrap(),
        );
        let plain = grey(&image);
        assert!(diff(&top, &plain, 0, 640) < 2.0);
    }

    #[test]
    fn a_missing_font_is_named() {
        let cfg = CaptionConfig {
            enabled: true,
            font: "/nonexistent/font.ttc".into(),
        };
        let e = cfg.load().unwrap_err();
        assert!(
            e.contains("/nonexistent/font.ttc") && e.contains("fonts-wqy-microhei"),
            "{e}"
        );
        let off = CaptionConfig {
            enabled: false,
            ..cfg
        };
        assert!(off.load().unwrap().is_none());
    }
}
