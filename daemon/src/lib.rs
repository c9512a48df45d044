//! What both daemons need to run as host daemons: settings from a config
//! file beside their flags ([`config_file`]), and systemd's side of
//! starting, stopping and restarting them ([`systemd`]); flags that take a
//! value per IP family ([`per_family`]); and what their
//! packages carry generated from their flags ([`packaged`]).

pub mod config_file;
pub mod packaged;
pub mod per_family;
pub mod systemd;
