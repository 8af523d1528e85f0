package devicesim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/heraldiot/herald/protocol"
)

// ErrChecksumMismatch means a downloaded image's size or SHA-256 differs
// from its notice.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// HTTPFetch returns a Behavior.Fetch that downloads a notice's image with
// client (nil: http.DefaultClient) as docs/protocol.md §10.4 says: mirrors
// in order until one answers, reading at most size+1 bytes, then checking
// size and SHA-256. The image is hashed as it arrives and not kept.
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

func fetchOne(ctx context.Context, client *http.Client, url string, size int64, sum string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	// One byte more than announced is enough to know the image is too long.
	got, err := io.Copy(h, io.LimitReader(resp.Body, size+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if got != size {
		return fmt.Errorf("GET %s: %w: %d bytes, the notice says %d", url, ErrChecksumMismatch, got, size)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("GET %s: %w: SHA-256 differs from the notice", url, ErrChecksumMismatch)
	}
	return nil
}
