//! Accuracy, beside the speed `bench` measures: boxes against labels as COCO measures
//! them ([`coco`]).

pub mod coco;
