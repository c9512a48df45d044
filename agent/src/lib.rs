//! placeholder
pub mod model;
pub mod nft;
