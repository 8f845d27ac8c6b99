//! Slow and oversized requests cannot hold the server: headers must
//! arrive within `header_read_timeout`, a body within `body_read_timeout`,
//! a body declared over 64 KiB is refused before it is read, and past
//! `max_connections` new connections wait. Raw TCP, because an HTTP
//! client would not misbehave on purpose.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Backend, Deployment, Server};
use crate::oauth::Api;

/// Generous: a deadline on a condition, not a measurement.
const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) async fn connect(server: &Server) -> TcpStream {
    let address = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

/// One response: its head, and the body its `Content-Length` announces.
pub(crate) async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let complete = |received: &[u8]| {
        let text = String::from_utf8_lossy(received);
        let Some(head_end) = text.find("\r\n\r\n") else {
            return false;
        };
        let length = text[..head_end]
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        received.len() >= head_end + 4 + length
    };
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0u8; 4096];
        while !complete(&received) {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no complete response in time");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn half_sent_headers_and_missing_bodies_are_cut_off() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let server =
        deployment.serve_with(&["--header-read-timeout", "1s", "--body-read-timeout", "1s"]);

    let mut half = connect(&server).await;
    half.write_all(b"POST /token HTTP/1.1\r\nHost: writ\r\nContent-Ty")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = read_until_closed(&mut half).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "closed, or told so: {answer:?}"
    );

    let events = deployment.event_count().await;
    let mut bodiless = connect(&server).await;
    bodiless
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: writ\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\n",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = read_until_closed(&mut bodiless).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");
    assert_eq!(deployment.event_count().await, events);
}

#[tokio::test]
async fn a_body_declared_over_64_kib_is_refused_before_it_is_read() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let server = deployment.serve();
    let mut huge = connect(&server).await;
    huge.write_all(
        b"POST /token HTTP/1.1\r\nHost: writ\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 10000000\r\n\r\ngrant_type=",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Answered without waiting for the ten megabytes, which never come.
    let answer = read_response(&mut huge).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");

    // Sent without a length, the body is read to the cap and refused.
    let mut chunked = connect(&server).await;
    let mut request = b"POST /token HTTP/1.1\r\nHost: writ\r\n\
        Content-Type: application/x-www-form-urlencoded\r\n\
        Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..10 {
        request.extend_from_slice(b"2000\r\n");
        request.extend_from_slice(&[b'a'; 0x2000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    chunked
        .write_all(&request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = read_response(&mut chunked).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let api = Api::new(&server);
    let small = api
        .post(
            "/token",
            None,
            crate::oauth::form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(small.status, 401, "an ordinary request still works");
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_for_a_free_one() {
    let deployment = Deployment::with_keys(Backend::Sqlite).await;
    let server = deployment.serve_with(&["--max-connections", "2"]);
    let api = Api::new(&server);
    assert_eq!(api.status("/healthz").await, 200);
    // The client's own pooled connection may hold one slot: drop it.
    drop(api);
    let idle = [connect(&server).await, connect(&server).await];
    let waiting = tokio::spawn({
        let url = server.url("/healthz");
        async move {
            reqwest::Client::new()
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two were held"
    );
    drop(idle);
    let answered = tokio::time::timeout(DEADLINE, waiting)
        .await
        .unwrap_or_else(|_| panic!("not served once a connection closed"));
    assert_eq!(answered.ok().and_then(Result::ok), Some(200));
}
