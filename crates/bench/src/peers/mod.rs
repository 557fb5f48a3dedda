//! The wire protocols of the servers banter is compared with (issue 16), so that one
//! generator drives them all with the same clock, pacing and checks: Centrifugo's JSON client
//! protocol ([`centrifugo`]) and Socket.IO over Engine.IO v4 ([`socketio`]). Each module is a
//! codec only — frames out, frames in, parsed into types — with no I/O, so it is tested alone.

pub mod centrifugo;
pub mod socketio;
