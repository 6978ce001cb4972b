//! PyTorch TCPStore's wire format (`torch/csrc/distributed/c10d/TCPStore*.{hpp,cpp}`).
//!
//! A request is one command byte followed by its fields; integers are little-endian (the
//! native order of every machine PyTorch runs on), a string is its `u64` length followed by its
//! bytes, and a list of strings is its `u64` count followed by the strings. A connection opens
//! with `VALIDATE` and the magic number, then `PING` with a nonce that the server echoes.

/// `validationMagicNumber`: the first thing a client sends, after [`Command::Validate`].
pub const MAGIC: u32 = 0x3C85_F7CE;

/// The longest key or value either end accepts; more is a broken or hostile peer, refused
/// before anything is allocated for it.
pub const MAX_STRING_LEN: u64 = 64 << 20;

/// The most keys one request may name.
pub const MAX_KEYS: u64 = 1 << 16;

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
}

impl Command {
    /// The command this byte names, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        use Command::*;
        [
            Validate, Set, CompareSet, Get, Add, Check, Wait, NumKeys, DeleteKey, Append, MultiGet,
            MultiSet, CancelWait, Ping,
        ]
        .get(usize::from(byte))
        .copied()
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
