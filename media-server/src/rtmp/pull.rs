//! The tokio layer of the RTMP client: connect to `rtmp://HOST:PORT/APP/NAME`
//! and play (pull) or publish (push) a stream, driving the pure
//! [`ClientSession`]. Edges pull streams from origins with [`Puller`].

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{ClientEvent, ClientSession, Mode, parse_url};
use super::session::RtmpError;
use crate::media::Tag;

/// Why a pull or push failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Not `rtmp://HOST[:PORT]/APP/NAME`.
    #[error("not an rtmp://HOST[:PORT]/APP/NAME URL: {0}")]
    BadUrl(String),
    /// Socket trouble.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol.
    #[error("protocol: {0}")]
    Protocol(#[from] RtmpError),
    /// The server answered with an error status.
    #[error("refused: {code}: {description}")]
    Refused {
        /// E.g. `NetStream.Publish.BadName`.
        code: String,
        /// The server's words.
        description: String,
    },
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A connection that plays a remote stream.
#[derive(Debug)]
pub struct Puller {
    socket: TcpStream,
    session: ClientSession,
    ready: VecDeque<Tag>,
    buf: Vec<u8>,
    ended: bool,
}

async fn open(
    url: &str,
    mode: Mode,
    timeout: Duration,
) -> Result<(TcpStream, ClientSession, VecDeque<Tag>), PullError> {
    let (host, app, name) = parse_url(url).ok_or_else(|| PullError::BadUrl(url.to_owned()))?;
    let tc_url = format!("rtmp://{host}/{app}");
    let fut = async {
        let mut socket = TcpStream::connect(&host).await?;
        socket.set_nodelay(true)?;
        let mut session = ClientSession::new(
            mode,
            &tc_url,
            &app,
            &name,
            crate::config::RTMP_MAX_MESSAGE_SIZE,
        );
        if mode == Mode::Play {
            session = session.as_relay();
        }
        let mut early = VecDeque::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(out) = session.take_output() {
                socket.write_all(&out).await?;
            }
            if session.is_started() {
                return Ok((socket, session, early));
            }
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                return Err(PullError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            for ev in session.feed(&buf[..n])? {
                match ev {
                    ClientEvent::Status {
                        level,
                        code,
                        description,
                    } if level == "error" => {
                        return Err(PullError::Refused { code, description });
                    }
                    ClientEvent::Media(tag) => early.push_back(tag),
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| PullError::Timeout(timeout))?
}

impl Puller {
    /// Connects and starts playing `url`, waiting at most `timeout` for `Play.Start`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, PullError> {
        let (socket, session, ready) = open(url, Mode::Play, timeout).await?;
        Ok(Self {
            socket,
            session,
            ready,
            buf: vec![0u8; 64 * 1024],
            ended: false,
        })
    }

    /// The next tag; `Ok(None)` when the server ended the stream
    /// (`UnpublishNotify`, `Play.Stop`) or closed the connection.
    pub async fn next_tag(&mut self) -> Result<Option<Tag>, PullError> {
        loop {
            if let Some(tag) = self.ready.pop_front() {
                return Ok(Some(tag));
            }
            if self.ended {
                return Ok(None);
            }
            if let Some(out) = self.session.take_output() {
                self.socket.write_all(&out).await?;
            }
            let n = self.socket.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            for ev in self.session.feed(&self.buf[..n])? {
                match ev {
                    ClientEvent::Media(tag) => self.ready.push_back(tag),
                    ClientEvent::Status { code, .. }
                        if code == "NetStream.Play.UnpublishNotify"
                            || code == "NetStream.Play.Stop" =>
                    {
                        self.ended = true;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A connection that publishes to a remote server.
#[derive(Debug)]
pub struct Pusher {
    socket: TcpStream,
    session: ClientSession,
}

impl Pusher {
    /// Connects and starts publishing to `url` (refused: [`PullError::Refused`]).
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, PullError> {
        let (socket, session, _) = open(url, Mode::Publish, timeout).await?;
        Ok(Self { socket, session })
    }

    /// Sends one tag.
    pub async fn send(&mut self, tag: &Tag) -> Result<(), PullError> {
        self.session.send_media(tag);
        if let Some(out) = self.session.take_output() {
            self.socket.write_all(&out).await?;
        }
        Ok(())
    }

    /// Ends the publication (closes the connection).
    pub async fn finish(mut self) -> Result<(), PullError> {
        self.socket.shutdown().await?;
        Ok(())
    }
}
