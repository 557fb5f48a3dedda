//! What clients see when the server stops.

use banter_testkit::{Db, TestApp};

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let login = app.signup("alice").await;
    let mut ws = app.ws(login["token"].as_str().expect("token"), None).await;
    ws.say("general", "before the restart", "x1").await;
    let stopping = tokio::spawn(app.stop());
    assert_eq!(ws.closed().await, Some(1012), "close 1012: service restart");
    stopping.await.expect("join").expect("a clean shutdown");
}
