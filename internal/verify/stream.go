package verify

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// budget counts what one verification has pulled and decompressed, over
// all its layer streams (rereads included). One verification runs on one
// goroutine, so plain fields suffice.
type budget struct {
	limits       Limits
	compressed   int64
	decompressed int64
	opened       int
	entries      int
	lookups      int64
}

// stream is one pass over one layer: compressed bytes counted, then
// decompressed (gzip, zstd or plain tar, sniffed from the magic bytes so a
// mislabeled media type does not matter), then tar.
type stream struct {
	layer int
	rc    io.ReadCloser
	zr    *zstd.Decoder
	tr    *tar.Reader
	stop  func() bool
}

const (
	gzipMagic = "\x1f\x8b"
	zstdMagic = "\x28\xb5\x2f\xfd"
)

// open starts reading layer i (0 = bottom). Closing the stream when ctx is
// done unblocks a read stuck on the network.
func (b *budget) open(ctx context.Context, l v1.Layer, i int) (*stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("opening layer %d: %w", i+1, err)
	}
	b.opened++
	s := &stream{layer: i, rc: rc}
	s.stop = context.AfterFunc(ctx, func() { rc.Close() })
	br := bufio.NewReaderSize(&counter{ctx: ctx, r: rc, n: &b.compressed, limit: b.limits.Compressed, what: "compressed bytes"}, 32<<10)
	magic, _ := br.Peek(4)
	var dec io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte(gzipMagic)):
		zr, err := gzip.NewReader(br)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("reading layer %d: %w", i+1, err)
		}
		dec = zr
	case bytes.HasPrefix(magic, []byte(zstdMagic)):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("reading layer %d: %w", i+1, err)
		}
		s.zr, dec = zr, zr
	default:
		dec = br
	}
	var perLayer int64
	dec = &counter{ctx: ctx, r: dec, n: &perLayer, limit: b.limits.LayerDecompressed, what: fmt.Sprintf("decompressed bytes in layer %d", i+1)}
	dec = &counter{ctx: ctx, r: dec, n: &b.decompressed, limit: b.limits.Decompressed, what: "decompressed bytes"}
	s.tr = tar.NewReader(dec)
	return s, nil
}

func (s *stream) close() {
	if s == nil {
		return
	}
	s.stop()
	if s.zr != nil {
		s.zr.Close()
	}
	s.rc.Close()
}

// counter counts bytes read into *n and fails once *n would pass limit.
type counter struct {
	ctx   context.Context
	r     io.Reader
	n     *int64
	limit int64
	what  string
}

func (c *counter) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if *c.n >= c.limit {
		return 0, &LimitError{What: c.what, Limit: c.limit}
	}
	if room := c.limit - *c.n; int64(len(p)) > room {
		p = p[:room]
	}
	k, err := c.r.Read(p)
	*c.n += int64(k)
	if err == nil && c.ctx.Err() != nil {
		err = c.ctx.Err()
	}
	return k, err
}
