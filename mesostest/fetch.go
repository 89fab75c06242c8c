package mesostest

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fetchTimeout bounds one download, as the fetcher's stall timeout does.
const fetchTimeout = 5 * time.Minute

// fetchURIs does what the Mesos fetcher does before a container starts:
// every URI is copied into the sandbox (as output_file or its base name),
// made executable or extracted as asked. The cache flag is ignored (every
// fetch is a direct download). Only file:// (or plain paths) and loopback
// http(s):// URIs are allowed: the emulator must not reach the network.
func fetchURIs(ctx context.Context, sandbox string, uris []mesos.CommandInfo_URI) error {
	for _, u := range uris {
		if err := fetchURI(ctx, sandbox, u); err != nil {
			return fmt.Errorf("failed to fetch '%s': %w", u.Value, err)
		}
	}
	return nil
}

func fetchURI(ctx context.Context, sandbox string, u mesos.CommandInfo_URI) error {
	name := u.GetOutputFile()
	if name == "" {
		name = path.Base(strings.SplitN(u.Value, "?", 2)[0])
	}
	if name == "" || name == "/" || name == "." {
		return errors.New("cannot derive a file name")
	}
	dest, err := sandboxPath(sandbox, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if err := download(ctx, u.Value, dest); err != nil {
		return err
	}
	if u.GetExecutable() {
		return os.Chmod(dest, 0o755)
	}
	if u.GetExtract() {
		return extract(dest, sandbox)
	}
	return nil
}

// sandboxPath joins name to the sandbox, refusing paths that escape it.
func sandboxPath(sandbox, name string) (string, error) {
	p := filepath.Join(sandbox, name)
	if p != sandbox && !strings.HasPrefix(p, sandbox+string(filepath.Separator)) {
		return "", fmt.Errorf("path %q escapes the sandbox", name)
	}
	return p, nil
}

func download(ctx context.Context, raw, dest string) error {
	parsed, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch parsed.Scheme {
	case "", "file":
		src := parsed.Path
		if parsed.Scheme == "" {
			src = raw
		}
		if !filepath.IsAbs(src) {
			return fmt.Errorf("local path %q must be absolute", src)
		}
		return copyFile(src, dest)
	case "http", "https":
		if !isLoopbackHost(parsed.Hostname()) {
			return fmt.Errorf("host %q is not a loopback address (the emulator fetches only from this machine)", parsed.Hostname())
		}
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return writeFile(dest, resp.Body)
	default:
		return fmt.Errorf("unsupported URI scheme %q", parsed.Scheme)
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func copyFile(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFile(dest, in)
}

func writeFile(dest string, r io.Reader) error {
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// extract unpacks archives the fetcher knows; other files are left as they
// are (the fetcher only extracts recognised archive types).
func extract(file, dir string) error {
	lower := strings.ToLower(file)
	switch {
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		return withFile(file, func(f *os.File) error {
			gz, err := gzip.NewReader(f)
			if err != nil {
				return err
			}
			defer gz.Close()
			return untar(gz, dir)
		})
	case strings.HasSuffix(lower, ".tar.bz2"), strings.HasSuffix(lower, ".tbz2"):
		return withFile(file, func(f *os.File) error { return untar(bzip2.NewReader(f), dir) })
	case strings.HasSuffix(lower, ".tar"):
		return withFile(file, func(f *os.File) error { return untar(f, dir) })
	case strings.HasSuffix(lower, ".gz"):
		return withFile(file, func(f *os.File) error {
			gz, err := gzip.NewReader(f)
			if err != nil {
				return err
			}
			defer gz.Close()
			return writeFile(strings.TrimSuffix(file, filepath.Ext(file)), gz)
		})
	case strings.HasSuffix(lower, ".zip"):
		return unzip(file, dir)
	}
	return nil
}

func withFile(name string, f func(*os.File) error) error {
	file, err := os.Open(name)
	if err != nil {
		return err
	}
	defer file.Close()
	return f(file)
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		target, err := sandboxPath(dir, h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := writeFile(target, tr); err != nil {
				return err
			}
			if err := os.Chmod(target, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) || strings.Contains(h.Linkname, "..") {
				return fmt.Errorf("archive symlink %q escapes the sandbox", h.Name)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		}
	}
}

func unzip(file, dir string) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		target, err := sandboxPath(dir, f.Name)
		if err != nil {
			return err
		}
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		err = writeFile(target, rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := os.Chmod(target, f.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
