package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// dockerDefaultPath is the PATH Docker gives a container whose image sets none.
const dockerDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// drainWait bounds how long output is read after the command and all it left running were killed: only a
// process outside the command's tree that was handed its pipes could keep them open longer.
const drainWait = 2 * time.Second

// StreamRecord says how much of one stream was written and kept.
type StreamRecord struct {
	Bytes int64 `json:"bytes"`
	Kept  int64 `json:"kept"`
	Cut   bool  `json:"cut"`
}

// ExitRecord is the last frame of a response and the last line of a run's durable copy.
type ExitRecord struct {
	V           int          `json:"v"`
	Run         string       `json:"run"`
	Container   string       `json:"container"`
	Status      int          `json:"status"`
	Reason      string       `json:"reason"`
	Signal      int          `json:"signal"`
	Error       string       `json:"error,omitempty"`
	Started     string       `json:"started"`
	Finished    string       `json:"finished"`
	Stdout      StreamRecord `json:"stdout"`
	Stderr      StreamRecord `json:"stderr"`
	Mode        string       `json:"mode"`
	ResponseCut bool         `json:"response_cut"`
}

const (
	reasonExited        = "exited"
	reasonSignaled      = "signaled"
	reasonTimedOut      = "timed out"
	reasonNotFound      = "not found"
	reasonNotExecutable = "not executable"
	reasonStartFailed   = "start failed"
)

// chunk is one read of the command's stdout or stderr, or the end of one of them.
type chunk struct {
	stream byte
	data   []byte
	at     time.Time
	end    bool
	err    error
}

// mergeEnv adds Docker-style KEY=VALUE items to an environment; an added item replaces one of the same name.
func mergeEnv(base, added []string) []string {
	out := make([]string, 0, len(base)+len(added))
	index := make(map[string]int, len(base)+len(added))
	for _, item := range append(append([]string(nil), base...), added...) {
		key, _, _ := strings.Cut(item, "=")
		if i, ok := index[key]; ok {
			out[i] = item
			continue
		}
		index[key] = len(out)
		out = append(out, item)
	}
	return out
}

func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v, true
		}
	}
	return "", false
}

// startFailure is a command that could not be started, with Docker's status for it.
type startFailure struct {
	status  int
	reason  string
	message string
}

func executable(path string) (bool, error) {
	info, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if info.IsDir() {
		return false, nil
	}
	return syscall.Access(path, 1) == nil, nil // 1: X_OK
}

// resolveCommand finds argv[0] the way a container runtime does: a name with a slash is a path (relative to
// the working directory), a name without one is looked up in the command's own PATH.
func resolveCommand(name string, env []string, workdir string) (string, *startFailure) {
	notExecutable := &startFailure{126, reasonNotExecutable, fmt.Sprintf("exec: %q: permission denied", name)}
	if strings.Contains(name, "/") {
		path := name
		if !filepath.IsAbs(path) && workdir != "" {
			path = filepath.Join(workdir, path)
		}
		ok, err := executable(path)
		if err != nil {
			return "", &startFailure{127, reasonNotFound, fmt.Sprintf("exec: %q: %v", name, err)}
		}
		if !ok {
			return "", notExecutable
		}
		return path, nil
	}
	search, ok := lookupEnv(env, "PATH")
	if !ok {
		search = dockerDefaultPath
	}
	sawOne := false
	for _, dir := range filepath.SplitList(search) {
		if dir == "" {
			dir = "."
		}
		if !filepath.IsAbs(dir) && workdir != "" {
			dir = filepath.Join(workdir, dir)
		}
		candidate := filepath.Join(dir, name)
		ok, err := executable(candidate)
		if err != nil {
			continue
		}
		if ok {
			return candidate, nil
		}
		sawOne = true
	}
	if sawOne {
		return "", notExecutable
	}
	return "", &startFailure{127, reasonNotFound, fmt.Sprintf("exec: %q: executable file not found in $PATH", name)}
}

// classifyStart turns an error of starting the command into Docker's status.
func classifyStart(name string, err error) *startFailure {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) && pathErr.Op == "chdir" {
		return &startFailure{126, reasonStartFailed, fmt.Sprintf("cannot enter the working directory: %v", err)}
	}
	if errors.Is(err, syscall.ENOENT) {
		return &startFailure{127, reasonNotFound, fmt.Sprintf("exec: %q: %v", name, syscall.ENOENT)}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &startFailure{126, reasonNotExecutable, fmt.Sprintf("exec: %q: %v", name, errno)}
	}
	return &startFailure{126, reasonStartFailed, fmt.Sprintf("exec: %q: %v", name, err)}
}

func pump(f *os.File, stream byte, out chan<- chunk) {
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			out <- chunk{stream: stream, data: append([]byte(nil), buf[:n]...), at: time.Now()}
		}
		if err != nil {
			f.Close()
			end := chunk{stream: stream, end: true}
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				end.err = err
			}
			out <- end
			return
		}
	}
}

// run runs one payload's command to its end, sending its output to resp and d as it comes.
func (b *bootstrap) run(p *Payload, inv *Invocation, resp *response, d *durable) *ExitRecord {
	deadline := inv.Deadline
	rec := &ExitRecord{V: PayloadVersion, Run: p.Run, Container: p.Container}
	fail := func(f *startFailure, at time.Time) *ExitRecord {
		rec.Status, rec.Reason, rec.Error = f.status, f.reason, f.message
		rec.Finished = timestamp(at)
		return rec
	}
	env := os.Environ()
	if inv.TraceID != "" {
		env = mergeEnv(env, []string{"_X_AMZN_TRACE_ID=" + inv.TraceID})
	}
	env = mergeEnv(env, p.Env)
	started := time.Now()
	rec.Started = timestamp(started)
	if p.Workdir != "" {
		if err := os.MkdirAll(p.Workdir, 0o755); err != nil {
			return fail(&startFailure{126, reasonStartFailed, fmt.Sprintf("cannot create the working directory: %v", err)}, started)
		}
	}
	path, failure := resolveCommand(p.Argv[0], env, p.Workdir)
	if failure != nil {
		return fail(failure, started)
	}

	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return fail(&startFailure{126, reasonStartFailed, fmt.Sprintf("cannot make a pipe: %v", err)}, started)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return fail(&startFailure{126, reasonStartFailed, fmt.Sprintf("cannot make a pipe: %v", err)}, started)
	}
	cmd := &exec.Cmd{
		Path: path, Args: p.Argv, Env: env, Dir: p.Workdir, Stdout: stdoutW, Stderr: stderrW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	// Stdin is a pipe of our own rather than exec's copying goroutine, which Wait would wait for even when
	// a process the command left running holds the pipe.
	var stdinW *os.File
	if p.stdin != nil {
		stdinR, w, err := os.Pipe()
		if err != nil {
			stdoutR.Close()
			stdoutW.Close()
			stderrR.Close()
			stderrW.Close()
			return fail(&startFailure{126, reasonStartFailed, fmt.Sprintf("cannot make a pipe: %v", err)}, started)
		}
		cmd.Stdin, stdinW = stdinR, w
		defer stdinR.Close()
		defer stdinW.Close()
	}
	err = cmd.Start()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		return fail(classifyStart(p.Argv[0], err), time.Now())
	}
	if stdinW != nil {
		go func(data []byte) {
			_, _ = stdinW.Write(data)
			stdinW.Close()
		}(p.stdin)
	}
	group := cmd.Process.Pid

	chunks := make(chan chunk, 16)
	go pump(stdoutR, streamStdout, chunks)
	go pump(stderrR, streamStderr, chunks)
	exited := make(chan *os.ProcessState, 1)
	go func() {
		_ = cmd.Wait()
		exited <- cmd.ProcessState
	}()

	var stopC, killC, drainC <-chan time.Time
	if !deadline.IsZero() {
		stop := time.NewTimer(time.Until(deadline.Add(-b.cfg.DeadlineMargin)))
		defer stop.Stop()
		stopC = stop.C
	}
	flushEvery := time.NewTicker(time.Second)
	defer flushEvery.Stop()

	var state *os.ProcessState
	var finished time.Time
	timedOut := false
	open := 2
	for open > 0 || state == nil {
		select {
		case c := <-chunks:
			if c.end {
				open--
				if c.err != nil {
					b.logf("run %s: reading %s: %v", p.Run, streamName(c.stream), c.err)
				}
				continue
			}
			b.output(rec, p.Limits, c, resp, d)
		case state = <-exited:
			finished = time.Now()
			exited = nil
			killLeftovers(group)
			if open > 0 {
				drainC = time.After(drainWait)
			}
		case <-stopC:
			stopC = nil
			timedOut = true
			_ = syscall.Kill(-group, syscall.SIGTERM)
			killC = time.After(b.cfg.KillGrace)
		case <-killC:
			killC = nil
			_ = syscall.Kill(-group, syscall.SIGKILL)
		case <-drainC:
			drainC = nil
			b.logf("run %s: output pipes still open %v after the command's end; closing them", p.Run, drainWait)
			stdoutR.Close()
			stderrR.Close()
		case <-flushEvery.C:
			d.flush()
		}
	}

	rec.Finished = timestamp(finished)
	ws, _ := state.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		rec.Signal = int(ws.Signal())
		rec.Status, rec.Reason = 128+rec.Signal, reasonSignaled
	default:
		rec.Status, rec.Reason = ws.ExitStatus(), reasonExited
	}
	if timedOut {
		rec.Status, rec.Reason = 137, reasonTimedOut
	}
	return rec
}

// output applies the payload's limit to one read and passes on what is kept.
func (b *bootstrap) output(rec *ExitRecord, limits Limits, c chunk, resp *response, d *durable) {
	record, limit := &rec.Stdout, limits.Stdout
	if c.stream == streamStderr {
		record, limit = &rec.Stderr, limits.Stderr
	}
	record.Bytes += int64(len(c.data))
	keep := c.data
	if limit > 0 {
		room := max(limit-record.Kept, 0)
		if int64(len(keep)) > room {
			keep = keep[:room]
			record.Cut = true
		}
	}
	if len(keep) == 0 {
		return
	}
	record.Kept += int64(len(keep))
	resp.write(c.stream, keep)
	d.add(c.stream, keep, c.at)
}
