//! Watchers' sockets written straight from the publisher: each event is framed once for all of
//! them, and a watcher's task is woken only when its socket could not take a frame at once.
//!
//! Server-to-client WebSocket frames are not masked, so the bytes of one frame are the same for
//! every watcher. The publisher tries a non-blocking write to each watcher's socket; what the
//! socket does not take waits in that watcher's [`Outlet`], and its task writes it once the
//! socket drains. A watcher behind by more than its budget is marked lagging (its task resyncs it
//! from a snapshot) instead of being queued for without limit.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::{Call, Frame};

/// Frames waiting for one watcher beyond which it counts as lagging and is resynced (never
/// silently skipped): ~50 s of a phone's fixes and audio.
pub const MAX_QUEUED_FRAMES: usize = 256;
/// ... and bytes.
pub const MAX_QUEUED_BYTES: usize = 1024 * 1024;
/// Most frames handed to one vectored write.
const MAX_SLICES: usize = 64;

/// The socket an outlet writes to: a TCP stream (a fake in tests). Only the outlet writes to it.
pub trait Wire: Send + Sync + 'static {
    /// Writes what the socket takes now without waiting, or fails with `WouldBlock`.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Ready once the socket may take more after a `WouldBlock`.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A message's opcode and payload.
fn parts_of(frame: &Frame) -> (OpCode, &Bytes) {
    match frame {
        Frame::Text(b) => (OpCode::Data(Data::Text), b),
        Frame::Binary(b) => (OpCode::Data(Data::Binary), b),
    }
}

/// The header of one final, unmasked frame (a server's) of `opcode` and `len` payload bytes,
/// with room for `reserve` more bytes after it.
fn header(opcode: OpCode, len: usize, reserve: usize) -> Vec<u8> {
    let header = FrameHeader { opcode, ..FrameHeader::default() };
    let mut out = Vec::with_capacity(header.len(len as u64) + reserve);
    header.format(len as u64, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// A message as it goes on the wire, header and payload in one buffer.
pub fn encode(frame: &Frame) -> Bytes {
    let (opcode, payload) = parts_of(frame);
    encode_as(opcode, payload)
}

/// A message as header and payload apart, the payload's bytes shared (not copied): for frames
/// that go to one watcher only (a snapshot, a replay from the ring).
pub fn encode_parts(frame: &Frame) -> [Bytes; 2] {
    let (opcode, payload) = parts_of(frame);
    [Bytes::from(header(opcode, payload.len(), 0)), payload.clone()]
}

/// One final, unmasked frame of `opcode` (a server's frame).
pub fn encode_as(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut out = header(opcode, payload.len(), payload.len());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Bytes of a frame waiting to be written: the whole frame, or its header or payload.
struct Piece {
    bytes: Bytes,
    /// Published while the watcher was behind: counts against its budget (what it starts
    /// with, a snapshot or a replay, and the task's own pings and closes do not).
    counted: bool,
    /// The frame's last piece.
    last: bool,
}

/// What waits for one watcher, and what its task is asked to do.
#[derive(Default)]
struct Backlog {
    /// Pieces not yet written, oldest first; the front one may be partly written already.
    queue: VecDeque<Piece>,
    bytes: usize,
    /// Frames and bytes of them that count against the budget.
    counted_frames: usize,
    counted_bytes: usize,
    /// Part of the front frame is written: it must be finished before anything else goes out.
    started: bool,
    /// Frames were refused for the budget: the watcher needs a fresh snapshot.
    lagged: bool,
    /// A mirror's call to its watchers.
    call: Option<Call>,
    /// Nothing more is written until the task starts the watcher over (after a call: events of
    /// the mirror's new run must not reach the socket before the snapshot they follow).
    held: bool,
    /// The socket failed: nothing more is written.
    broken: bool,
}

impl Backlog {
    fn push(&mut self, bytes: Bytes, counted: bool, last: bool) {
        self.bytes += bytes.len();
        if counted {
            self.counted_bytes += bytes.len();
            self.counted_frames += usize::from(last);
        }
        self.queue.push_back(Piece { bytes, counted, last });
    }

    /// Queues whole frames the budget does not count.
    fn push_uncounted(&mut self, frames: impl IntoIterator<Item = [Bytes; 2]>) {
        for [head, payload] in frames {
            self.push(head, false, false);
            self.push(payload, false, true);
        }
    }

    /// Forgets the first `n` bytes (written); returns how many whole frames that completed.
    fn advance(&mut self, mut n: usize) -> u64 {
        self.bytes -= n;
        let mut done = 0;
        while n > 0 {
            let front = self.queue.front_mut().expect("never more written than queued");
            let len = front.bytes.len();
            let k = n.min(len);
            if front.counted {
                self.counted_bytes -= k;
            }
            if k < len {
                front.bytes = front.bytes.slice(k..);
                self.started = true;
                return done;
            }
            n -= k;
            let piece = self.queue.pop_front().expect("just seen");
            if piece.last {
                self.counted_frames -= usize::from(piece.counted);
                done += 1;
            }
            self.started = !piece.last;
        }
        done
    }
}

/// One watcher's way out: its socket and what waits for it.
pub struct Outlet {
    wire: Arc<dyn Wire>,
    backlog: Mutex<Backlog>,
    wake: Notify,
}

/// What a watcher's task found when it was woken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// It fell behind by more than its budget: resync it.
    pub lagged: bool,
    /// Its mirror's call.
    pub call: Option<Call>,
    /// Its socket failed.
    pub broken: bool,
}

impl Outlet {
    /// An outlet on `wire` with `first` waiting (the snapshot its task writes first).
    pub fn new(wire: Arc<dyn Wire>, first: impl IntoIterator<Item = [Bytes; 2]>) -> Arc<Self> {
        let mut backlog = Backlog::default();
        backlog.push_uncounted(first);
        Arc::new(Self { wire, backlog: Mutex::new(backlog), wake: Notify::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `frame` now if the socket takes it whole (true), else queues it (waking the task
    /// when the queue was empty) within the budget; beyond it the frame is dropped and the
    /// watcher marked lagging.
    pub fn send(&self, frame: &Bytes) -> bool {
        let mut b = self.lock();
        if b.broken || b.lagged || b.held {
            return false;
        }
        if b.queue.is_empty() {
            match self.wire.try_write_vectored(&[IoSlice::new(frame)]) {
                Ok(n) if n == frame.len() => return true,
                Ok(n) => {
                    b.push(frame.slice(n..), true, true);
                    b.started = n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => b.push(frame.clone(), true, true),
                Err(_) => b.broken = true,
            }
        } else if b.counted_frames >= MAX_QUEUED_FRAMES || b.counted_bytes + frame.len() > MAX_QUEUED_BYTES {
            b.lagged = true;
        } else {
            // The task is already draining (it was woken when the queue began).
            b.push(frame.clone(), true, true);
            return false;
        }
        drop(b);
        self.wake.notify_one();
        false
    }

    /// Queues a frame of the task's own (a ping, a pong, a close) whatever the budget: the task
    /// writes it with [`Outlet::drain`].
    pub fn push(&self, frame: Bytes) {
        self.lock().push(frame, false, true);
    }

    /// Tells the task of its mirror's call; nothing more is written until [`Outlet::restart`].
    pub fn call(&self, call: Call) {
        let mut b = self.lock();
        b.call = Some(call);
        b.held = true;
        drop(b);
        self.wake.notify_one();
    }

    /// Resolves when the outlet has something for its task.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// What the task must do, as flagged since it last looked (flags are cleared).
    pub fn due(&self) -> Due {
        let mut b = self.lock();
        Due { lagged: std::mem::take(&mut b.lagged), call: b.call.take(), broken: b.broken }
    }

    /// Starts the watcher over with `frames` (a snapshot): what waited for it is dropped, but for
    /// a frame already partly written, which is finished first.
    pub fn restart(&self, frames: impl IntoIterator<Item = [Bytes; 2]>) {
        let mut b = self.lock();
        let old = std::mem::take(&mut b.queue);
        b.bytes = 0;
        b.counted_bytes = 0;
        b.counted_frames = 0;
        b.lagged = false;
        b.held = false;
        if b.started {
            // The rest of the frame under way, up to its last piece.
            for p in old {
                let last = p.last;
                b.push(p.bytes, false, last);
                if last {
                    break;
                }
            }
        }
        b.push_uncounted(frames);
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Writes everything waiting, waiting for the socket as needed; returns the frames written.
    /// The caller bounds the time it may take.
    pub async fn drain(&self) -> io::Result<u64> {
        let mut written = 0;
        loop {
            {
                let mut b = self.lock();
                if b.broken {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                if b.queue.is_empty() {
                    // Most watchers' queues stay empty (the publisher's writes complete): an
                    // idle one keeps no buffer.
                    b.queue = VecDeque::new();
                    return Ok(written);
                }
                let slices: Vec<IoSlice<'_>> =
                    b.queue.iter().take(MAX_SLICES).map(|p| IoSlice::new(&p.bytes)).collect();
                match self.wire.try_write_vectored(&slices) {
                    Ok(0) => {
                        b.broken = true;
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    Ok(n) => {
                        drop(slices);
                        written += b.advance(n);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        b.broken = true;
                        return Err(e);
                    }
                }
            }
            std::future::poll_fn(|cx| self.wire.poll_write_ready(cx)).await?;
        }
    }
}

/// The watchers of one session on this node.
#[derive(Default)]
pub struct Outlets(Mutex<Vec<Arc<Outlet>>>);

impl Outlets {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Outlet>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `frame` to every watcher (framed once); returns how many took it at once.
    pub fn send(&self, frame: &Frame) -> u64 {
        let list = self.lock();
        if list.is_empty() {
            return 0;
        }
        let bytes = encode(frame);
        let sent = list.iter().map(|o| u64::from(o.send(&bytes))).sum();
        crate::telemetry::frames_relayed().increment(sent);
        sent
    }

    /// Tells every watcher of a mirror's call.
    pub fn call(&self, call: Call) {
        for o in self.lock().iter() {
            o.call(call);
        }
    }

    /// Adds a watcher.
    pub fn add(&self, outlet: Arc<Outlet>) {
        self.lock().push(outlet);
    }

    /// Removes a watcher.
    pub fn remove(&self, outlet: &Arc<Outlet>) {
        self.lock().retain(|o| !Arc::ptr_eq(o, outlet));
    }

    /// How many watch.
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A socket that takes `room` bytes, then would block until given more room.
    #[derive(Default)]
    pub(crate) struct FakeWire {
        pub(crate) taken: Mutex<Vec<u8>>,
        pub(crate) room: Mutex<usize>,
    }

    impl FakeWire {
        pub(crate) fn with_room(room: usize) -> Arc<Self> {
            Arc::new(Self { taken: Mutex::default(), room: Mutex::new(room) })
        }

        pub(crate) fn taken(&self) -> Vec<u8> {
            self.taken.lock().unwrap().clone()
        }
    }

    impl Wire for FakeWire {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            let mut taken = self.taken.lock().unwrap();
            for b in bufs {
                let k = b.len().min(*room);
                taken.extend_from_slice(&b[..k]);
                *room -= k;
                n += k;
                if *room == 0 {
                    break;
                }
            }
            Ok(n)
        }

        fn poll_write_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if *self.room.lock().unwrap() > 0 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn frames_are_encoded_as_rfc6455_server_frames() {
        let small = encode(&Frame::Text(Bytes::from_static(b"hi")));
        assert_eq!(&small[..], &[0x81, 2, b'h', b'i']);
        let mid = encode(&Frame::Binary(Bytes::from(vec![7u8; 300])));
        assert_eq!(&mid[..4], &[0x82, 126, 1, 44]);
        assert_eq!(mid.len(), 304);
        let big = encode(&Frame::Binary(Bytes::from(vec![7u8; 70_000])));
        assert_eq!(&big[..2], &[0x82, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
    }

    #[tokio::test]
    async fn a_full_socket_queues_in_order_and_the_task_finishes_partial_frames() {
        let wire = FakeWire::with_room(5);
        let outlet = Outlet::new(wire.clone(), []);
        let (a, b) = (Bytes::from_static(b"aaaa"), Bytes::from_static(b"bbbb"));
        assert!(outlet.send(&a), "room for the first: written at once");
        assert!(!outlet.send(&b), "one byte of the second fits");
        assert!(!outlet.send(&a), "queued behind it");
        assert_eq!(outlet.queued_bytes(), 7);
        // A snapshot now keeps the partly written frame whole, then replaces the rest.
        outlet.restart([encode_parts(&Frame::Text(Bytes::from_static(b"S")))]);
        *wire.room.lock().unwrap() = 100;
        assert_eq!(outlet.drain().await.unwrap(), 2);
        assert_eq!(wire.taken(), b"aaaabbbb\x81\x01S");
    }

    #[tokio::test]
    async fn a_call_holds_the_watcher_until_it_starts_over() {
        let wire = FakeWire::with_room(100);
        let outlet = Outlet::new(wire.clone(), []);
        outlet.call(Call::Resync);
        assert!(!outlet.send(&Bytes::from_static(b"new run")));
        assert_eq!(outlet.due().call, Some(Call::Resync));
        assert!(!outlet.send(&Bytes::from_static(b"still")), "held after the task looked too");
        assert!(wire.taken().is_empty(), "nothing of the new run before its snapshot");
        outlet.restart([encode_parts(&Frame::Text(Bytes::from_static(b"S")))]);
        assert!(!outlet.send(&Bytes::from_static(b"e")), "queued behind the snapshot");
        assert_eq!(outlet.drain().await.unwrap(), 2);
        assert!(outlet.send(&Bytes::from_static(b"f")), "written at once again");
        assert_eq!(wire.taken(), b"\x81\x01Sef");
    }

    #[test]
    fn a_watcher_over_budget_is_marked_lagging_not_queued_for() {
        // What it starts with (here a 2 MiB snapshot) is not held against it.
        let snapshot = encode_parts(&Frame::Binary(Bytes::from(vec![0u8; 2 << 20])));
        let start = snapshot[0].len() + snapshot[1].len();
        let outlet = Outlet::new(FakeWire::with_room(0), [snapshot]);
        let f = Bytes::from(vec![0u8; 1000]);
        for _ in 0..MAX_QUEUED_FRAMES {
            outlet.send(&f);
        }
        assert_eq!(outlet.queued_bytes(), start + MAX_QUEUED_FRAMES * 1000);
        assert_eq!(outlet.due(), Due::default(), "within the budget");
        outlet.send(&f);
        assert_eq!(outlet.queued_bytes(), start + MAX_QUEUED_FRAMES * 1000, "not queued");
        assert_eq!(outlet.due(), Due { lagged: true, call: None, broken: false });
        outlet.restart([]);
        assert_eq!(outlet.queued_bytes(), 0);
        assert_eq!(outlet.due(), Due::default());
    }
}
