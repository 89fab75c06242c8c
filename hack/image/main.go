// Command image builds the operator's container image without a container engine: it
// compiles a static /manager with the Go toolchain, puts it and a CA bundle into one
// layer, and writes an OCI image layout, as a directory and as a tarball, that
// `ctr images import`, `crane push DIR` and `skopeo copy oci-archive:` take.
//
// The result depends on nothing but the source tree, go.sum and the Go toolchain: file
// times are SOURCE_DATE_EPOCH (0 unless set), tar entries are sorted with fixed owners
// and modes, the binary is built with -trimpath and without VCS stamping, and the CA
// bundle comes from a pinned Go module instead of the build machine. Two builds give
// the same digest (TestImageIsReproducible).
//
//	go run ./hack/image --ref registry.example.com/mesosk3s/operator:v0.1.0 --out bin/mesosk3s-operator.oci.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	// user is the distroless "nonroot" user; the image has no /etc/passwd, so it is numeric.
	user = "65532:65532"
	// managerPath and caPath are where the binary and the CA bundle go. caPath is the
	// first file Go's crypto/x509 reads for system roots on Linux.
	managerPath = "manager"
	caPath      = "etc/ssl/certs/ca-certificates.crt"

	// annotationContainerdName is the name `ctr images import` gives the image; it
	// reads it before org.opencontainers.image.ref.name.
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// buildFlags are the flags of the operator binary; the Makefile and the tests use these.
var buildFlags = []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

func main() {
	var (
		ref       = flag.String("ref", "mesosk3s/operator:dev", "Image reference (with a tag) recorded in the layout's index.json; `ctr images import` names the image after it.")
		out       = flag.String("out", "bin/mesosk3s-operator.oci.tar", "The OCI layout tarball to write; the layout directory goes next to it, without .tar.")
		platforms = flag.String("platforms", "linux/amd64", "Comma-separated OS/ARCH list; more than one makes an image index.")
		module    = flag.String("module", ".", "Directory of the operator's main package.")
		caBundle  = flag.String("ca-bundle", "", "PEM file to use as the image's CA bundle instead of the pinned Mozilla NSS roots (the build is then only as reproducible as that file).")
	)
	flag.Parse()
	if err := run(context.Background(), *ref, *out, *platforms, *module, *caBundle); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, ref, out, platformList, module, caFile string) error {
	start := time.Now()
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	var ca []byte
	if caFile != "" {
		if ca, err = os.ReadFile(caFile); err != nil {
			return err
		}
	} else {
		ca = mozillaRoots()
	}
	var inputs []input
	tmp, err := os.MkdirTemp("", "mesosk3s-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range strings.Split(platformList, ",") {
		plat, err := parsePlatform(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		bin := filepath.Join(tmp, plat.OS+"-"+plat.Architecture, "manager")
		if err := buildManager(ctx, module, plat, bin); err != nil {
			return err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		inputs = append(inputs, input{platform: plat, manager: data})
	}
	res, err := assemble(ref, inputs, ca, epoch, out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s@%s (%s, %d bytes; layout in %s/) in %s\n", out, res.Name, res.Digest, platformList,
		res.Size, res.Dir, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// sourceDateEpoch is the time every file and the image carry: SOURCE_DATE_EPOCH when
// set (reproducible-builds.org convention), else the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time in seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func parsePlatform(s string) (v1.Platform, error) {
	osName, arch, ok := strings.Cut(s, "/")
	if !ok || osName != "linux" || arch == "" || strings.Contains(arch, "/") {
		return v1.Platform{}, fmt.Errorf("platform %q: want linux/ARCH", s)
	}
	p := v1.Platform{OS: osName, Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p, nil
}

// buildManager compiles the operator for plat into out: static (no cgo), with no file
// paths, VCS data or symbol tables in it. The environment is pinned where it changes the
// code generated (GOAMD64 and friends, GOFLAGS, GOEXPERIMENT), so that a developer's
// settings do not end up in a release image.
func buildManager(ctx context.Context, module string, plat v1.Platform, out string) error {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{}, buildFlags...), "-o", out, ".")...)
	cmd.Dir = module
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "CGO_ENABLED", k == "GOOS", k == "GOARCH", k == "GOFLAGS", k == "GOEXPERIMENT",
			k == "GOAMD64", k == "GOARM", k == "GOARM64", k == "GO386", k == "GOPPC64", k == "GORISCV64", k == "GOMIPS", k == "GOMIPS64", k == "GOWASM":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture, "GOFLAGS=", "GOEXPERIMENT=")
	switch plat.Architecture {
	case "amd64":
		env = append(env, "GOAMD64=v1")
	case "arm64":
		env = append(env, "GOARM64=v8.0")
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s for %s/%s: %w\n%s", strings.Join(buildFlags, " "), plat.OS, plat.Architecture, err, stderr.String())
	}
	return nil
}

// mozillaRoots is the NSS (Mozilla) root store of the pinned golang.org/x/crypto/x509roots
// module as PEM. Roots that NSS distrusts after a date are left out: a PEM bundle cannot
// carry that constraint, and trusting them without it would be wider than NSS.
func mozillaRoots() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// input is one platform's binary.
type input struct {
	platform v1.Platform
	manager  []byte
}

// result describes what assemble wrote.
type result struct {
	Name   string  // the normalized reference recorded in index.json
	Digest v1.Hash // of the image manifest (one platform) or the image index
	Size   int64   // of the tarball
	Dir    string  // the OCI layout directory
}

// assemble writes the image for inputs as an OCI layout directory (out without .tar) and
// as the tarball out.
func assemble(ref string, inputs []input, ca []byte, epoch time.Time, out string) (result, error) {
	if len(inputs) == 0 {
		return result{}, errors.New("no platform to build")
	}
	full, err := normalizeReference(ref)
	if err != nil {
		return result{}, err
	}
	annotations := map[string]string{annotationContainerdName: full, annotationRefName: full}

	var adds []mutate.IndexAddendum
	for _, in := range inputs {
		img, err := platformImage(in, ca, epoch)
		if err != nil {
			return result{}, err
		}
		p := in.platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}

	dir := strings.TrimSuffix(out, ".tar")
	if dir == out {
		return result{}, fmt.Errorf("--out %s: the tarball's name must end in .tar", out)
	}
	if err := os.RemoveAll(dir); err != nil {
		return result{}, err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return result{}, err
	}
	var digest v1.Hash
	if len(adds) == 1 {
		// One platform: index.json points at the image manifest itself, which is what
		// `crane push DIR` and most tools expect.
		img := adds[0].Add.(v1.Image)
		if digest, err = img.Digest(); err != nil {
			return result{}, err
		}
		err = lp.AppendImage(img, layout.WithAnnotations(annotations), layout.WithPlatform(*adds[0].Descriptor.Platform))
	} else {
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
		if digest, err = idx.Digest(); err != nil {
			return result{}, err
		}
		err = lp.AppendIndex(idx, layout.WithAnnotations(annotations))
	}
	if err != nil {
		return result{}, err
	}
	size, err := tarDir(dir, out, epoch)
	if err != nil {
		return result{}, err
	}
	return result{Name: full, Digest: digest, Size: size, Dir: dir}, nil
}

// platformImage is the image for one platform: a single layer with /manager and the CA
// bundle, run as 65532:65532 with /manager as its entrypoint.
func platformImage(in input, ca []byte, epoch time.Time) (v1.Image, error) {
	layerData, err := rootfs(in.manager, ca, epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "hack/image: /" + managerPath + " (CGO_ENABLED=0 go " + strings.Join(buildFlags, " ") + ") and /" + caPath,
		},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = in.platform.OS, in.platform.Architecture, in.platform.Variant
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config = v1.Config{
		User:       user,
		Entrypoint: []string{"/" + managerPath},
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "mesosk3s-operator",
			"org.opencontainers.image.description": "The mesosk3s operator: K3s clusters on Apache Mesos",
			"org.opencontainers.image.source":      "https://github.com/mesosk3s/mesosk3s",
		},
	}
	return mutate.ConfigFile(img, cfg)
}

// rootfs is the layer's uncompressed tar: parent directories, then files, in name order,
// owned by root, with fixed modes and times.
func rootfs(manager, ca []byte, epoch time.Time) ([]byte, error) {
	type entry struct {
		name string
		mode int64
		data []byte
		dir  bool
	}
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: caPath, mode: 0o644, data: ca},
		{name: managerPath, mode: 0o755, data: manager},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// tarDir writes the layout directory dir as the tarball out, entries sorted, with the
// same owners, modes and times on every build, and returns its size.
func tarDir(dir, out string, epoch time.Time) (int64, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return 0, err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, n := range names {
		h := &tar.Header{Name: n, ModTime: epoch, Format: tar.FormatPAX}
		var data []byte
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		} else {
			if data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(n))); err != nil {
				f.Close()
				return 0, err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Close()
			return 0, err
		}
		if _, err := tw.Write(data); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return st.Size(), os.Rename(tmp, out)
}

// normalizeReference turns ref into the fully qualified name containerd and the kubelet
// use: docker.io (not gcr's index.docker.io) for Docker Hub, library/ for its one-word
// names, and a tag. A pod with `image: mesosk3s/operator:dev` finds an image imported as
// docker.io/mesosk3s/operator:dev.
func normalizeReference(ref string) (string, error) {
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("image reference %q: give a tag, not a digest (the digest is what the build produces)", ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	registry := tag.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr(), nil
}
