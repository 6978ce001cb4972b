//! The client and the server against bytes recorded from PyTorch's own
//! (`tests/interop/tcpstore_exchange.json`, written by `tools/interop/record_tcpstore.py`),
//! and against each other.

use super::{StoreClient, StoreServer};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const RECORDING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/interop/tcpstore_exchange.json"
);

const LONG: Duration = Duration::from_secs(10);

/// One operation of PyTorch's client: what it was called with and returned, and its exchanges
/// (what the client sent, then what the server answered).
struct Step {
    op: String,
    args: Vec<Value>,
    result: Value,
    exchanges: Vec<(Vec<u8>, Vec<u8>)>,
}

fn recording() -> Vec<Step> {
    let text = std::fs::read_to_string(RECORDING).expect("the recorded TCPStore exchange");
    let json: Value = serde_json::from_str(&text).unwrap();
    let bytes = |v: &Value| hex::decode(v.as_str().unwrap()).unwrap();
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Step {
            op: s["op"].as_str().unwrap().to_string(),
            args: s["args"].as_array().unwrap().clone(),
            result: s["result"].clone(),
            exchanges: s["exchanges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (bytes(&e["sent"]), bytes(&e["received"])))
                .collect(),
        })
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn texts(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(text).collect()
}

fn utf8(bytes: Vec<u8>) -> Value {
    Value::from(String::from_utf8(bytes).unwrap())
}

/// Runs a recorded step's operation on our client; returns its result as the recording
/// writes it.
fn perform(client: &mut StoreClient, step: &Step) -> Value {
    let a = &step.args;
    match step.op.as_str() {
        "set" => client
            .set(text(&a[0]), text(&a[1]).as_bytes())
            .map(|()| Value::Null),
        "get" => client
            .get(text(&a[0]), LONG)
            .map(|v| utf8(v.expect("the key is set"))),
        "get_timeout" => client
            .get(text(&a[0]), Duration::from_millis(a[1].as_u64().unwrap()))
            .map(|v| v.map_or(Value::Null, utf8)),
        "add" => client
            .add(text(&a[0]), a[1].as_i64().unwrap())
            .map(Value::from),
        "check" => client.check(&texts(&a[0])).map(Value::from),
        "compare_set" => client
            .compare_set(text(&a[0]), text(&a[1]).as_bytes(), text(&a[2]).as_bytes())
            .map(utf8),
        "multi_get" => client
            .multi_get(&texts(&a[0]), LONG)
            .map(|values| Value::from(values.unwrap().into_iter().map(utf8).collect::<Vec<_>>())),
        "multi_set" => {
            let (keys, values) = (texts(&a[0]), texts(&a[1]));
            let pairs: Vec<(&str, &[u8])> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| (*k, v.as_bytes()))
                .collect();
            client.multi_set(&pairs).map(|()| Value::Null)
        }
        "num_keys" => client.num_keys().map(Value::from),
        "delete_key" => client.delete_key(text(&a[0])).map(Value::from),
        "append" => client
            .append(text(&a[0]), text(&a[1]).as_bytes())
            .map(|()| Value::Null),
        "wait" => client.wait(&texts(&a[0]), LONG).map(Value::from),
        op => panic!("the recording has an operation the test does not know: {op}"),
    }
    .unwrap()
}

#[test]
fn the_client_sends_what_pytorchs_client_sent_and_reads_its_server_replies() {
    let steps = recording();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Plays PyTorch's server: expects each recorded request, answers the recorded reply.
    let expected: Vec<(usize, Vec<u8>, Vec<u8>)> = steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.exchanges
                .iter()
                .map(move |(a, b)| (i, a.clone(), b.clone()))
        })
        .collect();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        for (step, sent, received) in expected {
            let mut got = vec![0u8; sent.len()];
            socket.read_exact(&mut got).unwrap();
            let reply = if step == 0 {
                // The handshake's PING nonce is the client's process id: compare the rest,
                // and echo ours.
                let n = sent.len() - 4;
                assert_eq!(hex::encode(&got[..n]), hex::encode(&sent[..n]), "handshake");
                got[n..].to_vec()
            } else {
                assert_eq!(
                    hex::encode(&got),
                    hex::encode(&sent),
                    "a request of step {step}"
                );
                received
            };
            socket.write_all(&reply).unwrap();
        }
    });
    let mut client = StoreClient::connect("127.0.0.1", port, LONG).unwrap();
    for step in &steps[1..] {
        assert_eq!(
            perform(&mut client, step),
            step.result,
            "{} {:?}",
            step.op,
            step.args
        );
    }
    server.join().unwrap();
}

#[test]
fn the_server_answers_pytorchs_requests_as_pytorchs_server_did() {
    let server = StoreServer::start(0).unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    socket.set_read_timeout(Some(LONG)).unwrap();
    for (i, step) in recording().iter().enumerate() {
        for (sent, received) in &step.exchanges {
            socket.write_all(sent).unwrap();
            let mut reply = vec![0u8; received.len()];
            socket.read_exact(&mut reply).unwrap();
            assert_eq!(
                hex::encode(&reply),
                hex::encode(received),
                "reply in step {i}, {} {:?}",
                step.op,
                step.args
            );
        }
    }
    // Nothing more was said than PyTorch's server said.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(socket.read(&mut [0u8; 1]).is_err());
}

#[test]
fn a_wait_ends_when_another_client_sets_the_last_key() {
    let server = StoreServer::start(0).unwrap();
    let port = server.port();
    let waiter = std::thread::spawn(move || {
        let mut client = StoreClient::connect("127.0.0.1", port, LONG).unwrap();
        client.multi_get(&["ring/0", "ring/1"], LONG).unwrap()
    });
    let mut setter = StoreClient::connect("127.0.0.1", port, LONG).unwrap();
    setter.set("ring/0", b"a").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    setter.set("ring/1", b"b").unwrap();
    assert_eq!(
        waiter.join().unwrap(),
        Some(vec![b"a".to_vec(), b"b".to_vec()])
    );
    // A wait that times out leaves the connection usable.
    assert_eq!(
        setter.get("missing", Duration::from_millis(100)).unwrap(),
        None
    );
    assert_eq!(setter.add("counter", 2).unwrap(), 2);
}

#[test]
fn a_client_that_does_not_validate_is_dropped() {
    let server = StoreServer::start(0).unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    socket.set_read_timeout(Some(LONG)).unwrap();
    socket.write_all(b"GET k\n").unwrap();
    // Closed (an end of stream, or a reset for the bytes it left unread), never answered.
    let answer = socket.read(&mut [0u8; 8]);
    assert!(!matches!(answer, Ok(n) if n > 0), "{answer:?}");
}

#[test]
fn something_else_on_the_port_is_named_as_not_a_store() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    let err = StoreClient::connect("127.0.0.1", port, Duration::from_secs(1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a PyTorch TCPStore"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = StoreServer::start(port).err().unwrap().to_string();
    assert!(
        err.contains(&format!("port {port}")) && err.contains("in use"),
        "{err}"
    );
}
