pub mod error;
pub mod mesh;
