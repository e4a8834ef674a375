//! The client side of RTMP (play or publish to a remote server) as a pure
//! state machine, for edges pulling from origins and for load tools:
//! handshake, `connect`, `createStream`, then `play` or `publish`.

use bytes::{Bytes, BytesMut};

use super::chunk::{self, Decoder, csid};
use super::handshake::ClientHandshake;
use super::message::{self, Command, type_id, user_control};
use super::session::{RtmpError, WINDOW_ACK_SIZE};
use crate::amf0::Value;
use crate::flv;
use crate::media::{Tag, TagKind};

/// Chunk size the client sends with.
pub const CLIENT_CHUNK_SIZE: u32 = 4096;

/// Play or publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Receive a stream.
    Play,
    /// Send a stream.
    Publish,
}

/// What the server said.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `NetStream.Play.Start` / `NetStream.Publish.Start`.
    Started,
    /// Any `onStatus` (including the start ones) or `_error`.
    Status {
        /// `status` or `error`.
        level: String,
        /// E.g. `NetStream.Publish.BadName`.
        code: String,
        /// Human text.
        description: String,
    },
    /// A media or script tag (play mode).
    Media(Tag),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Starting,
    Started,
}

/// A client connection.
#[derive(Debug)]
pub struct ClientSession {
    mode: Mode,
    app: String,
    tc_url: String,
    name: String,
    state: State,
    handshake: ClientHandshake,
    input: BytesMut,
    out: BytesMut,
    decoder: Decoder,
    stream_id: u32,
    received: u64,
    last_ack: u64,
    peer_window: u32,
    relay: bool,
}

/// The `connect` property by which a Fleetcast edge's pull says it is one
/// (see [`ClientSession::as_relay`]).
pub const RELAY_PROPERTY: &str = "fleetcastRelay";

/// Splits `rtmp://host[:port]/app/name` into (host:port, app, name).
pub fn parse_url(url: &str) -> Option<(String, String, String)> {
    let rest = url.strip_prefix("rtmp://")?;
    let (host, path) = rest.split_once('/')?;
    let (app, name) = path.split_once('/')?;
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:1935")
    };
    (!app.is_empty() && !name.is_empty()).then(|| (host, app.to_owned(), name.to_owned()))
}

impl ClientSession {
    /// Starts a session (C0+C1 are queued at once).
    pub fn new(mode: Mode, tc_url: &str, app: &str, name: &str, max_message_size: u32) -> Self {
        let mut out = BytesMut::new();
        let handshake = ClientHandshake::start(&mut out, 0x5eed);
        Self {
            mode,
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            name: name.to_owned(),
            state: State::Handshake,
            handshake,
            input: BytesMut::new(),
            out,
            decoder: Decoder::new(max_message_size),
            stream_id: 1,
            received: 0,
            last_ack: 0,
            peer_window: 0,
            relay: false,
        }
    }

    /// Marks this play as an edge's relay pull: the server then hands it
    /// every frame as it comes instead of in `playback.write_interval_ms`
    /// batches, so tiers do not add up the batching delay (it serves many
    /// viewers, who are batched on the edge). Claiming it only costs the
    /// claimer's server some CPU.
    #[must_use]
    pub fn as_relay(mut self) -> Self {
        self.relay = true;
        self
    }

    /// The bytes to send now.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// True after `Play.Start` / `Publish.Start`.
    pub fn is_started(&self) -> bool {
        self.state == State::Started
    }

    /// Queues a tag to publish (publish mode, after [`ClientEvent::Started`]).
    pub fn send_media(&mut self, tag: &Tag) {
        let (type_id, csid) = match tag.kind {
            TagKind::Audio => (type_id::AUDIO, csid::AUDIO),
            TagKind::Video => (type_id::VIDEO, csid::VIDEO),
            TagKind::Script => (type_id::DATA_AMF0, csid::DATA),
        };
        chunk::encode(
            &mut self.out,
            csid,
            type_id,
            self.stream_id,
            tag.timestamp,
            &tag.data,
            CLIENT_CHUNK_SIZE as usize,
        );
    }

    fn command(&mut self, values: &[Value], stream_id: u32) {
        let cs = if stream_id == 0 {
            csid::COMMAND
        } else {
            csid::STATUS
        };
        message::amf(
            &mut self.out,
            cs,
            type_id::COMMAND_AMF0,
            stream_id,
            values,
            CLIENT_CHUNK_SIZE as usize,
        );
    }

    /// Feeds received bytes.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<ClientEvent>, RtmpError> {
        self.received += data.len() as u64;
        self.input.extend_from_slice(data);
        let mut events = Vec::new();
        if self.state == State::Handshake {
            if !self.handshake.feed(&mut self.input, &mut self.out)? {
                return Ok(events);
            }
            message::set_chunk_size(&mut self.out, CLIENT_CHUNK_SIZE);
            message::window_ack_size(&mut self.out, WINDOW_ACK_SIZE);
            let mut obj = Value::object([
                ("app", Value::string(&self.app)),
                ("type", Value::string("nonprivate")),
                (
                    "flashVer",
                    Value::string("FMLE/3.0 (compatible; fleetcast)"),
                ),
                ("tcUrl", Value::string(&self.tc_url)),
            ]);
            if self.relay
                && let Value::Object(props) = &mut obj
            {
                props.push((RELAY_PROPERTY.to_owned(), Value::Boolean(true)));
            }
            self.command(&[Value::string("connect"), Value::Number(1.0), obj], 0);
            self.state = State::Connecting;
        }
        while let Some(msg) = self.decoder.decode(&mut self.input)? {
            self.on_message(msg, &mut events)?;
        }
        if self.peer_window > 0 && self.received - self.last_ack >= u64::from(self.peer_window) {
            self.last_ack = self.received;
            #[allow(clippy::cast_possible_truncation)]
            message::ack(&mut self.out, self.received as u32);
        }
        Ok(events)
    }

    // Conditions stay inside their arm: one arm per message type reads best.
    #[allow(clippy::collapsible_match)]
    fn on_message(
        &mut self,
        msg: chunk::Message,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), RtmpError> {
        let first_u32 = |p: &[u8]| {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match msg.type_id {
            type_id::SET_CHUNK_SIZE => {
                let size = first_u32(&msg.payload)
                    .ok_or_else(|| RtmpError::Protocol("short Set Chunk Size".into()))?;
                self.decoder.set_chunk_size(size & 0x7fff_ffff)?;
            }
            type_id::WINDOW_ACK_SIZE => self.peer_window = first_u32(&msg.payload).unwrap_or(0),
            type_id::USER_CONTROL => {
                if msg.payload.len() >= 6
                    && u16::from_be_bytes([msg.payload[0], msg.payload[1]])
                        == user_control::PING_REQUEST
                {
                    let ts = first_u32(&msg.payload[2..]).unwrap_or(0);
                    message::user_control(
                        &mut self.out,
                        user_control::PING_RESPONSE,
                        ts,
                        CLIENT_CHUNK_SIZE as usize,
                    );
                }
            }
            type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0 => {
                let kind = match msg.type_id {
                    type_id::AUDIO => TagKind::Audio,
                    type_id::VIDEO => TagKind::Video,
                    _ => TagKind::Script,
                };
                let data = if kind == TagKind::Script {
                    flv::strip_set_data_frame(msg.payload)
                } else {
                    msg.payload
                };
                if kind == TagKind::Script && flv::script_name(&data) == Some("|RtmpSampleAccess") {
                    return Ok(());
                }
                events.push(ClientEvent::Media(Tag {
                    kind,
                    timestamp: msg.timestamp,
                    data,
                }));
            }
            type_id::COMMAND_AMF0 => {
                let cmd = Command::decode(&msg.payload)?;
                self.on_command(&cmd, events);
            }
            _ => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn on_command(&mut self, cmd: &Command, events: &mut Vec<ClientEvent>) {
        let info = |v: Option<&Value>| {
            let s = |k: &str| {
                v.and_then(|o| o.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (s("level"), s("code"), s("description"))
        };
        match (cmd.name.as_str(), self.state) {
            ("_result", State::Connecting) => {
                events.push(ClientEvent::Connected);
                if self.mode == Mode::Publish {
                    let n = Value::string(&self.name);
                    self.command(
                        &[
                            Value::string("releaseStream"),
                            Value::Number(2.0),
                            Value::Null,
                            n.clone(),
                        ],
                        0,
                    );
                    self.command(
                        &[
                            Value::string("FCPublish"),
                            Value::Number(3.0),
                            Value::Null,
                            n,
                        ],
                        0,
                    );
                }
                self.command(
                    &[
                        Value::string("createStream"),
                        Value::Number(4.0),
                        Value::Null,
                    ],
                    0,
                );
                self.state = State::CreatingStream;
            }
            ("_result", State::CreatingStream) if (cmd.transaction - 4.0).abs() < f64::EPSILON => {
                // Stream ids are small integers.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let id = cmd.args.first().and_then(Value::as_f64).unwrap_or(1.0) as u32;
                self.stream_id = id;
                let n = Value::string(&self.name);
                match self.mode {
                    Mode::Play => {
                        self.command(
                            &[
                                Value::string("play"),
                                Value::Number(0.0),
                                Value::Null,
                                n,
                                Value::Number(-1000.0),
                            ],
                            id,
                        );
                        message::set_buffer_length(
                            &mut self.out,
                            id,
                            1000,
                            CLIENT_CHUNK_SIZE as usize,
                        );
                    }
                    Mode::Publish => {
                        self.command(
                            &[
                                Value::string("publish"),
                                Value::Number(0.0),
                                Value::Null,
                                n,
                                Value::string("live"),
                            ],
                            id,
                        );
                    }
                }
                self.state = State::Starting;
            }
            ("_error", _) => {
                let (level, code, description) = info(cmd.args.first());
                events.push(ClientEvent::Status {
                    level,
                    code,
                    description,
                });
            }
            ("onStatus", _) => {
                let (level, code, description) = info(cmd.args.first());
                if code == "NetStream.Play.Start" || code == "NetStream.Publish.Start" {
                    self.state = State::Started;
                    events.push(ClientEvent::Started);
                }
                events.push(ClientEvent::Status {
                    level,
                    code,
                    description,
                });
            }
            _ => {}
        }
    }
}
