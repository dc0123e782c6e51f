package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// RuntimeAPI is a client of Lambda's Runtime API (version 2018-06-01).
type RuntimeAPI struct {
	base   string
	client *http.Client
}

// Invocation is one answer of /invocation/next.
type Invocation struct {
	ID string
	// Deadline is when Lambda stops the environment; zero when the header was missing.
	Deadline time.Time
	// TraceID is Lambda-Runtime-Trace-Id, given to the command as _X_AMZN_TRACE_ID as Lambda's runtimes do.
	TraceID string
	Body    []byte
}

func newRuntimeAPI(address string) *RuntimeAPI {
	// No client timeout: /next blocks for as long as no invocation comes, and a response streams for as
	// long as the command runs.
	return &RuntimeAPI{base: "http://" + address + "/2018-06-01/runtime", client: &http.Client{}}
}

func (api *RuntimeAPI) next() (*Invocation, error) {
	resp, err := api.client.Get(api.base + "/invocation/next")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /invocation/next answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	inv := &Invocation{
		ID: resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), TraceID: resp.Header.Get("Lambda-Runtime-Trace-Id"), Body: body,
	}
	if inv.ID == "" {
		return nil, fmt.Errorf("GET /invocation/next answered without Lambda-Runtime-Aws-Request-Id")
	}
	if ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64); err == nil && ms > 0 {
		inv.Deadline = time.UnixMilli(ms)
	}
	return inv, nil
}

// errorBody is the JSON Lambda expects for function and Init errors.
func errorBody(kind, message string) []byte {
	body, _ := json.Marshal(map[string]any{"errorMessage": message, "errorType": kind, "stackTrace": []string{}})
	return body
}

func (api *RuntimeAPI) postError(path, kind, message string) error {
	req, err := http.NewRequest(http.MethodPost, api.base+path, bytes.NewReader(errorBody(kind, message)))
	if err != nil {
		return err
	}
	req.Header.Set("Lambda-Runtime-Function-Error-Type", kind)
	req.Header.Set("Content-Type", "application/json")
	return api.send(req)
}

func (api *RuntimeAPI) invocationError(id, kind, message string) error {
	return api.postError("/invocation/"+id+"/error", kind, message)
}

func (api *RuntimeAPI) initError(kind, message string) error {
	return api.postError("/init/error", kind, message)
}

// respondBuffered posts the whole response at once.
func (api *RuntimeAPI) respondBuffered(id string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, api.base+"/invocation/"+id+"/response", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	return api.send(req)
}

func (api *RuntimeAPI) send(req *http.Request) error {
	resp, err := api.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &statusError{status: resp.StatusCode, message: string(bytes.TrimSpace(answer))}
	}
	return nil
}

// statusError is a Runtime API answer other than 2xx.
type statusError struct {
	status  int
	message string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("the Runtime API answered %d: %s", e.status, e.message)
}

// contentType names the frames for whoever looks at the response's headers.
const contentType = "application/vnd.sockerless.frames"
