package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStdoutAndStderrKeepTheirExactBytesApart(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()

	r := f.run(payload("r1", "sh", "-c", `printf 'a\377\000b'; printf 'e\n\nrr' >&2; printf 'c'`))

	if want := []byte("a\xff\x00bc"); !bytes.Equal(r.stdout, want) {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if want := []byte("e\n\nrr"); !bytes.Equal(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if r.exit.Status != 0 || r.exit.Reason != reasonExited || r.exit.Run != "r1" || r.exit.Container != "c0ffee" {
		t.Errorf("exit record %+v", r.exit)
	}
	if r.answer.header.Get("Lambda-Runtime-Function-Response-Mode") != "streaming" || !r.answer.chunked ||
		r.exit.Mode != "streaming" {
		t.Errorf("not streamed: header %v, chunked %v, mode %q", r.answer.header, r.answer.chunked, r.exit.Mode)
	}
	if len(r.answer.trailer.Get("Lambda-Runtime-Function-Error-Type")) != 0 {
		t.Errorf("a successful run sent error trailers %v", r.answer.trailer)
	}
	if r.exit.Stdout != (StreamRecord{Bytes: 5, Kept: 5}) || r.exit.Stderr != (StreamRecord{Bytes: 5, Kept: 5}) {
		t.Errorf("stream records %+v %+v", r.exit.Stdout, r.exit.Stderr)
	}
}

func TestExitStatusesAreDockers(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		argv   []string
		status int
		reason string
		signal int
	}{
		{"zero", []string{"true"}, 0, reasonExited, 0},
		{"three", []string{"sh", "-c", "exit 3"}, 3, reasonExited, 0},
		{"argv0 not found", []string{"no-such-command-anywhere"}, 127, reasonNotFound, 0},
		{"path not found", []string{"/no/such/file"}, 127, reasonNotFound, 0},
		{"not executable", []string{notExecutable}, 126, reasonNotExecutable, 0},
		{"a directory", []string{"/"}, 126, reasonNotExecutable, 0},
		{"killed itself with TERM", []string{"sh", "-c", "kill -TERM $$"}, 143, reasonSignaled, 15},
		{"killed itself with KILL", []string{"sh", "-c", "kill -KILL $$"}, 137, reasonSignaled, 9},
	}
	f := newFakeRuntime(t)
	f.start()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.run(payload("r-"+c.name, c.argv...))
			if r.exit.Status != c.status || r.exit.Reason != c.reason || r.exit.Signal != c.signal {
				t.Errorf("exit record %+v, want status %d reason %q signal %d", r.exit, c.status, c.reason, c.signal)
			}
			if c.status >= 126 && c.status <= 127 && r.exit.Error == "" {
				t.Errorf("no error message in %+v", r.exit)
			}
		})
	}
}

func TestACommandPastTheDeadlineIsStoppedAndReportedAsTimedOut(t *testing.T) {
	f := newFakeRuntime(t)
	f.start("SOCKERLESS_BOOTSTRAP_DEADLINE_MARGIN_MS=1000", "SOCKERLESS_BOOTSTRAP_KILL_GRACE_MS=200")
	for _, argv := range [][]string{
		{"sleep", "1000"},
		// Ignores TERM: only the KILL after the grace ends it.
		{"sh", "-c", "trap '' TERM; echo started; while :; do sleep 1; done"},
	} {
		id := f.invoke(payload("r-timeout", argv...), time.Now().Add(1200*time.Millisecond))
		r := decode(t, f.await(id))
		if r.exit.Status != 137 || r.exit.Reason != reasonTimedOut {
			t.Errorf("%v: exit record %+v, want 137 timed out", argv, r.exit)
		}
	}
}

func TestTheEnvironmentIsAddedToTheBootstrapsOwn(t *testing.T) {
	f := newFakeRuntime(t)
	f.start("FROM_IMAGE=image", "OVERRIDDEN=image")
	p := payload("r-env", "sh", "-c", `printf '%s|%s|%s|%s|%s' "$FROM_IMAGE" "$OVERRIDDEN" "$ADDED" "$TWICE" "$_X_AMZN_TRACE_ID"`)
	p["env"] = []string{"OVERRIDDEN=payload", "ADDED=a=b", "TWICE=1", "TWICE=2"}

	r := f.run(p)

	if got, want := string(r.stdout), "image|payload|a=b|2|Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

func TestAMissingWorkingDirectoryIsCreated(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	workdir := filepath.Join(t.TempDir(), "a", "b")
	p := payload("r-workdir", "sh", "-c", "pwd; ls")
	p["workdir"] = workdir

	r := f.run(p)

	if got := string(r.stdout); got != workdir+"\n" {
		t.Errorf("stdout %q, want %q", got, workdir+"\n")
	}
	if info, err := os.Stat(workdir); err != nil || !info.IsDir() {
		t.Errorf("the working directory was not created: %v", err)
	}
}

func TestStdinBytesAreTheCommandsInput(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	input := []byte("line\n\xfe\x00no newline")
	p := payload("r-stdin", "cat")
	p["stdin"] = base64.StdEncoding.EncodeToString(input)

	r := f.run(p)

	if !bytes.Equal(r.stdout, input) {
		t.Errorf("stdout %q, want %q", r.stdout, input)
	}
	// Without stdin the command reads end of file at once.
	if r := f.run(payload("r-no-stdin", "cat")); len(r.stdout) != 0 || r.exit.Status != 0 {
		t.Errorf("cat without stdin: %q %+v", r.stdout, r.exit)
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestWhatARunLeavesIsGoneBeforeTheNextRun(t *testing.T) {
	f := newFakeRuntime(t)
	tmp := t.TempDir()
	f.start("SOCKERLESS_BOOTSTRAP_TMP_DIR=" + tmp)
	// A background sleep in the command's group, a daemon that left it (setsid in an exited subshell), and
	// files in /tmp.
	a := f.run(payload("run-a", "sh", "-c", `
		sleep 1000 & echo $!
		(setsid sh -c 'echo $$; exec sleep 1000' &) | head -n 1
		echo x > `+tmp+`/x; mkdir -p `+tmp+`/d/e; chmod 500 `+tmp+`/d`))
	fields := strings.Fields(string(a.stdout))
	if len(fields) != 2 {
		t.Fatalf("run A printed %q", a.stdout)
	}
	pids := make([]int, 2)
	for i, field := range fields {
		pids[i], _ = strconv.Atoi(field)
	}

	b := f.run(payload("run-b", "sh", "-c", "ls -A "+tmp))

	if len(b.stdout) != 0 {
		t.Errorf("run B sees %q in the tmp directory", b.stdout)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d that run A left is still alive", pid)
		}
	}
	if info, err := os.Stat(tmp); err != nil || !info.IsDir() {
		t.Errorf("the tmp directory itself is gone: %v", err)
	}
}

func TestOutputPastALimitIsCutAndReported(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	p := payload("r-limit", "sh", "-c", "printf 0123456789; printf abc >&2")
	p["limits"] = map[string]int{"stdout": 4}

	r := f.run(p)

	if string(r.stdout) != "0123" || string(r.stderr) != "abc" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r.exit.Stdout != (StreamRecord{Bytes: 10, Kept: 4, Cut: true}) || r.exit.Stderr.Cut {
		t.Errorf("stream records %+v %+v", r.exit.Stdout, r.exit.Stderr)
	}
}

// durableLines reads the bootstrap's stdout as JSON lines.
func durableLines(t *testing.T, out []byte) []map[string]json.RawMessage {
	t.Helper()
	var lines []map[string]json.RawMessage
	scanner := bufio.NewScanner(bytes.NewReader(out))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		if len(scanner.Bytes()) >= 256*1024 {
			t.Errorf("a line of %d bytes is over CloudWatch's event limit", len(scanner.Bytes()))
		}
		var line map[string]json.RawMessage
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %v: %q", err, scanner.Bytes())
		}
		lines = append(lines, line)
	}
	return lines
}

func TestTheDurableCopyHoldsTheRunsExactOutputAndExit(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	// 300 000 bytes on stdout with a byte that is not UTF-8, then stderr, then stdout again.
	r := f.run(payload("run-durable", "sh", "-c",
		`head -c 300000 /dev/zero | tr '\0' 'x'; printf '\377' ; printf err >&2; printf end`))
	// Another run's lines are in the same log; the run ID tells them apart.
	f.run(payload("run-other", "echo", "other"))

	// The exit line of run-other is written after its response: wait for it.
	out := f.awaitStdout(func(out []byte) bool {
		return bytes.Contains(out, []byte(`"run":"run-other","container":"c0ffee","seq":1,"exit"`))
	})
	lines := durableLines(t, out)
	streams := map[string][]byte{}
	var exit ExitRecord
	seq := 0
	for _, line := range lines {
		if string(line["run"]) != `"run-durable"` {
			continue
		}
		var n int
		_ = json.Unmarshal(line["seq"], &n)
		if n != seq {
			t.Errorf("seq %d, want %d", n, seq)
		}
		seq++
		if line["exit"] != nil {
			if err := json.Unmarshal(line["exit"], &exit); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var stream string
		var data []byte
		var offset int
		_ = json.Unmarshal(line["stream"], &stream)
		_ = json.Unmarshal(line["data"], &data)
		_ = json.Unmarshal(line["offset"], &offset)
		if offset != len(streams[stream]) {
			t.Errorf("%s offset %d, want %d", stream, offset, len(streams[stream]))
		}
		streams[stream] = append(streams[stream], data...)
	}
	if !bytes.Equal(streams["stdout"], r.stdout) || !bytes.Equal(streams["stderr"], r.stderr) {
		t.Errorf("the durable copy differs from the response: %d/%d stdout bytes, stderr %q",
			len(streams["stdout"]), len(r.stdout), streams["stderr"])
	}
	if len(r.stdout) != 300004 {
		t.Errorf("%d stdout bytes, want 300004", len(r.stdout))
	}
	if exit != r.exit {
		t.Errorf("durable exit %+v, response exit %+v", exit, r.exit)
	}
}

func TestOutputIsStreamedWhileTheCommandRuns(t *testing.T) {
	f := newFakeRuntime(t)
	f.chunks = make(chan []byte, 64)
	f.start()
	gate := filepath.Join(t.TempDir(), "gate")
	id := f.invoke(payload("r-live", "sh", "-c",
		`echo first; while [ ! -e `+gate+` ]; do sleep 0.01; done; echo second`), time.Time{})

	// The first line arrives while the command still waits for the gate.
	var got []byte
	want := frame(streamStdout, []byte("first\n"))
	for !bytes.Contains(got, want) {
		select {
		case c := <-f.chunks:
			got = append(got, c...)
		case <-time.After(waitLimit):
			t.Fatalf("the first line did not arrive before the command ended; got %q", got)
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := decode(t, f.await(id))
	if string(r.stdout) != "first\nsecond\n" {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestBufferedModeSendsTheSameFramesInOneResponse(t *testing.T) {
	f := newFakeRuntime(t)
	f.start("SOCKERLESS_BOOTSTRAP_RESPONSE_MODE=buffered")

	r := f.run(payload("r-buffered", "sh", "-c", "printf out; printf err >&2; exit 4"))

	if r.answer.header.Get("Lambda-Runtime-Function-Response-Mode") != "" || r.answer.chunked ||
		r.answer.length != int64(len(r.answer.body)) {
		t.Errorf("a buffered response was sent with headers %v, chunked %v", r.answer.header, r.answer.chunked)
	}
	if string(r.stdout) != "out" || string(r.stderr) != "err" || r.exit.Status != 4 || r.exit.Mode != "buffered" {
		t.Errorf("stdout %q stderr %q exit %+v", r.stdout, r.stderr, r.exit)
	}
}

func TestABufferedResponseLeavesOutOutputPastItsLimit(t *testing.T) {
	f := newFakeRuntime(t)
	f.start("SOCKERLESS_BOOTSTRAP_RESPONSE_MODE=buffered", "SOCKERLESS_BOOTSTRAP_BUFFERED_LIMIT=40000")

	r := f.run(payload("r-cut", "sh", "-c", "head -c 100000 /dev/zero"))

	if len(r.answer.body) > 40000 || !r.exit.ResponseCut || r.exit.Stdout.Kept != 100000 || r.exit.Stdout.Cut {
		t.Errorf("%d bytes in the response, exit %+v", len(r.answer.body), r.exit)
	}
}

func TestARefusedStreamIsSentAgainBufferedAndLaterRunsAreBuffered(t *testing.T) {
	f := newFakeRuntime(t)
	f.refuseStreaming = true
	f.start()

	first := f.run(payload("r-refused", "sh", "-c", "printf one; printf two >&2"))
	second := f.run(payload("r-after", "printf", "three"))

	if string(first.stdout) != "one" || string(first.stderr) != "two" || first.exit.Mode != "buffered" {
		t.Errorf("first: stdout %q stderr %q exit %+v", first.stdout, first.stderr, first.exit)
	}
	if string(second.stdout) != "three" || second.exit.Mode != "buffered" {
		t.Errorf("second: stdout %q exit %+v", second.stdout, second.exit)
	}
}

func TestABadPayloadIsAnInvocationError(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	cases := []struct {
		body any
		kind string
	}{
		{[]byte("not json"), errorInvalidPayload},
		{map[string]any{"v": 2, "run": "r", "argv": []string{"true"}}, errorUnsupportedVersion},
		{map[string]any{"run": "r", "argv": []string{"true"}}, errorInvalidPayload},
		{map[string]any{"v": 1, "run": "r", "argv": []string{}}, errorInvalidPayload},
		{map[string]any{"v": 1, "run": "r", "argv": []string{"true"}, "env": []string{"NOEQUALS"}}, errorInvalidPayload},
		{map[string]any{"v": 1, "run": "r", "argv": []string{"true"}, "workdir": "relative"}, errorInvalidPayload},
		{map[string]any{"v": 1, "run": "r", "argv": []string{"true"}, "stdin": "!!"}, errorInvalidPayload},
	}
	for _, c := range cases {
		a := f.await(f.invoke(c.body, time.Time{}))
		var body struct{ ErrorType, ErrorMessage string }
		_ = json.Unmarshal(a.body, &body)
		if a.kind != "error" || a.errorType != c.kind || body.ErrorType != c.kind || body.ErrorMessage == "" {
			t.Errorf("%v: answered %s %s %s", c.body, a.kind, a.errorType, a.body)
		}
	}
	// The bootstrap goes on serving.
	if r := f.run(payload("r-ok", "true")); r.exit.Status != 0 {
		t.Errorf("after bad payloads: %+v", r.exit)
	}
}

func TestABadConfigurationIsAnInitError(t *testing.T) {
	f := newFakeRuntime(t)
	f.start("SOCKERLESS_BOOTSTRAP_KILL_GRACE_MS=5000")

	select {
	case a := <-f.inits:
		if a.errorType != errorInvalidConfiguration || !bytes.Contains(a.body, []byte("grace")) {
			t.Errorf("init error %s %s", a.errorType, a.body)
		}
	case <-time.After(waitLimit):
		t.Fatal("no init error")
	}
	err := f.process.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("the bootstrap ended with %v, want status 1", err)
	}
}

func TestVersionIsPrinted(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--version")
	cmd.Env = append(os.Environ(), asMainVariable+"=1")
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "sockerless-bootstrap "+version+" (payload v1") {
		t.Errorf("--version printed %q (%v)", out, err)
	}
}

func TestAStreamingResponseLeavesOutOutputPastItsLimit(t *testing.T) {
	f := newFakeRuntime(t)
	f.start("SOCKERLESS_BOOTSTRAP_STREAMING_LIMIT=40000")

	r := f.run(payload("r-stream-cut", "sh", "-c", "head -c 100000 /dev/zero; printf tail >&2"))

	if len(r.answer.body) > 40000 || !r.exit.ResponseCut || r.exit.Mode != "streaming" {
		t.Errorf("%d bytes in the response, exit %+v", len(r.answer.body), r.exit)
	}
	if r.exit.Stdout.Kept != 100000 || r.exit.Stderr.Kept != 4 {
		t.Errorf("the kept output is what the command wrote (the durable copy has it): %+v", r.exit)
	}
}

func TestArgv0IsLookedUpInTheCommandsOwnPath(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "hello-from-path"), []byte("#!/bin/sh\nprintf found\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFakeRuntime(t)
	f.start()
	p := payload("r-path", "hello-from-path")
	p["env"] = []string{"PATH=" + bin + ":/usr/bin:/bin"}
	relative := payload("r-relative", "./hello-from-path")
	relative["workdir"] = bin

	if r := f.run(p); string(r.stdout) != "found" || r.exit.Status != 0 {
		t.Errorf("from PATH: stdout %q exit %+v", r.stdout, r.exit)
	}
	if r := f.run(relative); string(r.stdout) != "found" || r.exit.Status != 0 {
		t.Errorf("relative to the working directory: stdout %q exit %+v", r.stdout, r.exit)
	}
}

func TestManyRandomBytesArriveIdentical(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	// The command writes 8 MiB of random bytes and their digest, computed inside it, on stderr.
	r := f.run(payload("r-random", "sh", "-c",
		`head -c 8388608 /dev/urandom > "$SOCKERLESS_BOOTSTRAP_TMP_DIR/data"; cat "$SOCKERLESS_BOOTSTRAP_TMP_DIR/data"; `+
			`sha256sum < "$SOCKERLESS_BOOTSTRAP_TMP_DIR/data" | cut -d' ' -f1 >&2`))

	sum := sha256.Sum256(r.stdout)
	if got, want := strings.TrimSpace(string(r.stderr)), hex.EncodeToString(sum[:]); got != want || len(r.stdout) != 8<<20 {
		t.Errorf("%d bytes with digest %s, the command's digest %s", len(r.stdout), want, got)
	}
}

func TestWithoutARuntimeAPIAddressTheBootstrapExits(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), asMainVariable+"=1", "AWS_LAMBDA_RUNTIME_API=")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 || !bytes.Contains(out, []byte("AWS_LAMBDA_RUNTIME_API")) {
		t.Errorf("ended with %v, printed %q", err, out)
	}
}

func TestTheDurableCopyIsWrittenWhileTheCommandRuns(t *testing.T) {
	f := newFakeRuntime(t)
	f.start()
	gate := filepath.Join(t.TempDir(), "gate")
	id := f.invoke(payload("r-periodic", "sh", "-c",
		`printf early; while [ ! -e `+gate+` ]; do sleep 0.01; done`), time.Time{})

	// The periodic flush writes the output the command is still running with.
	f.awaitStdout(func(out []byte) bool {
		return bytes.Contains(out, []byte(`"run":"r-periodic","container":"c0ffee","seq":0,"stream":"stdout"`))
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := decode(t, f.await(id)); string(r.stdout) != "early" {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestARuntimeAPIThatKeepsFailingEndsTheBootstrap(t *testing.T) {
	f := newFakeRuntime(t)
	f.failNext = true
	f.start()

	err := f.process.Wait()

	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("the bootstrap ended with %v, want status 1", err)
	}
	if got := strings.Count(f.bootstrapStderr(), "cannot get the next invocation"); got != maxNextFailures {
		t.Errorf("%d failures logged, want %d", got, maxNextFailures)
	}
}
