package devicesim_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/protocol"
)

// TestHTTPFetchResume: a body that breaks off is resumed with a range
// request; a server that ignores Range and sends the whole image again is
// read from byte 0, never appended, and a 206 for the wrong range starts
// over (docs/protocol.md §10.4).
func TestHTTPFetchResume(t *testing.T) {
	image := []byte(strings.Repeat("0123456789abcdef", 4096))
	sum := sha256.Sum256(image)
	var mu sync.Mutex
	requests := map[string][]string{} // path → Range headers, in order
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.URL.Path] = append(requests[r.URL.Path], r.Header.Get("Range"))
		first := len(requests[r.URL.Path]) == 1
		mu.Unlock()
		if first && r.URL.Path != "/whole" {
			// Announce the whole image, send a third of it, hang up.
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			writeCut(buf, image)
			return
		}
		switch r.URL.Path {
		case "/resumes":
			http.ServeContent(w, r, "fw.bin", time.Time{}, strings.NewReader(string(image)))
		case "/ignores-range", "/whole":
			_, _ = w.Write(image)
		case "/wrong-range":
			if r.Header.Get("Range") == "" {
				_, _ = w.Write(image)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(image)-1, len(image)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(image)
		}
	}))
	defer srv.Close()
	third := fmt.Sprintf("bytes=%d-", len(image)/3)
	for _, tc := range []struct {
		path   string
		ranges []string // the Range header of each request
	}{
		{"/whole", []string{""}},
		{"/resumes", []string{"", third}},
		{"/ignores-range", []string{"", third}},
		{"/wrong-range", []string{"", third, ""}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			n := &protocol.Notice{
				Artifacts: []protocol.Artifact{{URL: srv.URL + tc.path}},
				SHA256:    hex.EncodeToString(sum[:]), Size: int64(len(image)),
			}
			if err := devicesim.HTTPFetch(srv.Client())(context.Background(), n); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got := requests[tc.path]
			mu.Unlock()
			if strings.Join(got, ",") != strings.Join(tc.ranges, ",") {
				t.Fatalf("requests with Range %q, want %q", got, tc.ranges)
			}
		})
	}
}

// writeCut writes a 200 response that announces image but carries only
// its first third.
func writeCut(buf *bufio.ReadWriter, image []byte) {
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(image))
	_, _ = buf.Write(image[:len(image)/3])
	_ = buf.Flush()
}

// TestHTTPFetchTooLong: a server that sends more than size bytes fails
// the download with a checksum mismatch, resumed or not.
func TestHTTPFetchTooLong(t *testing.T) {
	image := []byte(strings.Repeat("x", 1000))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(image) }))
	defer srv.Close()
	sum := sha256.Sum256(image[:999])
	n := &protocol.Notice{Artifacts: []protocol.Artifact{{URL: srv.URL}}, SHA256: hex.EncodeToString(sum[:]), Size: 999}
	if err := devicesim.HTTPFetch(srv.Client())(context.Background(), n); !errors.Is(err, devicesim.ErrChecksumMismatch) {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
}
