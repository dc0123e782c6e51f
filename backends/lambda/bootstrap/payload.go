package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// PayloadVersion is the one payload version this bootstrap reads (docs/bootstrap.md).
const PayloadVersion = 1

// Error types posted to /invocation/ID/error and /init/error.
const (
	errorInvalidPayload       = "Sockerless.InvalidPayload"
	errorUnsupportedVersion   = "Sockerless.UnsupportedPayloadVersion"
	errorInvalidConfiguration = "Sockerless.InvalidConfiguration"
	errorInternal             = "Sockerless.BootstrapError"
)

// Limits are the bytes of each stream that are kept; 0 means no limit.
type Limits struct {
	Stdout int64 `json:"stdout"`
	Stderr int64 `json:"stderr"`
}

// Payload is what the backend writes as the invocation's body.
type Payload struct {
	V         int      `json:"v"`
	Container string   `json:"container"`
	Run       string   `json:"run"`
	Argv      []string `json:"argv"`
	Env       []string `json:"env"`
	Workdir   string   `json:"workdir"`
	Stdin     *string  `json:"stdin"`
	Limits    Limits   `json:"limits"`

	stdin []byte
}

// payloadError is a payload the bootstrap refuses, with the error type the caller sees.
type payloadError struct {
	kind    string
	message string
}

func (e *payloadError) Error() string { return e.message }

func invalid(format string, args ...any) *payloadError {
	return &payloadError{kind: errorInvalidPayload, message: fmt.Sprintf(format, args...)}
}

// parsePayload reads and checks an invocation body.
func parsePayload(body []byte) (*Payload, *payloadError) {
	var probe struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, invalid("the invocation payload is not a JSON object: %v", err)
	}
	if probe.V == nil {
		return nil, invalid("the invocation payload has no version field \"v\"")
	}
	if *probe.V != PayloadVersion {
		return nil, &payloadError{
			kind:    errorUnsupportedVersion,
			message: fmt.Sprintf("payload version %d is not supported: this bootstrap reads version %d", *probe.V, PayloadVersion),
		}
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, invalid("the invocation payload does not match version %d: %v", PayloadVersion, err)
	}
	if p.Run == "" {
		return nil, invalid("the invocation payload has no run ID (\"run\")")
	}
	if len(p.Argv) == 0 || p.Argv[0] == "" {
		return nil, invalid("the invocation payload has no command (\"argv\" is empty)")
	}
	for _, item := range p.Env {
		if i := strings.IndexByte(item, '='); i <= 0 {
			return nil, invalid("environment item %q is not KEY=VALUE", item)
		}
	}
	if p.Workdir != "" && !filepath.IsAbs(p.Workdir) {
		return nil, invalid("the working directory %q is not absolute", p.Workdir)
	}
	if p.Limits.Stdout < 0 || p.Limits.Stderr < 0 {
		return nil, invalid("output limits cannot be negative (stdout %d, stderr %d)", p.Limits.Stdout, p.Limits.Stderr)
	}
	if p.Stdin != nil {
		data, err := base64.StdEncoding.DecodeString(*p.Stdin)
		if err != nil {
			return nil, invalid("stdin is not base64: %v", err)
		}
		p.stdin = data
	}
	return &p, nil
}
