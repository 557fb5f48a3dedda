//! The real-time core over real WebSockets against a real `banter serve` on port 0.

mod chat;
mod client;
mod lifecycle;
mod limits;
mod privacy;
mod rate_limits;
mod resume;
mod rooms;
mod timeline;
