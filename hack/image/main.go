// Command image builds archfit's own container image for linux/amd64 and
// linux/arm64 without a Docker daemon (make image) and pushes it to a
// registry or writes it to an OCI image layout.
//
//	go run ./hack/image --push ghcr.io/archfit/archfit:v0.1.0
//	go run ./hack/image --oci-layout dist/image --tag ghcr.io/archfit/archfit:v0.1.0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	push := fs.String("push", "", "push the image index to this reference (REPO:TAG); credentials from the docker config")
	ociLayout := fs.String("oci-layout", "", "write the image index to this OCI image layout directory, named by --tag (or --push)")
	tag := fs.String("tag", "ghcr.io/archfit/archfit:latest", "the reference the OCI layout names the image by")
	version := fs.String("version", "devel", "archfit's version: linked into the binary and the org.opencontainers.image.version label")
	revision := fs.String("revision", "", "org.opencontainers.image.revision label (the git commit)")
	source := fs.String("source", release.DefaultSource, "org.opencontainers.image.source label")
	ca := fs.String("ca-certificates", release.DefaultCACertificates, "CA bundle copied into the image (\"\" for none)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64/v8", "comma-separated platforms to build")
	noCache := fs.Bool("no-cache", false, "build the binaries even when the cache has them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *push == "" && *ociLayout == "" {
		return errors.New("nothing to do: give --push REF and/or --oci-layout DIR")
	}
	layoutRef, err := name.NewTag(*tag)
	if *push != "" && *ociLayout != "" && *tag == fs.Lookup("tag").DefValue {
		layoutRef, err = name.NewTag(*push)
	}
	if err != nil {
		return fmt.Errorf("--tag: %w", err)
	}
	var pushRef name.Reference
	if *push != "" {
		if pushRef, err = name.ParseReference(*push); err != nil {
			return fmt.Errorf("--push: %w", err)
		}
	}
	epoch, err := release.EpochFromEnv()
	if err != nil {
		return err
	}
	var plats []v1.Platform
	for _, s := range strings.Split(*platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--platforms: %w", err)
		}
		plats = append(plats, *p)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	o := release.ImageOptions{
		ModuleRoot: root, Version: *version, Revision: *revision, Source: *source, Epoch: epoch,
		Platforms: plats, CACertificates: *ca, Log: os.Stderr,
	}
	if !*noCache {
		if o.CacheDir, err = release.DefaultBinaryCache(ctx); err != nil {
			return err
		}
	}
	begin := time.Now()
	idx, err := release.BuildImage(ctx, o)
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "built the image index %s in %s\n", d, time.Since(begin).Round(time.Millisecond))
	if *ociLayout != "" {
		if err := release.WriteLayout(*ociLayout, idx, layoutRef); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s to the OCI layout %s\n", layoutRef, *ociLayout)
	}
	if pushRef != nil {
		if err := release.Push(ctx, pushRef, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pushed %s\n", pushRef)
	}
	fmt.Println(d)
	return nil
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from archfit's checkout")
		}
		dir = parent
	}
}
