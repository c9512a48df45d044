//! What both daemons need to run as host daemons: settings from a config
//! file beside their flags ([`config_file`]), and systemd's side of
//! starting, stopping and restarting them ([`systemd`]).

pub mod config_file;
pub mod systemd;
