//! A frame as sockets receive it: serialized once, shared by every socket, free of web types.

use bytes::Bytes;

/// One ready-to-send WebSocket message. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON text message (always valid UTF-8: it is only built by [`Frame::json`]).
    Text(Bytes),
    /// A binary message (a watch-protocol audio frame).
    Binary(Bytes),
}

impl Frame {
    /// A protocol message as a text frame.
    pub fn json<T: serde::Serialize>(m: &T) -> Self {
        Frame::Text(Bytes::from(serde_json::to_vec(m).expect("protocol types serialize")))
    }

    /// Its payload.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}
