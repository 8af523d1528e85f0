package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// FirmwareServer serves one firmware image over HTTP, as a fleet's
// download server would, so that simulated devices (fleetsim --fetch)
// really download and check what a rollout names.
type FirmwareServer struct {
	// URL is where the image is.
	URL string
	// SHA256 and Size describe the image, as a FirmwareRollout does.
	SHA256 string
	Size   int64

	image     []byte
	srv       *http.Server
	downloads atomic.Int64
}

// imageSize is the demo image's size: big enough to be a real transfer,
// small enough that hundreds of devices fetch it in no time.
const imageSize = 256 << 10

// startFirmwareServer serves a deterministic image on a free loopback port.
func startFirmwareServer() (*FirmwareServer, error) {
	image := make([]byte, imageSize)
	r := rand.New(rand.NewPCG(2026, 3))
	for i := range image {
		image[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(image)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fs := &FirmwareServer{
		URL:    "http://" + l.Addr().String() + "/firmware/herald-demo.bin",
		SHA256: hex.EncodeToString(sum[:]),
		Size:   imageSize,
		image:  image,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /firmware/", func(w http.ResponseWriter, r *http.Request) {
		fs.downloads.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "herald-demo.bin", time.Time{}, bytes.NewReader(fs.image))
	})
	fs.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fs.srv.Serve(l) }()
	return fs, nil
}

// Downloads counts the requests for the image so far.
func (fs *FirmwareServer) Downloads() int64 { return fs.downloads.Load() }

// Stop closes the server.
func (fs *FirmwareServer) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fs.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
