//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of banter's whole HTTP surface (the
//! auth API, the gateway's API, the admin API, bots and webhooks, the WebSocket upgrade,
//! operations and the web app's files), built from [`ROUTES`].
//!
//! [`ROUTES`] is the one list of what the routers serve, with who may call each route and
//! what it takes. A test reads every `.route(…)` of the routers' source and fails when one is
//! missing here or listed here but not served (`tests/api/openapi.rs`); CI validates the
//! document with openapi-spec-validator (`banter openapi` prints it). docs/api.md is the prose
//! reference; this is for tools (client generators, API explorers).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A Bearer token: a user's JWT or a bot's token.
    Bearer,
    /// An admin's Bearer token.
    Admin,
}

/// What a route takes and answers, for the document.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// The JSON body's schema (a `components/schemas` name), if it takes one.
    pub body: Option<&'static str>,
    /// Query parameters it reads.
    pub query: &'static [&'static str],
    /// The status of success.
    pub ok: u16,
    /// What success answers: `envelope` (banter's JSON envelope), or a media type.
    pub answers: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
) -> Route {
    Route {
        method,
        path,
        tag,
        summary,
        access,
        body: None,
        query: &[],
        ok: 200,
        answers: "envelope",
    }
}

impl Route {
    const fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }

    const fn query(mut self, names: &'static [&'static str]) -> Self {
        self.query = names;
        self
    }

    const fn created(mut self) -> Self {
        self.ok = 201;
        self
    }

    const fn answers(mut self, media: &'static str) -> Self {
        self.answers = media;
        self
    }
}

use Access::{Admin, Bearer, Public};

/// Every route the routers serve (see the module docs).
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    // Accounts and sessions (the auth API).
    route("post", "/api/v1/register", "auth", "Register an account (the first one of an empty database is an admin)", Public).body("Registration").created(),
    route("get", "/api/v1/register", "auth", "Whether registration is open, invite-only or closed", Public),
    route("post", "/api/v1/login", "auth", "Log in: an access token and a refresh token", Public).body("Credentials"),
    route("post", "/api/v1/refresh", "auth", "Rotate a refresh token for a new pair", Public).body("RefreshToken"),
    route("post", "/api/v1/logout", "auth", "End a login session (revoke its refresh tokens)", Bearer).body("RefreshToken"),
    route("get", "/api/v1/me", "auth", "The caller: user or bot, and whether an admin", Bearer),
    // Rooms.
    route("get", "/api/v1/rooms", "rooms", "The caller's rooms, with unread counts and read positions", Bearer),
    route("post", "/api/v1/rooms", "rooms", "Create a room (public or private)", Bearer).body("NewRoom").created(),
    route("get", "/api/v1/rooms/public", "rooms", "Public rooms to discover", Bearer).query(&["limit"]),
    route("patch", "/api/v1/rooms/{room}", "rooms", "Set a room's topic (its owner, or an admin)", Bearer).body("RoomUpdate"),
    route("get", "/api/v1/rooms/{room}/members", "rooms", "A room's members, their roles, who is online, which are bots", Bearer),
    route("post", "/api/v1/rooms/{room}/members", "rooms", "Add a member", Bearer).body("NewMember"),
    route("delete", "/api/v1/rooms/{room}/members/{username}", "rooms", "Remove a member, or leave", Bearer),
    route("put", "/api/v1/rooms/{room}/read", "rooms", "Move the caller's read position forward", Bearer).body("ReadPosition"),
    route("put", "/api/v1/rooms/{room}/muted", "rooms", "Mute or unmute a room", Bearer).body("Muted"),
    route("get", "/api/v1/rooms/{room}/presence", "rooms", "Who is online in a room", Bearer),
    // Messages.
    route("get", "/api/v1/rooms/{room}/messages", "messages", "History: a page before, after or around a cursor", Bearer).query(&["before", "after", "around", "limit"]),
    route("post", "/api/v1/rooms/{room}/messages", "messages", "Send a message (any Bearer token), answered once durable", Bearer).body("NewMessage").created(),
    route("patch", "/api/v1/messages/{id}", "messages", "Edit one's own message", Bearer).body("Edit"),
    route("delete", "/api/v1/messages/{id}", "messages", "Delete a message (its author, or an admin)", Bearer),
    route("get", "/api/v1/messages/{id}/replies", "messages", "A thread's replies", Bearer).query(&["before", "limit"]),
    route("get", "/api/v1/messages/{id}/edits", "messages", "A message's earlier bodies", Bearer),
    route("get", "/api/v1/search", "messages", "Search the messages of the caller's rooms", Bearer).query(&["q", "room", "from", "before", "limit"]),
    // Files.
    route("post", "/api/v1/uploads", "files", "Upload a file (the raw bytes as the body)", Bearer).query(&["name"]).created(),
    route("get", "/api/v1/files/{id}", "files", "Download a file (its uploader, and the members of its message's room)", Bearer).answers("application/octet-stream"),
    route("get", "/api/v1/files/{id}/thumbnail", "files", "An image's thumbnail (PNG)", Bearer).answers("image/png"),
    // Push notifications.
    route("get", "/api/v1/push/key", "push", "The server's VAPID public key", Bearer),
    route("post", "/api/v1/push/subscriptions", "push", "Subscribe this browser to Web Push", Bearer).body("PushSubscription").created(),
    route("delete", "/api/v1/push/subscriptions", "push", "Unsubscribe this browser", Bearer).body("PushEndpoint"),
    // Bots and integrations.
    route("post", "/api/v1/bots", "bots", "Make a bot; its token is shown once", Admin).body("NewBot").created(),
    route("get", "/api/v1/bots", "bots", "List the bots", Admin),
    route("delete", "/api/v1/bots/{name}", "bots", "Revoke a bot everywhere at once", Admin),
    route("post", "/api/v1/rooms/{room}/webhooks", "bots", "Make an incoming webhook for a room; its URL is shown once", Bearer).body("NewWebhook").created(),
    route("get", "/api/v1/rooms/{room}/webhooks", "bots", "A room's incoming webhooks (never their URLs)", Bearer),
    route("delete", "/api/v1/rooms/{room}/webhooks/{id}", "bots", "Revoke an incoming webhook (its maker, or an admin)", Bearer),
    route("post", "/api/v1/rooms/{room}/outgoing-webhooks", "bots", "Make an outgoing webhook: the room's messages POSTed to a URL, signed; its secret is shown once", Bearer).body("NewOutgoingWebhook").created(),
    route("get", "/api/v1/rooms/{room}/outgoing-webhooks", "bots", "A room's outgoing webhooks (never their secrets)", Bearer),
    route("delete", "/api/v1/rooms/{room}/outgoing-webhooks/{id}", "bots", "Revoke an outgoing webhook (its maker, or an admin)", Bearer),
    route("post", "/api/v1/hooks/{secret}", "bots", "Post through an incoming webhook (Slack's body); the URL is the secret", Public).body("IncomingWebhook"),
    // Administration.
    route("get", "/api/v1/admin/users", "admin", "Accounts, by name", Admin).query(&["q", "after", "limit"]),
    route("post", "/api/v1/admin/users/{username}/deactivate", "admin", "Deactivate an account: its sessions end everywhere", Admin),
    route("post", "/api/v1/admin/users/{username}/reactivate", "admin", "Reactivate an account", Admin),
    route("put", "/api/v1/admin/users/{username}/admin", "admin", "Grant or withdraw admin rights", Admin).body("AdminFlag"),
    route("post", "/api/v1/admin/users/{username}/purge", "admin", "Delete a person's messages in a time range (or count them)", Admin).body("Purge"),
    route("get", "/api/v1/admin/rooms", "admin", "Rooms, by name", Admin).query(&["q", "after", "limit"]),
    route("delete", "/api/v1/admin/rooms/{room}", "admin", "Delete a room for everyone", Admin),
    route("put", "/api/v1/admin/rooms/{room}/archived", "admin", "Archive a room (read-only) or bring it back", Admin).body("Archived"),
    route("post", "/api/v1/admin/invites", "admin", "Make an invite code", Admin).body("NewInvite").created(),
    route("get", "/api/v1/admin/invites", "admin", "The invites, newest first", Admin),
    route("delete", "/api/v1/admin/invites/{id}", "admin", "Revoke an invite", Admin),
    route("get", "/api/v1/admin/settings", "admin", "The registration mode", Admin),
    route("put", "/api/v1/admin/settings", "admin", "Set the registration mode", Admin).body("Settings"),
    route("get", "/api/v1/admin/audit", "admin", "The audit log, newest first", Admin).query(&["before", "limit"]),
    route("get", "/api/v1/admin/stats", "admin", "Live figures: connections, messages per second, persist lag", Admin),
    // The WebSocket, this document, operations.
    route("get", "/ws", "realtime", "The WebSocket (docs/protocol.md): upgrade with a token", Bearer).query(&["token", "room", "since"]).answers("websocket"),
    route("get", "/api/v1/openapi.json", "ops", "This document", Public).answers("application/json"),
    route("get", "/health", "ops", "Liveness", Public).answers("application/json"),
    route("get", "/ready", "ops", "Readiness: the database (and Kafka) answer", Public).answers("application/json"),
    route("get", "/metrics", "ops", "Prometheus metrics", Public).answers("text/plain"),
    // The web app.
    route("get", "/", "web", "The chat app", Public).answers("text/html"),
    route("get", "/chat", "web", "The chat app", Public).answers("text/html"),
    route("get", "/join/{code}", "web", "The chat app, opened on an invite", Public).answers("text/html"),
    route("get", "/admin", "web", "The admin page", Public).answers("text/html"),
    route("get", "/app.js", "web", "The chat app's script", Public).answers("text/javascript"),
    route("get", "/client.js", "web", "The JavaScript client (an ES module: BanterClient)", Public).answers("text/javascript"),
    route("get", "/session.js", "web", "The web app's session script", Public).answers("text/javascript"),
    route("get", "/admin.js", "web", "The admin page's script", Public).answers("text/javascript"),
    route("get", "/style.css", "web", "The web app's styles", Public).answers("text/css"),
    route("get", "/sw.js", "web", "The web app's service worker (push notifications)", Public).answers("text/javascript"),
    route("get", "/config.json", "web", "The web app's settings (where the auth API is)", Public).answers("application/json"),
];

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// The document (see the module docs).
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let item = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        item[r.method] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "banter",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A real-time chat server. Every JSON answer is an envelope \
                {success, status_code, message, data} (failures: error, and data.field for \
                validation_failed). The prose reference is docs/api.md; the WebSocket frames are \
                in docs/protocol.md.",
            "license": { "name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "tags": tags(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user's access token (a JWT from /api/v1/login) or a bot's token (bnt_…)",
                },
            },
            "schemas": schemas(),
        },
    })
}

fn tags() -> Value {
    let mut seen: Vec<&str> = Vec::new();
    for r in ROUTES {
        if !seen.contains(&r.tag) {
            seen.push(r.tag);
        }
    }
    Value::Array(seen.into_iter().map(|t| json!({ "name": t })).collect())
}

/// A path's `{name}`s.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn operation(r: &Route) -> Value {
    let mut parameters: Vec<Value> = path_params(r.path)
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(
        r.query
            .iter()
            .map(|name| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })),
    );
    let id: String = format!("{}{}", r.method, r.path)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let success = match r.answers {
        "envelope" => json!({
            "description": "Done",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Envelope" } } },
        }),
        "websocket" => json!({ "description": "Switching protocols: the WebSocket is open" }),
        media => {
            let mut content = Map::new();
            content.insert(media.to_owned(), json!({}));
            json!({ "description": "Done", "content": content })
        }
    };
    let status = if r.answers == "websocket" { 101 } else { r.ok };
    let mut responses = Map::new();
    responses.insert(status.to_string(), success);
    responses.insert(
        "default".into(),
        json!({
            "description": "Refused: the envelope's error code says why (docs/api.md)",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        }),
    );
    let mut op = json!({
        "operationId": id,
        "summary": r.summary,
        "tags": [r.tag],
        "parameters": parameters,
        "responses": responses,
    });
    if r.access != Public {
        op["security"] = json!([{ "bearer": [] }]);
    }
    if r.access == Admin {
        op["description"] = "Admins only: anyone else gets 403 forbidden.".into();
    }
    if let Some(schema) = r.body {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
        });
    } else if r.path == "/api/v1/uploads" {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } },
        });
    }
    op
}

/// An object schema of `required` and `optional` properties, each `(name, schema)`.
fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    for (name, schema) in required.iter().chain(optional) {
        properties.insert((*name).to_owned(), schema.clone());
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
    })
}

fn schemas() -> Value {
    let s = || json!({ "type": "string" });
    let b = || json!({ "type": "boolean" });
    let n = || json!({ "type": "integer" });
    let names = || json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "Envelope": object(
            &[("success", b()), ("status_code", n()), ("message", s())],
            &[("data", json!({}))],
        ),
        "Error": object(
            &[("success", b()), ("status_code", n()), ("message", s()), ("error", s())],
            &[("data", object(&[], &[("field", s())]))],
        ),
        "Message": object(
            &[("id", s()), ("room", s()), ("author", s()), ("body", s()), ("created_at", s()), ("cursor", s())],
            &[("client_id", s()), ("reply_to", s()), ("thread_root", s()), ("mentions", names()),
              ("attachments", json!({ "type": "array", "items": { "type": "object" } })),
              ("bot", b()), ("label", s())],
        ),
        "Registration": object(&[("username", s()), ("password", s())], &[("invite", s())]),
        "Credentials": object(&[("username", s()), ("password", s())], &[]),
        "RefreshToken": object(&[("refresh_token", s())], &[]),
        "NewRoom": object(&[("name", s())], &[("kind", json!({ "enum": ["public", "private"] })), ("topic", s())]),
        "RoomUpdate": object(&[("topic", s())], &[]),
        "NewMember": object(&[("username", s())], &[]),
        "ReadPosition": object(&[("cursor", s())], &[]),
        "Muted": object(&[("muted", b())], &[]),
        "NewMessage": object(&[("body", s())], &[("client_id", s()), ("reply_to", s()), ("attachments", names())]),
        "Edit": object(&[("body", s())], &[]),
        "PushSubscription": object(
            &[("endpoint", s()), ("keys", object(&[("p256dh", s()), ("auth", s())], &[]))],
            &[("expirationTime", json!({ "type": ["integer", "null"] }))],
        ),
        "PushEndpoint": object(&[("endpoint", s())], &[]),
        "NewBot": object(&[("name", s())], &[("rooms", json!({ "type": ["array", "null"], "items": { "type": "string" } }))]),
        "NewWebhook": object(&[], &[("name", s())]),
        "IncomingWebhook": object(&[("text", s())], &[("username", s())]),
        "NewOutgoingWebhook": object(&[("url", s())], &[("trigger", s()), ("name", s())]),
        "AdminFlag": object(&[("admin", b())], &[]),
        "Purge": object(&[("dry_run", b())], &[("from", s()), ("to", s())]),
        "Archived": object(&[("archived", b())], &[]),
        "NewInvite": object(&[], &[("uses", n()), ("expires_in", n())]),
        "Settings": object(&[("registration", json!({ "enum": ["open", "invite", "closed"] }))], &[]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_listed_once_with_its_path_parameters() {
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            let op = &doc["paths"][r.path][r.method];
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(
                params,
                path_params(r.path).collect::<Vec<_>>(),
                "{}",
                r.path
            );
            if let Some(schema) = r.body {
                assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
            }
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
