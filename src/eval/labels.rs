//! Labelled images for `gridwatch eval detect`: COCO JSON or YOLO txt, and the map
//! from the labels' class names to a model's.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What is wrong with a label set; each names the file (and where it helps, the line,
/// annotation or class).
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is wrong.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file (with `:line` where there is one).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &Path, message: impl Into<String>) -> LabelError {
    LabelError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, LabelError> {
    fs::read_to_string(path).map_err(|source| LabelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    /// Its path as the labels name it, relative to the images folder.
    pub name: String,
    /// The size the labels say it has (COCO's `width` / `height`), checked against
    /// the image when it is read.
    pub size: Option<(u32, u32)>,
    /// Its COCO image id (its position from 1 for YOLO labels).
    pub id: u64,
}

/// A label box: image and class index into the set's lists, corners in pixels, or
/// in 0..1 of the image's size for YOLO labels (see [`LabelSet::normalized`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelBox {
    /// Index into [`LabelSet::images`].
    pub image: usize,
    /// Index into [`LabelSet::classes`].
    pub class: usize,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f64; 4],
}

/// Labelled images, as read from COCO JSON or YOLO txt files.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSet {
    /// The file or folder the labels came from.
    pub source: PathBuf,
    /// The images, in the labels' order.
    pub images: Vec<LabelledImage>,
    /// The labels' class names, with their COCO category ids (positions for YOLO).
    pub classes: Vec<(u64, String)>,
    /// The boxes.
    pub boxes: Vec<LabelBox>,
    /// Whether boxes are in 0..1 of the image size (YOLO) rather than pixels.
    pub normalized: bool,
}

/// Image file endings YOLO label folders are matched against.
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff"];

impl LabelSet {
    /// Reads labels: a `.json` file as COCO, a folder as YOLO txt (one `NAME.txt`
    /// for each image under `images`, at the same relative path; class names from
    /// `names` or the folder's `classes.txt` / `obj.names`).
    pub fn load(labels: &Path, images: &Path, names: Option<&Path>) -> Result<Self, LabelError> {
        if labels.is_dir() {
            Self::yolo(labels, images, names)
        } else {
            Self::coco(labels)
        }
    }

    /// Reads a COCO JSON file (its `images`, `categories` and `annotations`; boxes
    /// `[x, y, width, height]` in pixels).
    pub fn coco(path: &Path) -> Result<Self, LabelError> {
        #[derive(Deserialize)]
        struct Doc {
            images: Vec<Image>,
            categories: Vec<Category>,
            #[serde(default)]
            annotations: Vec<Annotation>,
        }
        #[derive(Deserialize)]
        struct Image {
            id: u64,
            file_name: String,
            width: Option<u32>,
            height: Option<u32>,
        }
        #[derive(Deserialize)]
        struct Category {
            id: u64,
            name: String,
        }
        #[derive(Deserialize)]
        struct Annotation {
            #[serde(default)]
            id: Option<u64>,
            image_id: u64,
            category_id: u64,
            bbox: [f64; 4],
            #[serde(default)]
            iscrowd: u8,
        }
        let text = read(path)?;
        let doc: Doc = serde_json::from_str(&text)
            .map_err(|e| invalid(path, format!("not COCO labels JSON: {e}")))?;
        let mut image_at = HashMap::new();
        let mut images = Vec::with_capacity(doc.images.len());
        for im in doc.images {
            if image_at.insert(im.id, images.len()).is_some() {
                return Err(invalid(path, format!("image id {} is listed twice", im.id)));
            }
            images.push(LabelledImage {
                name: im.file_name,
                size: im.width.zip(im.height),
                id: im.id,
            });
        }
        let mut class_at = HashMap::new();
        let mut classes = Vec::new();
        for c in doc.categories {
            if class_at.insert(c.id, classes.len()).is_some() {
                return Err(invalid(
                    path,
                    format!("category id {} is listed twice", c.id),
                ));
            }
            classes.push((c.id, c.name));
        }
        let mut boxes = Vec::with_capacity(doc.annotations.len());
        for (n, a) in doc.annotations.iter().enumerate() {
            let which = match a.id {
                Some(id) => format!("annotation {id}"),
                None => format!("annotation #{}", n + 1),
            };
            let image = *image_at.get(&a.image_id).ok_or_else(|| {
                invalid(
                    path,
                    format!(
                        "{which} names image id {}, which is not in `images`",
                        a.image_id
                    ),
                )
            })?;
            let class = *class_at.get(&a.category_id).ok_or_else(|| {
                invalid(
                    path,
                    format!(
                        "{which} names category id {}, which is not in `categories`",
                        a.category_id
                    ),
                )
            })?;
            if a.iscrowd != 0 {
                return Err(invalid(
                    path,
                    format!("{which} is a crowd region (iscrowd); crowd regions are not supported: leave them out"),
                ));
            }
            let [x, y, w, h] = a.bbox;
            if !(x.is_finite()
                && y.is_finite()
                && w > 0.0
                && h > 0.0
                && w.is_finite()
                && h.is_finite())
            {
                return Err(invalid(
                    path,
                    format!("{which} has bbox {:?}: want [x, y, width, height] with a positive width and height", a.bbox),
                ));
            }
            boxes.push(LabelBox {
                image,
                class,
                bbox: [x, y, x + w, y + h],
            });
        }
        Ok(Self {
            source: path.to_path_buf(),
            images,
            classes,
            boxes,
            normalized: false,
        })
    }

    /// Reads a YOLO label folder: every image under `images_dir` (sorted by path) with
    /// `labels/REL.txt` beside it holding `class cx cy w h` lines in 0..1 of the
    /// image (an image without a txt file has no objects).
    pub fn yolo(
        labels: &Path,
        images_dir: &Path,
        names: Option<&Path>,
    ) -> Result<Self, LabelError> {
        let names_file = match names {
            Some(n) => n.to_path_buf(),
            None => ["classes.txt", "obj.names"]
                .iter()
                .map(|n| labels.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    invalid(labels, "YOLO labels need their class names: classes.txt or obj.names in the folder, or --names FILE")
                })?,
        };
        let classes: Vec<(u64, String)> = read(&names_file)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, n)| (i as u64, n.to_string()))
            .collect();
        if classes.is_empty() {
            return Err(invalid(&names_file, "no class names (one a line)"));
        }
        let mut found = Vec::new();
        walk(images_dir, images_dir, &mut found)?;
        found.sort();
        if found.is_empty() {
            return Err(invalid(
                images_dir,
                "no images (jpg, png, bmp, tif) in this folder",
            ));
        }
        let mut images = Vec::with_capacity(found.len());
        let mut boxes = Vec::new();
        for (i, rel) in found.iter().enumerate() {
            let txt = labels.join(rel).with_extension("txt");
            images.push(LabelledImage {
                name: rel.to_string_lossy().into_owned(),
                size: None,
                id: i as u64 + 1,
            });
            if !txt.is_file() {
                continue;
            }
            for (n, line) in read(&txt)?.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let at = PathBuf::from(format!("{}:{}", txt.display(), n + 1));
                let f: Vec<&str> = line.split_whitespace().collect();
                let nums: Option<Vec<f64>> = f
                    .get(1..5)
                    .and_then(|v| v.iter().map(|x| x.parse().ok()).collect());
                let (Some(class), Some(v), 5) = (f[0].parse::<usize>().ok(), nums, f.len()) else {
                    return Err(invalid(&at, format!("`{line}`: want `class cx cy w h` (a class index and four numbers in 0..1)")));
                };
                if class >= classes.len() {
                    return Err(invalid(
                        &at,
                        format!(
                            "class {class}, but {} names only {}",
                            names_file.display(),
                            classes.len()
                        ),
                    ));
                }
                let (cx, cy, w, h) = (v[0], v[1], v[2], v[3]);
                let unit = |x: f64| (0.0..=1.0).contains(&x);
                if !(unit(cx) && unit(cy) && w > 0.0 && h > 0.0 && unit(w) && unit(h)) {
                    return Err(invalid(
                        &at,
                        format!("`{line}`: centre and size must lie in 0..1, size above 0"),
                    ));
                }
                boxes.push(LabelBox {
                    image: i,
                    class,
                    bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                });
            }
        }
        Ok(Self {
            source: labels.to_path_buf(),
            images,
            classes,
            boxes,
            normalized: true,
        })
    }
}

/// Image files under `dir`, as paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LabelError> {
    let entries = fs::read_dir(dir).map_err(|source| LabelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

/// How the labels' classes become a model's: for each label class, the model class it
/// counts as, or `None` for a class left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    /// Per label class: the index into [`Self::classes`].
    pub of_label: Vec<Option<usize>>,
    /// The model classes evaluated: (index in the model's class list, its name).
    pub classes: Vec<(usize, String)>,
}

impl ClassMap {
    /// Maps `set`'s classes to `model_classes` by name, or as the TOML file `map`
    /// says (`"label name" = "model name"`, or `""` to leave a label class out). A
    /// label class that maps to no model class is an error naming it.
    pub fn new(
        set: &LabelSet,
        model_classes: &[String],
        map: Option<&Path>,
    ) -> Result<Self, LabelError> {
        let table: BTreeMap<String, String> = match map {
            None => BTreeMap::new(),
            Some(p) => toml::from_str(&read(p)?).map_err(|e| {
                invalid(
                    p,
                    format!("want a table of \"label class\" = \"model class\": {e}"),
                )
            })?,
        };
        if let Some(p) = map {
            for (from, to) in &table {
                if !set.classes.iter().any(|(_, n)| n == from) {
                    return Err(invalid(
                        p,
                        format!("maps `{from}`, which the labels do not have"),
                    ));
                }
                if !to.is_empty() && !model_classes.contains(to) {
                    return Err(invalid(
                        p,
                        format!("maps `{from}` to `{to}`, which the model does not have"),
                    ));
                }
            }
        }
        let mut classes: Vec<(usize, String)> = Vec::new();
        let mut of_label = Vec::with_capacity(set.classes.len());
        let mut missing = Vec::new();
        for (_, name) in &set.classes {
            let target = table.get(name).unwrap_or(name);
            if target.is_empty() {
                of_label.push(None);
                continue;
            }
            let Some(m) = model_classes.iter().position(|c| c == target) else {
                missing.push(name.clone());
                of_label.push(None);
                continue;
            };
            let at = match classes.iter().position(|(c, _)| *c == m) {
                Some(at) => at,
                None => {
                    classes.push((m, model_classes[m].clone()));
                    classes.len() - 1
                }
            };
            of_label.push(Some(at));
        }
        if !missing.is_empty() {
            return Err(invalid(
                &set.source,
                format!(
                    "label classes the model does not have: {} (map them to its classes, or to \"\" to leave them out, in a --map file)",
                    missing.join(", ")
                ),
            ));
        }
        Ok(Self { of_label, classes })
    }

    /// The evaluated class a model class counts as, if any.
    pub fn of_model(&self, model_class: usize) -> Option<usize> {
        self.classes.iter().position(|(c, _)| *c == model_class)
    }
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;
