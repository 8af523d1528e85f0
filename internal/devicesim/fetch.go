package devicesim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/heraldiot/herald/protocol"
)

// ErrChecksumMismatch means a downloaded image's size or SHA-256 differs
// from its notice.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// maxResumes bounds the range requests that resume one interrupted
// download from one mirror, before the next mirror is tried.
const maxResumes = 3

// HTTPFetch returns a Behavior.Fetch that downloads a notice's image with
// client (nil: http.DefaultClient) as docs/protocol.md §10.4 says: mirrors
// in order until one answers, reading at most size+1 bytes, resuming an
// interrupted body with a range request, then checking size and SHA-256.
// The image is hashed as it arrives and not kept.
func HTTPFetch(client *http.Client) func(ctx context.Context, n *protocol.Notice) error {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context, n *protocol.Notice) error {
		var errs []error
		for _, a := range n.Artifacts {
			err := fetchOne(ctx, client, a.URL, n.Size, n.SHA256)
			if err == nil || errors.Is(err, ErrChecksumMismatch) || ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("download failed from every mirror: %w", errors.Join(errs...))
	}
}

// fetchOne downloads the image from url. When the body breaks off, it asks
// for the rest with "Range: bytes=N-", N being the bytes hashed so far, and
// continues only on a 206 whose Content-Range starts at N. A server that
// ignores Range answers 200 with the whole image, which is hashed from byte
// 0 again, never appended to the bytes already hashed; any other answer to
// a range request starts over from byte 0 too (docs/protocol.md §10.4).
func fetchOne(ctx context.Context, client *http.Client, url string, size int64, sum string) error {
	h := sha256.New()
	var got int64 // bytes hashed into h, the start of the image
	for resumes := 0; ; resumes++ {
		n, err := fetchRange(ctx, client, url, h, got, size)
		got = n
		if err == nil {
			break
		}
		if errors.Is(err, errStartOver) && resumes < maxResumes {
			h.Reset()
			got = 0
			continue
		}
		if !errors.Is(err, errBroken) || got == 0 || resumes >= maxResumes || ctx.Err() != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
	}
	if got != size {
		return fmt.Errorf("GET %s: %w: %d bytes, the notice says %d", url, ErrChecksumMismatch, got, size)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("GET %s: %w: SHA-256 differs from the notice", url, ErrChecksumMismatch)
	}
	return nil
}

var (
	// errBroken: the body ended early; the bytes read so far are good.
	errBroken = errors.New("download interrupted")
	// errStartOver: the answer to a range request cannot continue the
	// partial image.
	errStartOver = errors.New("the server cannot resume the download")
)

// fetchRange requests url from byte from on, hashing what arrives into h,
// and returns how many bytes of the image h holds then. It reads at most
// one byte more than size, enough to know the image is too long.
func fetchRange(ctx context.Context, client *http.Client, url string, h hash.Hash, from, size int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return from, err
	}
	if from > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
	}
	resp, err := client.Do(req)
	if err != nil {
		return from, fmt.Errorf("%w: %w", errBroken, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		// The whole image, whatever was asked: start from byte 0.
		h.Reset()
		from = 0
	case from > 0 && resp.StatusCode == http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != from {
			return from, fmt.Errorf("%w: asked for bytes %d-, got Content-Range %q", errStartOver, from, resp.Header.Get("Content-Range"))
		}
	case from > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return from, fmt.Errorf("%w: %s", errStartOver, resp.Status)
	default:
		return from, errors.New(resp.Status)
	}
	n, err := io.Copy(h, io.LimitReader(resp.Body, size+1-from))
	if err != nil {
		return from + n, fmt.Errorf("%w: %w", errBroken, err)
	}
	return from + n, nil
}

// contentRangeStart returns the first byte position of a Content-Range
// header such as "bytes 100-999/1000" (RFC 9110 §14.4).
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}
