//! PyTorch TCPStore's wire format (`torch/csrc/distributed/c10d/TCPStore*.{hpp,cpp}`).
//!
//! A request is one command byte followed by its fields; integers are little-endian (the
//! native order of every machine PyTorch runs on), a string is its `u64` length followed by its
//! bytes, and a list of strings is its `u64` count followed by the strings. A connection opens
//! with `VALIDATE` and the magic number, then `PING` with a nonce that the server echoes.
//!
//! One addition of ours, [`Command::Authenticate`], is sent only to a store of ours that asks
//! for the job's secret (never to PyTorch's), right after the magic number:
//!
//! ```text
//! client: AUTHENTICATE, its challenge (32 bytes)
//! server: its challenge (32 bytes), its proof (32 bytes)
//! client: its proof (32 bytes)
//! server: AUTH_ACCEPTED (1 byte), or it closes the connection
//! ```
//!
//! (proofs as [`crate::distributed::auth`] makes them, for [`AUTH_PURPOSE`]).

/// `validationMagicNumber`: the first thing a client sends, after [`Command::Validate`].
pub const MAGIC: u32 = 0x3C85_F7CE;

/// What a store's proofs are for (see [`crate::distributed::auth::Exchange`]).
pub const AUTH_PURPOSE: &str = "rendezvous store";

/// The server's last word of a successful [`Command::Authenticate`].
pub const AUTH_ACCEPTED: u8 = 1;

/// The longest key either end accepts (a job's keys are paths of a few dozen bytes).
pub const MAX_KEY_LEN: u64 = 4 << 10;

/// The longest value either end accepts (a job's values are addresses and NCCL's 128-byte id).
pub const MAX_VALUE_LEN: u64 = 1 << 20;

/// The most bytes of keys and values one request may carry, and one reply.
pub const MAX_MESSAGE_LEN: u64 = 4 << 20;

/// The most keys one request may name.
pub const MAX_KEYS: u64 = 1 << 12;

/// `QueryType`: the first byte of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// `u32` magic. No reply.
    Validate = 0,
    /// key, value. No reply.
    Set = 1,
    /// key, expected, desired. Replies with the value now held.
    CompareSet = 2,
    /// key (sent after a [`Command::Wait`] for it). Replies with the value.
    Get = 3,
    /// key, `i64`. Replies with the new `i64` total (kept as its decimal text).
    Add = 4,
    /// keys. Replies one [`CheckReply`] byte.
    Check = 5,
    /// keys. Replies [`WaitReply::StopWaiting`] once all exist.
    Wait = 6,
    /// Replies the `i64` number of keys.
    NumKeys = 7,
    /// key. Replies the `i64` number deleted (0 or 1).
    DeleteKey = 8,
    /// key, value appended to the key's value. No reply.
    Append = 9,
    /// keys (after a [`Command::Wait`] for all). Replies each value in order.
    MultiGet = 10,
    /// count, then that many key and value pairs. No reply.
    MultiSet = 11,
    /// Ends this connection's wait. Replies [`WaitReply::WaitCanceled`].
    CancelWait = 12,
    /// `u32` nonce. Replies the nonce.
    Ping = 13,
    // PyTorch's queue commands (14 to 16) follow; nothing in a training job uses them, and a
    // server that does not know a command closes the connection, as PyTorch's does.
    /// Ours, far from PyTorch's numbers: proof of the job's secret (see the module's text).
    Authenticate = 0xC0,
}

impl Command {
    /// The command this byte names, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        use Command::*;
        let pytorchs = [
            Validate, Set, CompareSet, Get, Add, Check, Wait, NumKeys, DeleteKey, Append, MultiGet,
            MultiSet, CancelWait, Ping,
        ];
        match byte {
            0xC0 => Some(Authenticate),
            _ => pytorchs.get(usize::from(byte)).copied(),
        }
    }
}

/// `CheckResponseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CheckReply {
    /// Every key exists.
    Ready = 0,
    /// Some key does not.
    NotReady = 1,
}

/// `WaitResponseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WaitReply {
    /// The keys waited for all exist.
    StopWaiting = 0,
    /// The wait was cancelled ([`Command::CancelWait`]).
    WaitCanceled = 1,
}

/// A request or reply under construction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Message(pub Vec<u8>);

impl Message {
    /// A request starting with `command`.
    pub fn request(command: Command) -> Self {
        Message(vec![command as u8])
    }

    /// Appends one byte.
    pub fn byte(mut self, byte: u8) -> Self {
        self.0.push(byte);
        self
    }

    /// Appends a `u32`.
    pub fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends an `i64`.
    pub fn i64(mut self, value: i64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends bytes as they are (a challenge, a proof).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends a `u64` count.
    pub fn count(mut self, count: usize) -> Self {
        self.0.extend_from_slice(&(count as u64).to_le_bytes());
        self
    }

    /// Appends a string: its length, then its bytes.
    pub fn bytes(self, bytes: &[u8]) -> Self {
        let mut message = self.count(bytes.len());
        message.0.extend_from_slice(bytes);
        message
    }

    /// Appends a list of strings: its count, then each string.
    pub fn list<S: AsRef<[u8]>>(self, items: &[S]) -> Self {
        let message = self.count(items.len());
        items.iter().fold(message, |m, item| m.bytes(item.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_byte_round_trips_and_others_are_unknown() {
        for byte in 0..=13u8 {
            assert_eq!(Command::from_byte(byte).map(|c| c as u8), Some(byte));
        }
        assert_eq!(Command::from_byte(14), None);
        assert_eq!(Command::from_byte(0xC0), Some(Command::Authenticate));
    }

    #[test]
    fn strings_are_length_prefixed_little_endian() {
        let set = Message::request(Command::Set).bytes(b"/k").bytes(b"v1");
        assert_eq!(
            hex::encode(set.0),
            "0102000000000000002f6b02000000000000007631"
        );
    }
}
