//! A tiny SMTP server that records what it is sent (or refuses it), for the notification tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One email as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent after `DATA` (dot-stuffing undone).
    pub data: String,
}

impl Mail {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = self.data.split_once("\r\n\r\n")?;
        let mut value: Option<String> = None;
        for line in headers.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((key, v)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }
}

/// A tiny SMTP server on 127.0.0.1: greets, accepts (or refuses) every message and records it.
#[derive(Debug)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Mail>>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// A sink that accepts everything.
    pub async fn start() -> Self {
        Self::spawn(None).await
    }

    /// A sink that answers every `RCPT TO` with `reply` (e.g. `550 no such user`).
    pub async fn refusing(reply: &'static str) -> Self {
        Self::spawn(Some(reply)).await
    }

    async fn spawn(refuse_rcpt: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let _ = session(stream, sink, refuse_rcpt).await;
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<Mail> {
        self.received.lock().expect("mails").clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(
    stream: TcpStream,
    sink: Arc<Mutex<Vec<Mail>>>,
    refuse_rcpt: Option<&'static str>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer: &str = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250 sink"
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = command[command.len() - rest.len()..].trim().to_owned();
            "250 OK"
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:") {
            match refuse_rcpt {
                Some(refusal) => refusal,
                None => {
                    to.push(command[command.len() - rest.len()..].trim().to_owned());
                    "250 OK"
                }
            }
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            sink.lock().expect("mails").push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            });
            "250 OK queued"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 OK"
        } else {
            "502 not implemented"
        };
        write.write_all(format!("{answer}\r\n").as_bytes()).await?;
    }
}
