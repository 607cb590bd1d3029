//! Domain decomposition of graph and mesh systems over ranks (docs/DESIGN.md §16.5).
//!
//! [`partition`] splits the nodes among ranks; [`subdomain`] gives one rank its owned nodes, the
//! halo its sites read and the exchange lists, with a local Lagrangian whose owned rows of M and
//! b are those of the global system.

pub mod partition;
pub mod subdomain;

pub use partition::{Adjacency, Partition, PartitionMethod};
pub use subdomain::{Neighbour, Subdomain};
pub mod system;
pub use system::{CgOptions, DistDynamics, DistStats};
#[doc(hidden)]
pub mod testing;
