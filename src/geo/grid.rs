//! The city's management grid: cells with their admin path (district / street /
//! community / grid code). A point is looked up through an R-tree of cell bounding
//! boxes, then tested exactly. Where no grid is configured, H3 cells at a configured
//! resolution stand in. The cell id is the cell part of a case's dedup key.
//!
//! Grid GeoJSON: a FeatureCollection of Polygon / MultiPolygon cells in WGS84 with
//! properties `grid_code` (required, unique), and `community`, `street`, `district`.
//! Cells should not overlap; a point on a shared edge belongs to the cell listed first.

use std::collections::HashSet;
use std::path::Path;

use geo::{Intersects, MultiPolygon, Point};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;
use serde::Serialize;

use super::zones::read_features;
use super::{GeoError, LatLon};

/// Where a cell sits in the city's administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct AdminPath {
    /// District.
    pub district: Option<String>,
    /// Street (sub-district office).
    pub street: Option<String>,
    /// Community.
    pub community: Option<String>,
    /// The grid cell's code.
    pub grid: String,
}

impl std::fmt::Display for AdminPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = [&self.district, &self.street, &self.community]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(std::iter::once(self.grid.as_str()))
            .collect();
        f.write_str(&parts.join(" / "))
    }
}

/// The cell a point falls in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellRef {
    /// Stable id: the grid code, or `h3:<index>`.
    pub id: String,
    /// Admin path (for H3 cells only the grid part, the H3 index).
    pub admin: AdminPath,
}

#[derive(Debug)]
struct Cell {
    admin: AdminPath,
    area: MultiPolygon<f64>,
}

/// A management grid, indexed.
#[derive(Debug)]
pub struct Grid {
    cells: Vec<Cell>,
    index: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl Grid {
    /// Reads a grid GeoJSON. Errors name the file and the feature.
    pub fn load(path: &Path) -> Result<Self, GeoError> {
        let (features, _) = read_features(path, |_| true)?;
        let mut seen = HashSet::new();
        let mut cells = Vec::with_capacity(features.len());
        for (id, props, area) in features {
            let text = |k: &str| {
                props.get(k).and_then(|v| {
                    v.as_str()
                        .map(String::from)
                        .or_else(|| v.as_i64().map(|n| n.to_string()))
                })
            };
            let grid = text("grid_code").ok_or_else(|| {
                GeoError::new(
                    path,
                    Some(format!("feature {id}")),
                    "missing property `grid_code`",
                )
            })?;
            if !seen.insert(grid.clone()) {
                return Err(GeoError::new(
                    path,
                    Some(format!("feature {id}")),
                    format!("grid_code `{grid}` appears twice"),
                ));
            }
            cells.push(Cell {
                admin: AdminPath {
                    district: text("district"),
                    street: text("street"),
                    community: text("community"),
                    grid,
                },
                area,
            });
        }
        Ok(Self::from_cells(cells))
    }

    fn from_cells(cells: Vec<Cell>) -> Self {
        let index = RTree::bulk_load(
            cells
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let r = geo::BoundingRect::bounding_rect(&c.area)?;
                    Some(GeomWithData::new(
                        Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                        i,
                    ))
                })
                .collect(),
        );
        Self { cells, index }
    }

    /// Builds a grid from polygons and admin paths (tests, generated grids).
    pub fn from_parts(parts: Vec<(AdminPath, MultiPolygon<f64>)>) -> Self {
        Self::from_cells(
            parts
                .into_iter()
                .map(|(admin, area)| Cell { admin, area })
                .collect(),
        )
    }

    /// Every cell's admin path and area, in file order.
    pub fn cells(&self) -> impl Iterator<Item = (&AdminPath, &MultiPolygon<f64>)> {
        self.cells.iter().map(|c| (&c.admin, &c.area))
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the grid has no cells.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cell containing `p` (edges included; the first listed wins on a shared edge).
    pub fn lookup(&self, p: LatLon) -> Option<CellRef> {
        let pt = Point::new(p.lon, p.lat);
        self.index
            .locate_all_at_point(&[p.lon, p.lat])
            .map(|hit| hit.data)
            .filter(|&i| self.cells[i].area.intersects(&pt))
            .min()
            .map(|i| CellRef {
                id: self.cells[i].admin.grid.clone(),
                admin: self.cells[i].admin.clone(),
            })
    }
}

/// How points become cells: the city's grid, or H3.
#[derive(Debug)]
pub enum CellLocator {
    /// The management grid; points outside it have no cell.
    Grid(Grid),
    /// H3 cells at a resolution (9: about 0.1 km², 10: about 15 000 m²).
    H3(h3o::Resolution),
}

impl CellLocator {
    /// The cell of `p`, if it has one.
    pub fn cell(&self, p: LatLon) -> Option<CellRef> {
        match self {
            Self::Grid(g) => g.lookup(p),
            Self::H3(res) => {
                let ll = h3o::LatLng::new(p.lat, p.lon).ok()?;
                let id = format!("h3:{}", ll.to_cell(*res));
                Some(CellRef {
                    admin: AdminPath {
                        grid: id.clone(),
                        ..Default::default()
                    },
                    id,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use geo::polygon;

    use super::*;

    fn square(x: f64, y: f64, s: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![
            polygon![(x: x, y: y), (x: x + s, y: y), (x: x + s, y: y + s), (x: x, y: y + s), (x: x, y: y)],
        ])
    }

    fn admin(code: &str) -> AdminPath {
        AdminPath {
            district: Some("D".into()),
            street: Some("S".into()),
            community: Some("C".into()),
            grid: code.into(),
        }
    }

    #[test]
    fn lookup_finds_the_cell_and_edges_go_to_the_first() {
        let g = Grid::from_parts(vec![
            (admin("a"), square(0.0, 0.0, 1.0)),
            (admin("b"), square(1.0, 0.0, 1.0)),
        ]);
        assert_eq!(g.lookup(LatLon { lat: 0.5, lon: 0.5 }).unwrap().id, "a");
        assert_eq!(g.lookup(LatLon { lat: 0.5, lon: 1.5 }).unwrap().id, "b");
        assert_eq!(g.lookup(LatLon { lat: 0.5, lon: 1.0 }).unwrap().id, "a");
        assert!(g.lookup(LatLon { lat: 5.0, lon: 5.0 }).is_none());
        assert_eq!(admin("g1").to_string(), "D / S / C / g1");
    }

    #[test]
    fn h3_cells_are_stable_ids() {
        let loc = CellLocator::H3(h3o::Resolution::Ten);
        let a = loc
            .cell(LatLon {
                lat: 31.2304,
                lon: 121.4737,
            })
            .unwrap();
        let b = loc
            .cell(LatLon {
                lat: 31.23041,
                lon: 121.47371,
            })
            .unwrap();
        assert_eq!(a, b, "a metre apart: same cell");
        assert!(a.id.starts_with("h3:8a"), "{}", a.id);
        let far = loc
            .cell(LatLon {
                lat: 31.24,
                lon: 121.48,
            })
            .unwrap();
        assert_ne!(a.id, far.id);
    }
}
