//! The agent's connection to the control plane: one lazily connected
//! channel shared by the snapshot stream, readiness reports and tunnels,
//! kept in a watch so that certificate renewal can swap in a channel that
//! presents the new certificate. Streams already open keep the channel
//! they started on (their connection stays authenticated), so renewal
//! causes no reconnect; every new call takes the current one.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use switchyard_tls::client::Target;
use tokio::sync::watch;
use tonic::transport::Channel;

/// The current channel to the control plane.
pub type Channels = watch::Receiver<Channel>;

/// A channel that is never replaced (plaintext, tests).
pub fn fixed(channel: Channel) -> Channels {
    watch::channel(channel).1
}

/// A lazily connected channel with the agent's timeouts: HTTP/2
/// keepalives notice a dead control plane within seconds.
pub fn channel(target: &Target, tls: Option<Arc<ClientConfig>>) -> switchyard_tls::Result<Channel> {
    let endpoint = target
        .endpoint()?
        .connect_timeout(target.dial_deadline())
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    target.lazy_channel(endpoint, tls)
}
