//! The HTTP API, spoken to over real sockets: a real `banter serve` on port 0 per test.

mod admin;
mod auth;
mod bots;
mod errors;
mod files;
mod openapi;
mod ops;
mod outgoing;
mod push;
mod search;
mod web;
