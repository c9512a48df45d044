//! Controllers: pure functions from the objects a write touched to the
//! objects that must change with it. The registry runs them inside the same
//! write, so derived state (EndpointSlices) is never behind its sources.

pub mod endpoints;
pub mod slices;
