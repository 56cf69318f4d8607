//! What `gridwatch config check` and `gridwatch run` check before anything starts,
//! beyond the config's own fields ([`Config::check`]): every file the config names is
//! read and checked the way the service will use it — the model manifest (and the
//! model file it names, by its checksum), the zones and the grid, each camera's
//! calibration — so that a config that passes the check also starts.

use crate::config::Config;
use crate::detect::ModelManifest;
use crate::geo::calib::Calibration;
use crate::geo::grid::Grid;
use crate::geo::zones::ZoneSet;

/// Every problem with the files the config names, each naming its field and file.
pub fn check_files(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let manifest = cfg
        .model
        .manifest
        .clone()
        .unwrap_or_else(crate::detect::default_model);
    match ModelManifest::load(&manifest) {
        Ok(m) => {
            if let Err(e) = m.verify_file() {
                out.push(format!("model.manifest: {e}"));
            }
            out.extend(cfg.cases.privacy.check(&m.classes));
        }
        Err(e) => out.push(format!("model.manifest: {e}")),
    }
    let tz = cfg.geo.timezone;
    if let Some(p) = &cfg.geo.zones {
        if p.exists() {
            if let Err(e) = ZoneSet::load(p, tz) {
                out.push(format!("geo.zones: {e}"));
            }
        }
    }
    if let Some(p) = &cfg.geo.grid {
        if p.exists() {
            if let Err(e) = Grid::load(p) {
                out.push(format!("geo.grid: {e}"));
            }
        }
    }
    for (i, c) in cfg.cameras.iter().enumerate() {
        if let Some(p) = &c.calibration {
            if p.exists() {
                if let Err(e) = Calibration::load(p) {
                    out.push(format!("camera[{i}] ({}).calibration: {e}", c.id));
                }
            }
        }
    }
    out
}
