// Command bootstrap is the runtime of a sockerless Lambda function: it takes each invocation from Lambda's
// Runtime API, runs the container's command it names, and streams the command's output and exit record back
// (docs/bootstrap.md is the contract).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"time"
)

// version is the bootstrap's own version, printed by --version.
const version = "0.1.0"

// maxNextFailures is how many /next failures in a row end the bootstrap (Lambda then starts a fresh one).
const maxNextFailures = 5

type bootstrap struct {
	cfg      Config
	api      *RuntimeAPI
	durable  io.Writer
	buffered bool
	logger   *log.Logger
}

func (b *bootstrap) logf(format string, args ...any) {
	b.logger.Printf(format, args...)
}

// loop serves invocations until the Runtime API cannot be reached; it returns the exit status.
func (b *bootstrap) loop() int {
	failures := 0
	for {
		inv, err := b.api.next()
		if err != nil {
			failures++
			b.logf("cannot get the next invocation (%d in a row): %v", failures, err)
			if failures >= maxNextFailures {
				return 1
			}
			time.Sleep(time.Duration(failures) * 100 * time.Millisecond)
			continue
		}
		failures = 0
		b.invoke(inv)
	}
}

// invoke serves one invocation, then empties the environment for the next.
func (b *bootstrap) invoke(inv *Invocation) {
	defer b.cleanup()
	p, perr := parsePayload(inv.Body)
	if perr != nil {
		b.logf("invocation %s: %s", inv.ID, perr.message)
		if err := b.api.invocationError(inv.ID, perr.kind, perr.message); err != nil {
			b.logf("invocation %s: cannot report the error: %v", inv.ID, err)
		}
		return
	}
	resp := startResponse(b.api, inv.ID, !b.buffered, b.cfg)
	d := newDurable(b.durable, p)
	defer func() {
		// A fault of the bootstrap itself ends the invocation with an error, not the bootstrap.
		if fault := recover(); fault != nil {
			b.logf("run %s: internal error: %v", p.Run, fault)
			if err := resp.abort(errorInternal, fmt.Sprint(fault)); err != nil {
				b.logf("run %s: cannot report the error: %v", p.Run, err)
			}
		}
	}()
	rec := b.run(p, inv, resp, d)
	mode, refused, err := resp.finish(func(mode string, cut bool) []byte {
		rec.Mode, rec.ResponseCut = mode, cut
		encoded, _ := json.Marshal(rec)
		return encoded
	})
	if refused && !b.buffered {
		b.logf("the streaming response was refused; answering buffered from now on")
		b.buffered = true
	}
	if err != nil {
		b.logf("run %s: cannot send the %s response: %v", p.Run, mode, err)
		if err := b.api.invocationError(inv.ID, errorInternal, fmt.Sprintf("cannot send the response: %v", err)); err != nil {
			b.logf("run %s: cannot report the error: %v", p.Run, err)
		}
	}
	d.exit(rec)
}

func (b *bootstrap) cleanup() {
	killLeftovers(0)
	if b.cfg.TmpDir == "" {
		return
	}
	if err := emptyDir(b.cfg.TmpDir); err != nil {
		b.logf("cannot empty %s: %v", b.cfg.TmpDir, err)
	}
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Printf("sockerless-bootstrap %s (payload v%d, %s)\n", version, PayloadVersion, runtime.Version())
		os.Exit(0)
	}
	logger := log.New(os.Stderr, "sockerless-bootstrap: ", 0)
	cfg, err := loadConfig()
	if cfg.RuntimeAPI == "" {
		logger.Print("AWS_LAMBDA_RUNTIME_API is not set: the bootstrap runs only as the runtime of a Lambda function")
		os.Exit(1)
	}
	api := newRuntimeAPI(cfg.RuntimeAPI)
	if err != nil {
		logger.Printf("invalid configuration: %v", err)
		if err := api.initError(errorInvalidConfiguration, err.Error()); err != nil {
			logger.Printf("cannot report the Init error: %v", err)
		}
		os.Exit(1)
	}
	if err := becomeSubreaper(); err != nil {
		logger.Printf("cannot become a child subreaper (daemons a command leaves may survive it): %v", err)
	}
	b := &bootstrap{cfg: cfg, api: api, durable: os.Stdout, buffered: cfg.Buffered, logger: logger}
	os.Exit(b.loop())
}
