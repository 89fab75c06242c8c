package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var epoch0 = time.Unix(0, 0).UTC()

// printed is what the command prints: "OUT: NAME@sha256:HEX (...".
var printed = regexp.MustCompile(`: (\S+)@sha256:([0-9a-f]{64}) \(`)

// TestImageIsReproducible runs `make image`'s command twice, each building the real
// operator (the second build mostly relinks from the build cache) and packing it: the
// tarballs and digests must be identical. It then checks what is in the image. The
// builds run in child processes, outside this test's race detector.
func TestImageIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the operator twice")
	}
	const ref = "registry.example.com:5000/mesosk3s/operator:v0.0.0-test"
	var (
		res  []result
		sums []string
	)
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "op.oci.tar")
		start := time.Now()
		cmd := exec.Command("go", "run", ".", "--ref", ref, "--out", out, "--module", filepath.Join("..", ".."))
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=")
		msg, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go run ./hack/image: %v\n%s", err, msg)
		}
		t.Logf("build %d in %s: %s", i+1, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(msg)))
		m := printed.FindStringSubmatch(string(msg))
		if m == nil {
			t.Fatalf("no digest in %q", msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, result{Name: m[1], Digest: v1.Hash{Algorithm: "sha256", Hex: m[2]}, Size: int64(len(b)), Dir: strings.TrimSuffix(out, ".tar")})
		sums = append(sums, sha(b))
	}
	if res[0].Digest != res[1].Digest || sums[0] != sums[1] {
		t.Fatalf("two builds gave different images: digests %s and %s, tarballs %s and %s", res[0].Digest, res[1].Digest, sums[0], sums[1])
	}
	t.Logf("image %s@%s, tarball %d bytes", res[0].Name, res[0].Digest, res[0].Size)

	if res[0].Name != "registry.example.com:5000/mesosk3s/operator:v0.0.0-test" {
		t.Errorf("name = %q", res[0].Name)
	}
	// Read the image back from the tarball, as ctr and crane would see it.
	dir := untar(t, filepath.Join(res[1].Dir+".tar"))
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.MediaType != types.OCIManifestSchema1 || desc.Digest != res[0].Digest {
		t.Errorf("index.json points at %s %s, want an OCI manifest %s", desc.MediaType, desc.Digest, res[0].Digest)
	}
	for _, k := range []string{annotationContainerdName, annotationRefName} {
		if desc.Annotations[k] != res[0].Name {
			t.Errorf("annotation %s = %q, want %q", k, desc.Annotations[k], res[0].Name)
		}
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != "amd64" {
		t.Errorf("platform = %+v", desc.Platform)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || strings.Join(cfg.Config.Entrypoint, " ") != "/manager" || len(cfg.Config.Cmd) != 0 {
		t.Errorf("config: user %q, entrypoint %q, cmd %q", cfg.Config.User, cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(epoch0) {
		t.Errorf("config: %s/%s created %s", cfg.OS, cfg.Architecture, cfg.Created.Time)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s", mt)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := readTar(t, rc)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	want := "etc/ etc/ssl/ etc/ssl/certs/ etc/ssl/certs/ca-certificates.crt manager"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("layer holds %s, want %s", got, want)
	}
	if f := files["manager"]; f.mode != 0o755 {
		t.Errorf("/manager: mode %o", f.mode)
	}
	checkStatic(t, files["manager"].data)
	pool := x509.NewCertPool()
	if ca := files[caPath]; ca.mode != 0o644 || !pool.AppendCertsFromPEM(ca.data) || bytes.Count(ca.data, []byte("BEGIN CERTIFICATE")) < 100 {
		t.Errorf("%s: mode %o, %d certificates", caPath, ca.mode, bytes.Count(ca.data, []byte("BEGIN CERTIFICATE")))
	}
}

// TestAssembleTwoPlatforms packs stand-in binaries for two platforms: index.json names
// an image index whose manifests carry their platforms.
func TestAssembleTwoPlatforms(t *testing.T) {
	amd, _ := parsePlatform("linux/amd64")
	arm, _ := parsePlatform("linux/arm64")
	out := filepath.Join(t.TempDir(), "op.oci.tar")
	res, err := assemble("mesosk3s/operator:dev", []input{
		{platform: amd, manager: []byte("amd64 binary")},
		{platform: arm, manager: []byte("arm64 binary")},
	}, []byte("ca"), epoch0, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "docker.io/mesosk3s/operator:dev" {
		t.Errorf("name = %q", res.Name)
	}
	top, err := layout.ImageIndexFromPath(untar(t, out))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := top.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIImageIndex || im.Manifests[0].Digest != res.Digest {
		t.Fatalf("index.json: %+v, want one image index %s", im.Manifests, res.Digest)
	}
	if im.Manifests[0].Annotations[annotationContainerdName] != res.Name {
		t.Errorf("annotations %v", im.Manifests[0].Annotations)
	}
	idx, err := top.ImageIndex(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := idx.IndexManifest()
	var got []string
	for _, m := range inner.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.ConfigFile()
		got = append(got, m.Platform.Architecture+m.Platform.Variant+"="+cfg.Architecture+cfg.Variant)
	}
	if strings.Join(got, " ") != "amd64=amd64 arm64v8=arm64v8" {
		t.Errorf("platforms (descriptor=config): %v", got)
	}
}

func TestNormalizeReference(t *testing.T) {
	for in, want := range map[string]string{
		"mesosk3s/operator:dev":                  "docker.io/mesosk3s/operator:dev",
		"busybox":                                "docker.io/library/busybox:latest",
		"docker.io/mesosk3s/operator:v1":         "docker.io/mesosk3s/operator:v1",
		"index.docker.io/mesosk3s/operator:v1":   "docker.io/mesosk3s/operator:v1",
		"registry.example.com:5000/a/b/c:v0.1.0": "registry.example.com:5000/a/b/c:v0.1.0",
		"localhost:5000/op:1":                    "localhost:5000/op:1",
	} {
		got, err := normalizeReference(in)
		if err != nil || got != want {
			t.Errorf("normalizeReference(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"Mesosk3s/Operator:dev", "op@sha256:" + strings.Repeat("0", 64), "op:a b"} {
		if got, err := normalizeReference(bad); err == nil {
			t.Errorf("normalizeReference(%q) = %q, want an error", bad, got)
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if got, err := sourceDateEpoch(); err != nil || !got.Equal(epoch0) {
		t.Errorf("unset: %s, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if got, err := sourceDateEpoch(); err != nil || got.Unix() != 1700000000 {
		t.Errorf("1700000000: %s, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := sourceDateEpoch(); err == nil {
		t.Error("yesterday: want an error")
	}
}

// checkStatic fails unless the ELF binary needs no dynamic loader or shared library.
func checkStatic(t *testing.T, binary []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("/manager is dynamically linked (program header %s)", p.Type)
		}
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("/manager is for %s", f.Machine)
	}
}

type tarFile struct {
	mode int64
	data []byte
}

// readTar reads a tar stream, checking that every entry has the fixed owner and time.
func readTar(t *testing.T, r io.Reader) map[string]tarFile {
	t.Helper()
	files := map[string]tarFile{}
	var order []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(epoch0) {
			t.Errorf("%s: owner %d:%d (%q:%q), time %s", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		files[h.Name] = tarFile{mode: h.Mode, data: data}
		order = append(order, h.Name)
	}
	if !sort.StringsAreSorted(order) {
		t.Errorf("tar entries are not sorted: %v", order)
	}
	return files
}

// untar unpacks an image tarball into a new directory, checking its entries on the way.
func untar(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	for name, file := range readTar(t, f) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, file.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The CA bundle is plain PEM certificates, nothing else.
func TestMozillaRootsArePEM(t *testing.T) {
	rest := mozillaRoots()
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); b.Type != "CERTIFICATE" || err != nil {
			t.Fatalf("block %d: %s, %v", n, b.Type, err)
		}
		n++
	}
	if len(bytes.TrimSpace(rest)) != 0 || n < 100 {
		t.Errorf("%d certificates, %d bytes left over", n, len(rest))
	}
}
