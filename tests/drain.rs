//! Nothing is lost when connections end: keep-alive clients through
//! reloads, recycles and a stop, and error responses that reach a client
//! which keeps sending (a lingering close, not a reset).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{libc_sig, Server};

/// Clients that keep their connection for as long as the server does, as
/// browsers and HTTP client libraries do, and send their next request as
/// soon as a response is in. A request whose response never comes is
/// lost; a new connection the server refuses sent nothing and lost
/// nothing (the client would try elsewhere).
struct KeepAliveLoad {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    /// Responses that told the client to close.
    closes: Arc<AtomicUsize>,
    lost: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl KeepAliveLoad {
    fn start(addr: &str, clients: usize) -> KeepAliveLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let closes = Arc::new(AtomicUsize::new(0));
        let lost = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let addr = addr.to_string();
                let (stop, sent, answered, closes, lost) = (
                    stop.clone(),
                    sent.clone(),
                    answered.clone(),
                    closes.clone(),
                    lost.clone(),
                );
                thread::spawn(move || {
                    let mut conn: Option<TcpStream> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let s = match &mut conn {
                            Some(s) => s,
                            None => match TcpStream::connect(&addr) {
                                Ok(s) => {
                                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                                    conn.insert(s)
                                }
                                Err(_) => {
                                    thread::sleep(Duration::from_millis(20));
                                    continue;
                                }
                            },
                        };
                        if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
                            // Nothing reached the server for this request
                            // only if the write itself failed at once.
                            conn = None;
                            continue;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        match common::try_read_one(s).map(|(r, _)| r) {
                            Ok(r) if r.status == 200 => {
                                answered.fetch_add(1, Ordering::Relaxed);
                                if r.header("connection") == Some("close") {
                                    closes.fetch_add(1, Ordering::Relaxed);
                                    conn = None;
                                }
                            }
                            Ok(r) => {
                                lost.lock().unwrap().push(format!("status {}", r.status));
                                conn = None;
                            }
                            Err(e) => {
                                lost.lock().unwrap().push(e);
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        KeepAliveLoad {
            stop,
            sent,
            answered,
            closes,
            lost,
            threads,
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops the clients: (sent, answered, told to close, what was lost).
    fn finish(self) -> (usize, usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let lost = self.lost.lock().unwrap().clone();
        (
            self.sent.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
            self.closes.load(Ordering::Relaxed),
            lost,
        )
    }
}

fn workers(server: &Server) -> Vec<u32> {
    common::children(server.pid())
}

#[test]
fn keep_alive_clients_lose_no_request_through_reloads_recycles_and_a_stop() {
    let dir = common::master_app_dir("drain-keepalive", "1");
    let mut server = common::start_master_app(
        &dir,
        &[
            "--processes",
            "2",
            "--threads",
            "2",
            "--max-requests",
            "400",
            "--disable-logging",
        ],
    );
    assert!(common::wait_until(10, || workers(&server).len() == 2));
    let load = KeepAliveLoad::start(&server.http, 4);
    assert!(common::wait_until(10, || load.answered() > 50), "no load");
    for round in 1..=5 {
        let before = workers(&server);
        common::signal(server.pid(), libc_sig::SIGHUP);
        assert!(
            common::wait_until(30, || {
                let now = workers(&server);
                now.len() == 2 && now.iter().all(|p| !before.contains(p))
            }),
            "workers not replaced in round {round}:\n{}",
            server.log()
        );
    }
    // --max-requests recycles workers while the load goes on.
    assert!(
        common::wait_until(60, || server.log().matches("max-requests reached").count()
            >= 3),
        "fewer than 3 recycles:\n{}",
        server.log()
    );
    let answered = load.answered();
    assert!(common::wait_until(10, || load.answered() > answered + 50));
    common::signal(server.pid(), libc_sig::SIGTERM);
    assert!(
        common::wait_until(30, || !server.alive()),
        "the server did not stop:\n{}",
        server.log()
    );
    let (sent, answered, closes, lost) = load.finish();
    println!("{sent} sent, {answered} answered, {closes} with Connection: close");
    assert!(
        lost.is_empty(),
        "{} of {sent} requests lost: {:?}\n{}",
        lost.len(),
        &lost[..lost.len().min(10)],
        server.log()
    );
    assert_eq!(sent, answered);
    assert!(
        closes >= 8,
        "draining workers answered only {closes} requests with Connection: close"
    );
}

/// A client whose body is refused (413) while it is still sending it can
/// finish sending and then read the whole 413: the server shuts its side
/// down and reads on (nginx's lingering close). Closed with unread bytes,
/// the connection is reset, and a client still writing its body (as
/// HTTP client libraries do before they read) fails on the write and never
/// sees the response.
#[test]
fn an_error_response_reaches_a_client_that_keeps_sending() {
    let dir = common::master_app_dir("drain-linger", "1");
    let server = common::start_master_app(&dir, &["--limit-post", "1000"]);
    let body_len = 16 << 20;
    for framing in ["length", "chunked"] {
        let mut s = TcpStream::connect(&server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = match framing {
            "length" => format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {body_len}\r\n\r\n"),
            _ => "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
        };
        s.write_all(head.as_bytes()).unwrap();
        let piece = vec![b'a'; 64 * 1024];
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
        let mut written = 0;
        while written < body_len {
            let data = if framing == "length" { &piece } else { &chunk };
            if let Err(e) = s.write_all(data) {
                panic!("{framing}: the body's write failed after {written} bytes: {e}");
            }
            written += piece.len();
        }
        let mut reply = Vec::new();
        let ended = s.read_to_end(&mut reply);
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 413"), "{framing}: {text:?}");
        assert!(text.contains("limit-post"), "{text}");
        assert!(ended.is_ok(), "{framing}: not a clean close: {ended:?}");
        let _ = s.shutdown(Shutdown::Both);
    }
}
