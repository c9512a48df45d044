//! The byte side of Switchyard's port-forward tunnel (`switchyard.v1.Tunnel`):
//! both ends of a forwarded connection, swctl and the agent, join a TCP
//! socket to a stream of tunnel frames with the same credit-based flow
//! control, so it lives once, here.
#![forbid(unsafe_code)]

pub mod pump;
