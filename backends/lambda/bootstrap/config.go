package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Config is the bootstrap's configuration, read once from its environment at Init.
type Config struct {
	RuntimeAPI     string
	Buffered       bool
	DeadlineMargin time.Duration
	KillGrace      time.Duration
	StreamingLimit int64
	BufferedLimit  int64
	// TmpDir is emptied after each invocation; "" means no cleanup.
	TmpDir string
}

const (
	defaultDeadlineMargin = 1000 * time.Millisecond
	defaultKillGrace      = 500 * time.Millisecond
	defaultStreamingLimit = 200 << 20
	defaultBufferedLimit  = 6 << 20
	// minResponseLimit leaves room for output next to the exit frame's reserve.
	minResponseLimit = 2 * exitReserve
)

func millis(name string, fallback time.Duration) (time.Duration, error) {
	value, ok := os.LookupEnv(name)
	if !ok || value == "" {
		return fallback, nil
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q is not a number of milliseconds", name, value)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func bytesSetting(name string, fallback int64) (int64, error) {
	value, ok := os.LookupEnv(name)
	if !ok || value == "" {
		return fallback, nil
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n < minResponseLimit {
		return 0, fmt.Errorf("%s=%q is not a number of bytes of at least %d", name, value, minResponseLimit)
	}
	return n, nil
}

// loadConfig reads the environment; an error is an Init error.
func loadConfig() (Config, error) {
	c := Config{RuntimeAPI: os.Getenv("AWS_LAMBDA_RUNTIME_API"), TmpDir: "/tmp"}
	switch mode := os.Getenv("SOCKERLESS_BOOTSTRAP_RESPONSE_MODE"); mode {
	case "", "streaming":
	case "buffered":
		c.Buffered = true
	default:
		return c, fmt.Errorf("SOCKERLESS_BOOTSTRAP_RESPONSE_MODE=%q is neither streaming nor buffered", mode)
	}
	var err error
	if c.DeadlineMargin, err = millis("SOCKERLESS_BOOTSTRAP_DEADLINE_MARGIN_MS", defaultDeadlineMargin); err != nil {
		return c, err
	}
	if c.KillGrace, err = millis("SOCKERLESS_BOOTSTRAP_KILL_GRACE_MS", defaultKillGrace); err != nil {
		return c, err
	}
	if c.KillGrace >= c.DeadlineMargin {
		return c, fmt.Errorf("the kill grace (%v) must be less than the deadline margin (%v)", c.KillGrace, c.DeadlineMargin)
	}
	if c.StreamingLimit, err = bytesSetting("SOCKERLESS_BOOTSTRAP_STREAMING_LIMIT", defaultStreamingLimit); err != nil {
		return c, err
	}
	if c.BufferedLimit, err = bytesSetting("SOCKERLESS_BOOTSTRAP_BUFFERED_LIMIT", defaultBufferedLimit); err != nil {
		return c, err
	}
	if dir, ok := os.LookupEnv("SOCKERLESS_BOOTSTRAP_TMP_DIR"); ok {
		c.TmpDir = dir
	}
	return c, nil
}
