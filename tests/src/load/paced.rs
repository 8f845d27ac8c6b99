//! The open-loop generator, built like wrk2: one thread of its own, one
//! keep-alive connection per task speaking HTTP/1.1 over a raw socket, and
//! connection `c` of `C` sending requests `c`, `c + C`, … each due at
//! `i / rate` after the start. Latency counts from the due time, so a
//! request that waits for its connection (a stalled server) shows up in
//! p99. The reqwest generator this replaces spent about 32 µs of CPU per
//! request, a third of a core at 30,000/s on a 2-core machine, which left
//! Writ less than the maximum the rate was taken from.
//!
//! Tokio's timer fires on whole milliseconds, after the deadline: waiting
//! for the due time itself added the generator's own 0–1 ms to every
//! latency (p50 0.9 ms at 22,000/s). A connection therefore wakes up to a
//! millisecond early, and a request sent before its due time counts from
//! when it was sent.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Stats, Target};

/// An answer slower than this counts as a failure.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The request's fixed part, and where to send it.
struct Endpoint {
    address: String,
    head: String,
}

impl Endpoint {
    fn of(target: &Target) -> Result<Self, String> {
        let url = reqwest::Url::parse(&target.url).map_err(|e| format!("{}: {e}", target.url))?;
        let host = url.host_str().ok_or("a URL without a host")?;
        let port = url.port_or_known_default().ok_or("a URL without a port")?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {host}:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n",
            url.path()
        );
        // Clients that authenticate in the body (client assertions) send none.
        if !target.authorization.is_empty() {
            head.push_str(&format!("Authorization: {}\r\n", target.authorization));
        }
        Ok(Self {
            address: format!("{host}:{port}"),
            head,
        })
    }

    fn request(&self, target: &Target, index: usize, into: &mut Vec<u8>) {
        let body = (target.body)(index);
        into.clear();
        into.extend_from_slice(self.head.as_bytes());
        if let Some(proof) = &target.dpop {
            into.extend_from_slice(format!("DPoP: {}\r\n", proof(index)).as_bytes());
        }
        into.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        into.extend_from_slice(body.as_bytes());
    }
}

/// Requests scheduled at `rate` per second for `duration` over
/// `connections` connections, on a thread of their own.
/// [`Stats::timer_lateness`] holds how late the generator sent the requests
/// whose connection was free before they were due.
pub async fn constant_rate(
    target: &Target,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> Stats {
    let target = target.clone();
    let run = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let local = tokio::task::LocalSet::new();
        runtime.block_on(local.run_until(paced(target, rate, connections.max(1), duration)))
    });
    match run.await {
        Ok(Ok(stats)) => stats,
        Ok(Err(why)) => failed(why),
        Err(panicked) => failed(panicked.to_string()),
    }
}

fn failed(why: String) -> Stats {
    let mut stats = Stats::default();
    stats.fail(why);
    stats
}

async fn paced(
    target: Target,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> Result<Stats, String> {
    let endpoint = std::rc::Rc::new(Endpoint::of(&target)?);
    // As in wrk, every connection is open before the first request is due:
    // a TCP handshake and the server's accept are not a request's latency
    // (opened at their due times, they were most of a run's first 100 ms
    // and much of its tail; docs/benchmarks.md). One that cannot connect
    // now tries again at its first request, which counts the failure.
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        streams.push(open(&endpoint.address).await.ok());
    }
    let schedule = Schedule {
        started: Instant::now(),
        interval: Duration::from_secs_f64(1.0 / rate.max(1.0)),
        step: connections,
        total: (rate * duration.as_secs_f64()) as usize,
    };
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(first, stream)| {
            let (target, endpoint) = (target.clone(), endpoint.clone());
            tokio::task::spawn_local(async move {
                connection(&target, &endpoint, schedule, first, stream).await
            })
        })
        .collect();
    let mut stats = Stats::default();
    for worker in workers {
        match worker.await {
            Ok(done) => stats.merge(done),
            Err(panicked) => stats.fail(panicked.to_string()),
        }
    }
    stats.elapsed = schedule.started.elapsed();
    stats.latencies.sort();
    stats.timer_lateness.sort();
    Ok(stats)
}

#[derive(Clone, Copy)]
struct Schedule {
    started: Instant,
    interval: Duration,
    step: usize,
    total: usize,
}

/// How much earlier than a request's due time its connection wakes: the
/// timer's resolution.
const TIMER_TICK: Duration = Duration::from_millis(1);

async fn connection(
    target: &Target,
    endpoint: &Endpoint,
    schedule: Schedule,
    first: usize,
    opened: Option<TcpStream>,
) -> Stats {
    let mut stats = Stats::default();
    let mut stream = opened;
    let (mut request, mut answer) = (Vec::with_capacity(1024), Vec::with_capacity(4096));
    let mut free_since = Instant::now();
    for index in (first..schedule.total).step_by(schedule.step) {
        let due = schedule.started + schedule.interval * index as u32;
        tokio::time::sleep_until(due.checked_sub(TIMER_TICK).unwrap_or(due).into()).await;
        let sent = Instant::now();
        if free_since <= due {
            stats
                .timer_lateness
                .push(sent.saturating_duration_since(due));
        }
        let counted_from = sent.min(due);
        endpoint.request(target, index, &mut request);
        let exchange = exchange(&mut stream, &endpoint.address, &request, &mut answer);
        match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(Ok(200)) => {
                stats.ok += 1;
                stats.latencies.push(counted_from.elapsed());
            }
            Ok(Ok(status)) => {
                let body = String::from_utf8_lossy(&answer);
                stats.fail(format!("{status}: {body}"));
            }
            Ok(Err(why)) => {
                stream = None;
                stats.fail(why);
            }
            Err(_) => {
                stream = None;
                stats.fail(format!("no answer within {ANSWER_TIMEOUT:?}"));
            }
        }
        free_since = Instant::now();
    }
    stats
}

async fn open(address: &str) -> Result<TcpStream, String> {
    let opened = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect {address}: {e}"))?;
    opened.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(opened)
}

/// Sends one request on the connection (opening one when it has none: its
/// first connect failed, or a failure closed it) and reads its answer: the
/// status, with the body left in `answer`.
async fn exchange(
    stream: &mut Option<TcpStream>,
    address: &str,
    request: &[u8],
    answer: &mut Vec<u8>,
) -> Result<u16, String> {
    if stream.is_none() {
        *stream = Some(open(address).await?);
    }
    let Some(socket) = stream.as_mut() else {
        return Err("no connection".to_owned());
    };
    socket
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    answer.clear();
    loop {
        if let Some((status, head, length)) = parse_head(answer)? {
            if answer.len() >= head + length {
                if answer.len() > head + length {
                    return Err("bytes after the answer to a request not yet sent".to_owned());
                }
                answer.drain(..head);
                return Ok(status);
            }
        }
        if socket
            .read_buf(answer)
            .await
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("the server closed the connection".to_owned());
        }
    }
}

/// The status, the head's length and the body's `Content-Length`, once the
/// head is complete.
fn parse_head(bytes: &[u8]) -> Result<Option<(u16, usize, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("a malformed answer: {e}")),
    };
    let length = content_length(response.headers).ok_or("an answer without Content-Length")?;
    Ok(Some((response.code.unwrap_or(0), head, length)))
}

fn content_length(headers: &[httparse::Header]) -> Option<usize> {
    headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .and_then(|header| std::str::from_utf8(header.value).ok()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{content_length, parse_head};
    use crate::load::{constant_rate, Target};

    /// Answers one request on `stream` with an empty 200.
    fn answer_one(stream: &mut TcpStream) -> std::io::Result<()> {
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            request.extend_from_slice(&chunk[..read]);
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut parsed = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = parsed.parse(&request) {
                if request.len() >= head + content_length(parsed.headers).unwrap_or(0) {
                    break;
                }
            }
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    }

    /// Two connections at 4 requests/s: the second's first request is due
    /// 250 ms after the first's. When the first request arrives, the second
    /// connection must already wait in the listener's backlog: a generator
    /// that opened it at its due time would not have connected yet.
    #[tokio::test]
    async fn every_connection_is_open_before_the_first_request() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || -> std::io::Result<usize> {
            let (first, _) = listener.accept()?;
            let mut byte = [0u8; 1];
            first.peek(&mut byte)?;
            // The second handshake finished before the first request was
            // sent; the kernel may still be queueing it. A generator that
            // connects at the due time would connect 250 ms later.
            listener.set_nonblocking(true)?;
            let mut open = vec![first];
            let deadline = Instant::now() + Duration::from_millis(100);
            while open.len() < 2 && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => open.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            let open_at_first_request = open.len();
            for stream in &mut open {
                stream.set_nonblocking(false)?;
                answer_one(stream)?;
            }
            Ok(open_at_first_request)
        });
        let target = Target {
            url: format!("http://{address}/token"),
            authorization: String::new(),
            body: Arc::new(|_| "a=b".to_owned()),
            dpop: None,
        };
        let stats = constant_rate(&target, 4.0, 2, Duration::from_millis(500)).await;
        let open_at_first_request = server.join().unwrap().unwrap();
        assert_eq!(open_at_first_request, 2);
        assert_eq!((stats.ok, stats.failed), (2, 0), "{:?}", stats.failures);
    }

    #[test]
    fn a_head_is_read_once_complete_with_its_body_length() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{\"a\":true}";
        assert_eq!(parse_head(&answer[..20]), Ok(None));
        assert_eq!(parse_head(answer), Ok(Some((200, 39, 12))));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
