//! A minimal HTTP/1.1 client over keep-alive connections, one per replica and caller. It tells
//! a request the replica never read (no byte of an answer came back: connect refused, or a
//! kept-alive connection closed under it) from one it read and then lost (an answer started
//! and broke off), which the rolling restart counts as a failure.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::Duration,
};

pub struct Answer {
    pub status: u16,
    pub body: String,
    pub session: Option<String>,
}

pub enum Failure {
    /// Nothing came back: the request may be sent again elsewhere.
    NotRead,
    /// An answer started and did not end.
    Lost(io::Error),
}

#[derive(Default)]
pub struct Connection {
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    pub fn request(
        &mut self,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, Failure> {
        let fresh = self.stream.is_none();
        let result = self.try_request(addr, method, path, headers, body);
        if let Err(Failure::NotRead) = &result
            && !fresh
        {
            // A kept-alive connection the replica closed between requests: once on a new one.
            self.stream = None;
            return self.try_request(addr, method, path, headers, body);
        }
        result
    }

    fn try_request(
        &mut self,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, Failure> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(addr).map_err(|_| Failure::NotRead)?;
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .map_err(|_| Failure::NotRead)?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(BufReader::new(stream));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::NotRead);
        };
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        if stream.get_mut().write_all(request.as_bytes()).is_err() {
            self.stream = None;
            return Err(Failure::NotRead);
        }
        let result = read_answer(stream);
        match &result {
            Ok((_, close)) if !close => {}
            _ => self.stream = None,
        }
        result.map(|(answer, _)| answer)
    }
}

/// The answer and whether the replica closes the connection after it.
fn read_answer(stream: &mut BufReader<TcpStream>) -> Result<(Answer, bool), Failure> {
    let mut status_line = String::new();
    match stream.read_line(&mut status_line) {
        Ok(0) => return Err(Failure::NotRead),
        Ok(_) => {}
        // Read and never answered: a hung request is lost, not safe to send again.
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(Failure::Lost(err));
        }
        Err(_) => return Err(Failure::NotRead),
    }
    let lost = |err: io::Error| Failure::Lost(err);
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| lost(io::Error::other(format!("status line {status_line:?}"))))?;
    let (mut length, mut chunked, mut close, mut session) = (0usize, false, false, None);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).map_err(lost)? == 0 {
            return Err(lost(io::ErrorKind::UnexpectedEof.into()));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "mcp-session-id" => session = Some(value.to_owned()),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if stream.read_line(&mut size).map_err(lost)? == 0 {
                return Err(lost(io::ErrorKind::UnexpectedEof.into()));
            }
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| lost(io::Error::other("chunk size")))?;
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).map_err(lost)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        stream.read_exact(&mut body).map_err(lost)?;
    }
    Ok((
        Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            session,
        },
        close,
    ))
}
