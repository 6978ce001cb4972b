//! The messages of TensorBoard's event files that the trainer writes and reads: the fields of
//! `tensorboard/compat/proto/event.proto` and `summary.proto` it needs, with their numbers. A
//! reader skips the fields left out; prost encodes the rest as protoc's code would.

/// One record of an event file (`event.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was made.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step the event belongs to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
    /// Which program wrote the file (on its first event).
    #[prost(message, optional, tag = "10")]
    pub source_metadata: Option<SourceMetadata>,
}

/// `Event.what`, the kinds of event the trainer writes.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// `brain.Event:2`, the first event of every file: it tells TensorBoard that
    /// [`SessionLog`] START events mark restarts.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Scalars.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session's start, stop or checkpoint.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `SourceMetadata`: the writer's name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SourceMetadata {
    /// The program or library that wrote the file.
    #[prost(string, tag = "1")]
    pub writer: String,
}

/// `Summary`: values with tags.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value` holding a scalar (`simple_value`, TensorBoard's scalars plugin reads it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The curve's name, `train/loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The value; TensorBoard keeps scalars as 32-bit floats.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// `SessionLog`: a restart, seen by TensorBoard as "drop what was logged at or after my step".
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// [`SessionStatus`] as a number.
    #[prost(enumeration = "SessionStatus", tag = "1")]
    pub status: i32,
}

/// `SessionLog.SessionStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SessionStatus {
    /// Not set.
    StatusUnspecified = 0,
    /// A (re)start: TensorBoard purges every value with a step at or after this event's.
    Start = 1,
    /// A clean stop.
    Stop = 2,
    /// A checkpoint was written.
    Checkpoint = 3,
}
