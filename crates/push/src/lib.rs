//! Web Push for banter (RFC 8030, 8291, 8292): a direct message or a mention for someone who
//! has no open connection reaches their browsers through their push services.
//!
//! - [`vapid`]: the server's key and the token each push is signed with.
//! - [`subscription`]: a browser's `PushSubscription`, checked at the API's edge.
//! - [`payload`]: what a push decrypts to, and its per-room `Topic`.
//! - [`sender`]: one push over HTTP, encrypted (`aes128gcm`), retried within its TTL.
//! - [`notifier`]: who is told about which message, and when; under `banter serve` it hears
//!   the in-process log ([`run_local`]).
//! - [`group`]: the notifier on Kafka, a consumer group of its own (`banter notify`).

pub mod group;
pub mod notifier;
pub mod payload;
pub mod sender;
pub mod subscription;
pub mod vapid;

pub use group::{GroupMetrics, GroupSettings, Job};
pub use notifier::{run_local, Connections, Notice, Notifier, NotifySettings};
pub use payload::{Payload, Reason};
pub use sender::{Outcome, Sender, SenderSettings};
pub use subscription::{InsecureOrigins, Subscription, SubscriptionJson};
pub use vapid::VapidKey;

/// Subscriptions kept per user: a few browsers and phones. A new one past this replaces the
/// user's oldest (most likely a browser long gone).
pub const MAX_SUBSCRIPTIONS_PER_USER: u32 = 10;
