package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrTooLarge is returned when a manifest or config exceeds its size limit.
var ErrTooLarge = errors.New("response exceeds size limit")

// ErrDigestMismatch is returned when content does not hash to its digest.
var ErrDigestMismatch = errors.New("content does not match its digest")

// ErrPagination is returned when a tag list's Link pagination is refused:
// a Link to another origin, a loop, or too many pages.
var ErrPagination = errors.New("tag list pagination refused")

// HTTPError is a registry response with an unexpected status. It carries the
// distribution error codes (MANIFEST_UNKNOWN, DENIED, TOOMANYREQUESTS, ...).
type HTTPError struct {
	Method     string
	URL        string
	StatusCode int
	Codes      []string
	Message    string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if len(e.Codes) > 0 {
		msg += ": " + strings.Join(e.Codes, ", ")
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Reason classifies the error for people and for finding codes:
// auth, not-found, rate-limited, server, client.
func (e *HTTPError) Reason() string {
	switch {
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden || hasCode(e.Codes, "DENIED", "UNAUTHORIZED"):
		return "auth"
	case e.StatusCode == http.StatusNotFound || hasCode(e.Codes, "MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"):
		return "not-found"
	case e.StatusCode == http.StatusTooManyRequests || hasCode(e.Codes, "TOOMANYREQUESTS"):
		return "rate-limited"
	case e.StatusCode >= 500:
		return "server"
	}
	return "client"
}

func hasCode(codes []string, want ...string) bool {
	for _, c := range codes {
		for _, w := range want {
			if c == w {
				return true
			}
		}
	}
	return false
}

// newHTTPError reads (a bounded part of) the body for distribution error codes.
func newHTTPError(resp *http.Response, body []byte) *HTTPError {
	e := &HTTPError{Method: resp.Request.Method, URL: redact(resp.Request.URL.String()), StatusCode: resp.StatusCode}
	var parsed struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		var msgs []string
		for _, pe := range parsed.Errors {
			e.Codes = append(e.Codes, pe.Code)
			if pe.Message != "" {
				msgs = append(msgs, pe.Message)
			}
		}
		e.Message = strings.Join(msgs, "; ")
	}
	return e
}

// redact drops query strings and fragments (pre-signed blob URLs carry
// credentials in them).
func redact(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i] + "?<redacted>"
	}
	return u
}
