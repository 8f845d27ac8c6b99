//! The HTTP/1.1 accept loop. `axum::serve` has no header-read timeout and
//! no connection cap, so a client that sends half its headers, or opens
//! thousands of idle connections, holds the server's memory and sockets
//! for as long as it likes. Here each connection:
//! - holds one of `max_connections` permits; past the cap, new connections
//!   wait in the kernel's backlog until one closes;
//! - must deliver its request headers within `header_read_timeout`
//!   (hyper's own timer, reset for each request of a kept-alive
//!   connection), or is closed;
//! - carries its peer address as axum's `ConnectInfo`.
//!
//! Body deadlines and size caps are per request: `writ_edge::body`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` until `shutdown` resolves, then lets open connections
/// finish their requests (each is told to close after its current one).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closing_seen) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = connection_service(app.clone(), peer);
        let mut closing = closing_seen.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    Ok(()) = closing.changed() => connection.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    drop(listener);
    closing.send_replace(true);
    // Every connection task holds a permit until it ends.
    let _all = permits
        .acquire_many(u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX))
        .await;
}

fn connection_service(
    app: Router,
    peer: SocketAddr,
) -> TowerToHyperService<
    impl tower::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
            Future = impl Send,
        > + Clone,
> {
    let service = tower::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    TowerToHyperService::new(service)
}
