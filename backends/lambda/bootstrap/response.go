package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
)

// exitReserve is the room kept in a response for the exit frame, so output never crowds it out.
const exitReserve = 16 << 10

var errResponseAnswered = errors.New("the Runtime API answered the streaming response before it ended")

// response sends one invocation's frames: streamed as they come, or kept and sent at the end (buffered).
// It always keeps a copy of the first frames that fit a buffered response, so a refused stream can be sent
// again buffered.
type response struct {
	api *RuntimeAPI
	id  string

	streaming   bool
	streamOver  bool // the stream cannot take more frames (refused, failed, or cut)
	streamCut   bool
	streamed    int64
	streamLimit int64
	pipe        *io.PipeWriter
	request     *http.Request
	answered    chan error

	copy        bytes.Buffer
	copyCut     bool
	copyLimit   int64
	bufferedCap int64
}

func startResponse(api *RuntimeAPI, id string, streaming bool, cfg Config) *response {
	r := &response{
		api: api, id: id, streaming: streaming,
		streamLimit: cfg.StreamingLimit - exitReserve,
		copyLimit:   cfg.BufferedLimit - exitReserve,
		bufferedCap: cfg.BufferedLimit,
	}
	if !streaming {
		return r
	}
	reader, writer := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, api.base+"/invocation/"+id+"/response", reader)
	if err != nil {
		r.streaming = false
		return r
	}
	req.Header.Set("Lambda-Runtime-Function-Response-Mode", "streaming")
	req.Header.Set("Content-Type", contentType)
	req.Trailer = http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
	r.pipe, r.request, r.answered = writer, req, make(chan error, 1)
	go func() {
		resp, err := api.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = &statusError{status: resp.StatusCode, message: http.StatusText(resp.StatusCode)}
			}
		}
		// An answer before the body ended means nothing more is read: later writes must fail, not block.
		reader.CloseWithError(errResponseAnswered)
		r.answered <- err
	}()
	return r
}

// write sends one frame of output, or keeps it; frames past a limit are dropped from this response.
func (r *response) write(stream byte, data []byte) {
	f := frame(stream, data)
	if !r.copyCut && int64(r.copy.Len()+len(f)) <= r.copyLimit {
		r.copy.Write(f)
	} else {
		r.copyCut = true
	}
	if !r.streaming || r.streamOver {
		return
	}
	if r.streamed+int64(len(f)) > r.streamLimit {
		r.streamCut, r.streamOver = true, true
		return
	}
	if _, err := r.pipe.Write(f); err != nil {
		r.streamOver = true
		return
	}
	r.streamed += int64(len(f))
}

// finish ends the response with the exit frame that exit builds for the mode the response is sent in and
// whether output was left out of it. It answers the mode used, whether streaming was refused (4xx), and
// an error when no response could be delivered.
func (r *response) finish(exit func(mode string, cut bool) []byte) (string, bool, error) {
	refused := false
	if r.streaming {
		var err error
		if r.streamOver && !r.streamCut {
			r.pipe.Close()
			err = <-r.answered
			if err == nil {
				err = errResponseAnswered
			}
		} else if _, err = r.pipe.Write(frame(streamExit, exit("streaming", r.streamCut))); err == nil {
			r.pipe.Close()
			if err = <-r.answered; err == nil {
				return "streaming", false, nil
			}
		} else {
			// The write failed because the stream was answered: the answer says why.
			r.pipe.Close()
			if answer := <-r.answered; answer != nil {
				err = answer
			}
		}
		var status *statusError
		refused = errors.As(err, &status) && status.status/100 == 4
	}
	body := append(r.copy.Bytes(), frame(streamExit, exit("buffered", r.copyCut))...)
	return "buffered", refused, r.api.respondBuffered(r.id, body)
}

// abort ends the response with an error of the invocation (trailers once streaming began).
func (r *response) abort(kind, message string) error {
	if r.streaming && !r.streamOver {
		r.request.Trailer.Set("Lambda-Runtime-Function-Error-Type", kind)
		r.request.Trailer.Set("Lambda-Runtime-Function-Error-Body", base64.StdEncoding.EncodeToString(errorBody(kind, message)))
		r.pipe.Close()
		return <-r.answered
	}
	if r.streaming {
		r.pipe.Close()
		<-r.answered
	}
	return r.api.invocationError(r.id, kind, message)
}
