package main

import "encoding/binary"

// Stream numbers of the response frames: Docker's stdout and stderr, and the exit record on a number
// Docker does not use (docs/bootstrap.md explains the choice).
const (
	streamStdout byte = 1
	streamStderr byte = 2
	streamExit   byte = 255
)

const frameHeaderSize = 8

// frame encodes one Docker multiplexed-stream frame.
func frame(stream byte, payload []byte) []byte {
	out := make([]byte, frameHeaderSize+len(payload))
	out[0] = stream
	binary.BigEndian.PutUint32(out[4:8], uint32(len(payload)))
	copy(out[frameHeaderSize:], payload)
	return out
}

func streamName(stream byte) string {
	if stream == streamStderr {
		return "stderr"
	}
	return "stdout"
}
