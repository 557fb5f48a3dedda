//! What clients see when the server stops.

use banter_testkit::{Db, TestApp};

#[tokio::test]
async fn shutdown_stops_accepting_then_tells_clients_to_reconnect() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let login = app.signup("alice").await;
    let mut ws = app.ws(login["token"].as_str().expect("token"), None).await;
    ws.say("general", "before the restart", "x1").await;
    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    assert_eq!(ws.closed().await, Some(1012), "close 1012: service restart");
    // Gone, as a real client is once told to go (else the server waits out its close timeout).
    drop(ws);
    // It stopped taking connections before it told its clients to go: a client reconnecting
    // at once is not let in only to be sent away again.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted during shutdown"
    );
    stopping.await.expect("join").expect("a clean shutdown");
}
