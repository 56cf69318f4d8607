//! Accuracy, beside the speed `bench` measures: boxes against labels as COCO measures
//! them ([`coco`]), label sets in COCO JSON or YOLO txt ([`labels`]), a detector run
//! over them ([`detect`]) and its charts ([`chart`]); violations on clips against truth
//! files ([`rules`]).

pub mod chart;
pub mod coco;
pub mod detect;
pub mod labels;
pub mod rules;
