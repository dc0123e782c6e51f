package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests run the real bootstrap: the test binary re-executes itself with this variable and becomes main.
const asMainVariable = "SOCKERLESS_BOOTSTRAP_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainVariable) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// waitLimit only keeps a broken test from hanging; no assertion depends on it.
const waitLimit = 60 * time.Second

// invocation is what the fake Runtime API hands out on /next.
type invocation struct {
	id       string
	deadline time.Time
	body     []byte
}

// answer is what the bootstrap posted for one invocation.
type answer struct {
	id        string
	kind      string // "response" or "error"
	header    http.Header
	trailer   http.Header
	body      []byte
	errorType string
	// chunked: the body came with chunked transfer encoding; length: its Content-Length, -1 when none.
	chunked bool
	length  int64
}

// fakeRuntime is an httptest fake of Lambda's Runtime API: an AWS API, not code of ours.
type fakeRuntime struct {
	t       *testing.T
	server  *httptest.Server
	pending chan invocation
	answers chan answer
	inits   chan answer
	// chunks, when set, receives each piece of a response body as it arrives.
	chunks chan []byte
	// refuseStreaming answers a streaming response 400 at once, as the Runtime Interface Emulator does for a
	// mode it does not accept.
	refuseStreaming bool
	// failNext answers every /next with 500.
	failNext bool

	mu      sync.Mutex
	written *sync.Cond // broadcast on every write of the bootstrap's stdout
	seq     int
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	process *exec.Cmd
}

func newFakeRuntime(t *testing.T) *fakeRuntime {
	f := &fakeRuntime{
		t: t, pending: make(chan invocation, 16), answers: make(chan answer, 16), inits: make(chan answer, 4),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", f.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", f.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", f.invocationError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", f.initError)
	f.written = sync.NewCond(&f.mu)
	f.server = httptest.NewServer(mux)
	t.Cleanup(f.server.Close)
	return f
}

func (f *fakeRuntime) next(w http.ResponseWriter, r *http.Request) {
	if f.failNext {
		http.Error(w, `{"errorMessage":"unavailable","errorType":"ServiceException"}`, http.StatusInternalServerError)
		return
	}
	select {
	case inv := <-f.pending:
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		if !inv.deadline.IsZero() {
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		}
		w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:skls-test")
		_, _ = w.Write(inv.body)
	case <-r.Context().Done():
	}
}

func (f *fakeRuntime) response(w http.ResponseWriter, r *http.Request) {
	if f.refuseStreaming && r.Header.Get("Lambda-Runtime-Function-Response-Mode") != "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"errorMessage":"invalid response mode","errorType":"InvalidFunctionResponseMode"}`))
		return
	}
	var body bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			body.Write(buf[:n])
			if f.chunks != nil {
				f.chunks <- append([]byte(nil), buf[:n]...)
			}
		}
		if err != nil {
			break
		}
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
	f.answers <- answer{id: r.PathValue("id"), kind: "response", header: r.Header, trailer: r.Trailer, body: body.Bytes(),
		chunked: slices.Contains(r.TransferEncoding, "chunked"), length: r.ContentLength}
}

func (f *fakeRuntime) invocationError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.WriteHeader(http.StatusAccepted)
	f.answers <- answer{id: r.PathValue("id"), kind: "error", header: r.Header, body: body,
		errorType: r.Header.Get("Lambda-Runtime-Function-Error-Type")}
}

func (f *fakeRuntime) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.WriteHeader(http.StatusAccepted)
	f.inits <- answer{kind: "init", body: body, errorType: r.Header.Get("Lambda-Runtime-Function-Error-Type")}
}

// start runs the bootstrap against the fake, with extra environment items.
func (f *fakeRuntime) start(env ...string) {
	t := f.t
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), asMainVariable+"=1",
		"AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(f.server.URL, "http://"),
		"SOCKERLESS_BOOTSTRAP_TMP_DIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout = &lockedWriter{mu: &f.mu, w: &f.stdout, written: f.written}
	cmd.Stderr = &lockedWriter{mu: &f.mu, w: &f.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start the bootstrap: %v", err)
	}
	f.process = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("bootstrap stderr:\n%s", f.bootstrapStderr())
		}
	})
}

// awaitStdout waits until the bootstrap's stdout satisfies done, and returns it.
func (f *fakeRuntime) awaitStdout(done func([]byte) bool) []byte {
	timer := time.AfterFunc(waitLimit, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.t.Errorf("the bootstrap's stdout never became what the test waits for")
		f.written.Broadcast()
	})
	defer timer.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for !done(f.stdout.Bytes()) && !f.t.Failed() {
		f.written.Wait()
	}
	return append([]byte(nil), f.stdout.Bytes()...)
}

func (f *fakeRuntime) bootstrapStderr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stderr.String()
}

type lockedWriter struct {
	mu      *sync.Mutex
	w       io.Writer
	written *sync.Cond
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		defer l.written.Broadcast()
	}
	return l.w.Write(p)
}

// invoke queues a payload and returns the invocation's ID.
func (f *fakeRuntime) invoke(payload any, deadline time.Time) string {
	body, ok := payload.([]byte)
	if !ok {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			f.t.Fatal(err)
		}
	}
	f.mu.Lock()
	f.seq++
	id := fmt.Sprintf("request-%d", f.seq)
	f.mu.Unlock()
	f.pending <- invocation{id: id, deadline: deadline, body: body}
	return id
}

// await returns what the bootstrap posted for the invocation id.
func (f *fakeRuntime) await(id string) answer {
	f.t.Helper()
	select {
	case a := <-f.answers:
		if a.id != id {
			f.t.Fatalf("answer for %s while waiting for %s", a.id, id)
		}
		return a
	case <-time.After(waitLimit):
		f.t.Fatalf("no answer for %s; bootstrap stderr:\n%s", id, f.bootstrapStderr())
	}
	return answer{}
}

// run invokes a payload and decodes the response it gets.
func (f *fakeRuntime) run(payload map[string]any) result {
	f.t.Helper()
	a := f.await(f.invoke(payload, time.Time{}))
	return decode(f.t, a)
}

// result is a decoded response: each stream's bytes and the exit record.
type result struct {
	answer answer
	stdout []byte
	stderr []byte
	exit   ExitRecord
	frames int
}

func decode(t *testing.T, a answer) result {
	t.Helper()
	if a.kind != "response" {
		t.Fatalf("expected a response, got %s %s: %s", a.kind, a.errorType, a.body)
	}
	r := result{answer: a}
	rest := a.body
	sawExit := false
	for len(rest) > 0 {
		if sawExit {
			t.Fatalf("frames after the exit frame: %q", rest)
		}
		if len(rest) < frameHeaderSize {
			t.Fatalf("a truncated frame header: %q", rest)
		}
		if rest[1] != 0 || rest[2] != 0 || rest[3] != 0 {
			t.Fatalf("frame header bytes 1-3 are not zero: %v", rest[:4])
		}
		size := int(binary.BigEndian.Uint32(rest[4:8]))
		payload := rest[frameHeaderSize : frameHeaderSize+size]
		switch rest[0] {
		case streamStdout:
			r.stdout = append(r.stdout, payload...)
		case streamStderr:
			r.stderr = append(r.stderr, payload...)
		case streamExit:
			sawExit = true
			if err := json.Unmarshal(payload, &r.exit); err != nil {
				t.Fatalf("the exit record is not JSON: %v: %q", err, payload)
			}
		default:
			t.Fatalf("unknown stream %d", rest[0])
		}
		r.frames++
		rest = rest[frameHeaderSize+size:]
	}
	if !sawExit {
		t.Fatalf("the response has no exit frame: %q", a.body)
	}
	return r
}

func payload(run string, argv ...string) map[string]any {
	return map[string]any{"v": 1, "container": "c0ffee", "run": run, "argv": argv}
}
