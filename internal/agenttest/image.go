package agenttest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// Image is test image content and its checksum.
type Image struct {
	Data []byte
	// SHA256 is the hex sha256 of Data.
	SHA256 string
}

// NewImage returns size random bytes and their checksum.
func NewImage(t testing.TB, size int) Image {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	s := sha256.Sum256(b)
	return Image{Data: b, SHA256: hex.EncodeToString(s[:])}
}

// ImageServer is a real HTTP server serving an image well and badly:
//
//	/image      the whole image, with Content-Length
//	/chunked    the whole image, without Content-Length
//	/truncated  Content-Length of the whole, half the bytes, then the connection is cut
//	/stall      half the bytes, then nothing until the client gives up
//	/gated      the whole image once Gate is closed
//	/missing    404
type ImageServer struct {
	*httptest.Server
	// Gate holds /gated's answers back until the test closes it.
	Gate chan struct{}
}

// NewImageServer serves img until the test ends.
func NewImageServer(t testing.TB, img Image) *ImageServer {
	t.Helper()
	s := &ImageServer{Gate: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /image", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img.Data)))
		_, _ = w.Write(img.Data)
	})
	mux.HandleFunc("GET /chunked", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(img.Data[:len(img.Data)/2])
		w.(http.Flusher).Flush()
		_, _ = w.Write(img.Data[len(img.Data)/2:])
	})
	mux.HandleFunc("GET /truncated", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img.Data)))
		_, _ = w.Write(img.Data[:len(img.Data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cuts the connection mid-body
	})
	mux.HandleFunc("GET /stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img.Data)))
		_, _ = w.Write(img.Data[:len(img.Data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /gated", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.Gate:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(img.Data)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}
