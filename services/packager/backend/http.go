package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Registry HTTP bounds.
const (
	// RequestTimeout bounds one registry request, connection included.
	RequestTimeout = 10 * time.Second
	// maxBody bounds a registry answer (PyPI's JSON for a package with
	// many releases runs to megabytes).
	maxBody = 32 << 20
)

// NewHTTPClient returns the client backends query registries with: the
// environment's proxy settings, RequestTimeout per request, and file://
// URLs served from the local filesystem (a Go module proxy in a directory).
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	return &http.Client{Transport: tr, Timeout: RequestTimeout}
}

// Fetch GETs url. A transport failure (refused, unresolvable, timed out)
// is an Unreachable error naming registry; any HTTP answer is returned with
// its status, whatever it is. A canceled ctx is returned as is.
func Fetch(ctx context.Context, client *http.Client, registry, url string, header http.Header) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("request %s: %w", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, Unreachable(registry, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, Unreachable(registry, err)
	}
	if len(body) > maxBody {
		return nil, resp.StatusCode, Errorf(KindInternal, nil, "%s answered more than %d bytes for %s", registry, maxBody, url)
	}
	return body, resp.StatusCode, nil
}

// StatusError is the error for an HTTP answer a backend did not expect.
func StatusError(registry, url string, status int) error {
	return Errorf(KindFailed, errors.New(http.StatusText(status)), "%s answered %d %s for %s", registry, status, http.StatusText(status), url)
}
