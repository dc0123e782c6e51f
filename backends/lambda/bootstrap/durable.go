package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"time"
)

// durableChunk is the most output one line of the durable copy holds: 128 KiB once in base64, well under
// CloudWatch's 256 KB per event.
const durableChunk = 96 << 10

// durable writes the durable copy of one run to the bootstrap's stdout (CloudWatch) as JSON lines.
type durable struct {
	out       io.Writer
	run       string
	container string
	seq       int

	pending       bytes.Buffer
	pendingStream byte
	pendingOffset int64
	pendingTime   time.Time
	offsets       [3]int64
}

type durableOutput struct {
	V         int    `json:"v"`
	Run       string `json:"run"`
	Container string `json:"container"`
	Seq       int    `json:"seq"`
	Stream    string `json:"stream"`
	Offset    int64  `json:"offset"`
	Time      string `json:"time"`
	Data      []byte `json:"data"`
}

type durableExit struct {
	V         int         `json:"v"`
	Run       string      `json:"run"`
	Container string      `json:"container"`
	Seq       int         `json:"seq"`
	Exit      *ExitRecord `json:"exit"`
}

func newDurable(out io.Writer, p *Payload) *durable {
	return &durable{out: out, run: p.Run, container: p.Container}
}

// add gathers kept output; a change of stream writes what the other stream gathered first.
func (d *durable) add(stream byte, data []byte, at time.Time) {
	if d.pending.Len() > 0 && d.pendingStream != stream {
		d.flush()
	}
	for len(data) > 0 {
		if d.pending.Len() == 0 {
			d.pendingStream, d.pendingOffset, d.pendingTime = stream, d.offsets[stream], at
		}
		n := min(len(data), durableChunk-d.pending.Len())
		d.pending.Write(data[:n])
		d.offsets[stream] += int64(n)
		data = data[n:]
		if d.pending.Len() >= durableChunk {
			d.flush()
		}
	}
}

func (d *durable) flush() {
	if d.pending.Len() == 0 {
		return
	}
	d.line(durableOutput{
		V: PayloadVersion, Run: d.run, Container: d.container, Seq: d.seq,
		Stream: streamName(d.pendingStream), Offset: d.pendingOffset, Time: timestamp(d.pendingTime),
		Data: d.pending.Bytes(),
	})
	d.pending.Reset()
}

func (d *durable) exit(record *ExitRecord) {
	d.flush()
	d.line(durableExit{V: PayloadVersion, Run: d.run, Container: d.container, Seq: d.seq, Exit: record})
}

func (d *durable) line(value any) {
	encoded, err := json.Marshal(value)
	if err != nil {
		log.Printf("run %s: cannot encode a line of the durable copy: %v", d.run, err)
		return
	}
	d.seq++
	// One write per line, so a line is one CloudWatch event.
	if _, err := d.out.Write(append(encoded, '\n')); err != nil {
		log.Printf("run %s: cannot write the durable copy: %v", d.run, err)
	}
}

func timestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
