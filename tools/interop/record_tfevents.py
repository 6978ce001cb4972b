#!/usr/bin/env python3
"""Records a TensorBoard event file written by TensorBoard's own writer, for cornet-rs's tests.

TensorBoard's RecordWriter (its TFRecord framing and masked CRC-32C) writes event_pb2 messages
(protobuf's own encoding) to tests/interop/tfevents_scalars.bin: the events a resumed
cornet-rs run writes, with fixed wall times. The Rust test (`tfevents::tests`) writes the same
events through `tfevents::EventWriter` and compares the bytes.

    python tools/interop/record_tfevents.py [OUT]      # needs tensorboard (pip install tensorboard)
"""

import pathlib
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

# The same in cornet-trainer/src/tfevents/mod.rs's test.
EVENTS = [
    # The first event of every file.
    event_pb2.Event(
        wall_time=1700000000.25,
        file_version="brain.Event:2",
        source_metadata=event_pb2.SourceMetadata(writer="cornet-trainer"),
    ),
    # A resumed run: drop what was logged at step 3 or later.
    event_pb2.Event(
        wall_time=1700000001.5,
        step=3,
        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
    ),
    event_pb2.Event(
        wall_time=1700000002.0,
        step=4,
        summary=summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag="train/loss", simple_value=2.3025851),
                summary_pb2.Summary.Value(tag="train/top1", simple_value=0.0),
                summary_pb2.Summary.Value(tag="train/lr", simple_value=0.1),
                summary_pb2.Summary.Value(tag="train/data_wait_secs", simple_value=float("nan")),
            ]
        ),
    ),
    event_pb2.Event(
        wall_time=1700000003.75,
        step=4,
        summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="val/top5", simple_value=1.0)]
        ),
    ),
]


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/interop/tfevents_scalars.bin")
    with open(out, "wb") as file:
        writer = RecordWriter(file)
        for event in EVENTS:
            writer.write(event.SerializeToString())
        writer.flush()
    print(f"{out}: {out.stat().st_size} bytes, {len(EVENTS)} events")


if __name__ == "__main__":
    main()
