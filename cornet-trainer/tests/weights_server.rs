//! A local HTTP server standing in for the published weights' bucket: it serves files by name,
//! answers 404 for others, counts the requests it gets, and misbehaves as servers do: it can
//! break a transfer off mid-body (hyper aborts the connection when a body fails, as a dropped
//! download looks to a client), fall silent mid-body, or send a body without end.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// What the server sends for one file name.
#[derive(Clone)]
pub enum Reply {
    /// The whole file.
    Whole(Vec<u8>),
    /// The file's Content-Length, then only its first `sent` bytes before the connection drops.
    CutAfter { file: Vec<u8>, sent: usize },
    /// The file's Content-Length, then its first `sent` bytes, then nothing, the connection
    /// kept open.
    StallAfter { file: Vec<u8>, sent: usize },
    /// Zeros without end, announcing `announced` bytes (a Content-Length) or nothing (chunked).
    Endless { announced: Option<u64> },
}

/// A server on 127.0.0.1 running on its own thread for as long as the test lives.
pub struct WeightsServer {
    base_url: String,
    requests: Arc<AtomicUsize>,
}

impl WeightsServer {
    /// Serves `files` (by file name) at `<base_url>/<name>`.
    pub fn start(files: HashMap<String, Reply>) -> WeightsServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base_url = format!("http://{}/weights", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let files = Arc::new(files);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(listener, files, counted));
        });
        WeightsServer { base_url, requests }
    }

    /// The URL the files are under (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(
    listener: std::net::TcpListener,
    files: Arc<HashMap<String, Reply>>,
    requests: Arc<AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let (files, requests) = (files.clone(), requests.clone());
        let answer = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            requests.fetch_add(1, Ordering::SeqCst);
            let name = request.uri().path().trim_start_matches("/weights/");
            let response = reply(files.get(name));
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        tokio::spawn(async move {
            // A cut transfer ends its connection with an error; that is the point.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), answer)
                .await;
        });
    }
}

type ReplyBody = BoxBody<Bytes, std::io::Error>;

fn reply(file: Option<&Reply>) -> Response<ReplyBody> {
    let Some(file) = file else {
        let mut response = Response::new(whole(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    Response::new(match file {
        Reply::Whole(file) => whole(Bytes::from(file.clone())),
        Reply::CutAfter { file, sent } => Script {
            head: Some(Bytes::copy_from_slice(&file[..*sent])),
            then: Then::Fail,
            announced: Some(file.len() as u64),
        }
        .boxed(),
        Reply::StallAfter { file, sent } => Script {
            head: Some(Bytes::copy_from_slice(&file[..*sent])),
            then: Then::Stall,
            announced: Some(file.len() as u64),
        }
        .boxed(),
        Reply::Endless { announced } => Script {
            head: None,
            then: Then::Zeros,
            announced: *announced,
        }
        .boxed(),
    })
}

/// A body of `bytes`, sent whole.
fn whole(bytes: Bytes) -> ReplyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A body that sends `head`, then does `then`, having announced `announced` bytes (if any).
struct Script {
    head: Option<Bytes>,
    then: Then,
    announced: Option<u64>,
}

/// What a [`Script`] body does after its head.
enum Then {
    /// Fails: hyper aborts the connection.
    Fail,
    /// Sends nothing more, ever.
    Stall,
    /// Sends 64 KiB of zeros at each poll, for ever.
    Zeros,
}

impl Body for Script {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        match self.then {
            Then::Fail => Poll::Ready(Some(Err(std::io::Error::other(
                "the transfer is cut off here",
            )))),
            // Never woken: the connection stays open and silent until the client leaves.
            Then::Stall => Poll::Pending,
            Then::Zeros => Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; 64 << 10]))))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.announced {
            Some(length) => SizeHint::with_exact(length),
            None => SizeHint::default(),
        }
    }
}
