// Command image assembles the operator's OCI image without a container daemon
// (hack/image/build.sh runs it; `make image`): one layer holding the release binary at /gatehouse,
// the host files build.sh chose (the binary's shared libraries at their Debian paths, the CA
// bundle), distroless' users and directories, and distroless' nonroot configuration. It writes a
// docker-archive tarball that `ctr images import`, `docker load` and `crane push` accept.
//
// Reproducible: every entry has the same mtime (-epoch), numeric owners and no user or group
// names, and the entries are sorted, so the same inputs give the same layer, config and digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The distroless user the Pod runs as (deploy/ and the chart set runAsUser/runAsGroup 65532).
const nonroot = 65532

// distroless' /etc/passwd and /etc/group (GoogleContainerTools/distroless common/BUILD.bazel).
const passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
`

// hostFiles collects repeated -host-file flags.
type hostFiles []string

func (h *hostFiles) String() string     { return strings.Join(*h, ",") }
func (h *hostFiles) Set(p string) error { *h = append(*h, p); return nil }

func main() {
	var (
		binary = flag.String("binary", "", "the operator binary, stored as /gatehouse")
		tag    = flag.String("tag", "", "the image reference written into the tarball, e.g. gatehouse:0.1.0")
		arch   = flag.String("arch", "", "the image architecture (GOARCH names: amd64, arm64)")
		epoch  = flag.Int64("epoch", 0, "mtime of every entry and the image's creation time (SOURCE_DATE_EPOCH)")
		out    = flag.String("out", "", "the docker-archive tarball to write")
		host   hostFiles
	)
	flag.Var(&host, "host-file", "an absolute host path copied to the same path in the image; a symlink stays a symlink (repeatable)")
	flag.Parse()
	if *binary == "" || *tag == "" || *arch == "" || *out == "" {
		fail(fmt.Errorf("-binary, -tag, -arch and -out are required"))
	}
	if err := run(*binary, *tag, *arch, time.Unix(*epoch, 0).UTC(), *out, host); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "image: %v\n", err)
	os.Exit(1)
}

// entry is one file, directory or symlink of the layer; its name has no leading slash.
type entry struct {
	header tar.Header
	body   []byte
}

func run(binary, tag, arch string, mtime time.Time, out string, host []string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q is not an image reference: %w", tag, err)
	}
	entries := map[string]entry{}
	add := func(name string, typ byte, mode int64, uid int, body []byte, link string) {
		entries[name] = entry{
			header: tar.Header{
				Typeflag: typ,
				Name:     name,
				Linkname: link,
				Mode:     mode,
				Uid:      uid,
				Gid:      uid,
				Size:     int64(len(body)),
				ModTime:  mtime,
			},
			body: body,
		}
	}
	dir := func(name string, mode int64, uid int) { add(name+"/", tar.TypeDir, mode, uid, nil, "") }

	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("reading the operator binary: %w (build it: cargo build --release --bin gatehouse)", err)
	}
	add("gatehouse", tar.TypeReg, 0o755, 0, bin, "")
	add("etc/passwd", tar.TypeReg, 0o644, 0, []byte(passwd), "")
	add("etc/group", tar.TypeReg, 0o644, 0, []byte(group), "")
	// As in distroless: the nonroot user's home (its working directory) and a world-writable,
	// sticky /tmp (the Pod mounts an emptyDir over it under a read-only root filesystem).
	dir("home", 0o755, 0)
	dir("home/nonroot", 0o700, nonroot)
	dir("tmp", 0o1777, 0)

	for _, p := range host {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return fmt.Errorf("-host-file %q: give a clean absolute path", p)
		}
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("host file: %w", err)
		}
		rel := strings.TrimPrefix(p, "/")
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("host file: %w", err)
			}
			add(rel, tar.TypeSymlink, 0o777, 0, nil, target)
		case info.Mode().IsRegular():
			body, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("host file: %w", err)
			}
			add(rel, tar.TypeReg, int64(info.Mode().Perm()), 0, body, "")
		default:
			return fmt.Errorf("host file %s is neither a regular file nor a symlink", p)
		}
	}
	// Every parent directory, root-owned 0755 unless declared above.
	for name := range entries {
		for parent := path.Dir(strings.TrimSuffix(name, "/")); parent != "."; parent = path.Dir(parent) {
			if _, declared := entries[parent+"/"]; !declared {
				dir(parent, 0o755, 0)
			}
		}
	}

	layer, err := tarball.LayerFromOpener(layerOpener(entries))
	if err != nil {
		return fmt.Errorf("building the layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: mtime},
			CreatedBy: "hack/image: the release binary and the runtime files distroless/cc-debian12 carries",
		},
	})
	if err != nil {
		return fmt.Errorf("adding the layer: %w", err)
	}
	config, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the image config: %w", err)
	}
	config = config.DeepCopy()
	config.Architecture = arch
	config.OS = "linux"
	config.Created = v1.Time{Time: mtime}
	// distroless/cc-debian12:nonroot's configuration, with the Dockerfile's USER and ENTRYPOINT.
	config.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
		Entrypoint: []string{"/gatehouse"},
		WorkingDir: "/home/nonroot",
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
	}
	img, err = mutate.ConfigFile(img, config)
	if err != nil {
		return fmt.Errorf("setting the image config: %w", err)
	}

	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	manifest, err := img.Digest()
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", manifest, id)
	return nil
}

// layerOpener returns the layer's uncompressed tar, entries sorted by name; tarball compresses it.
func layerOpener(entries map[string]entry) tarball.Opener {
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	return func() (io.ReadCloser, error) {
		var buf bytes.Buffer
		w := tar.NewWriter(&buf)
		for _, name := range names {
			e := entries[name]
			if err := w.WriteHeader(&e.header); err != nil {
				return nil, fmt.Errorf("layer entry %s: %w", name, err)
			}
			if _, err := w.Write(e.body); err != nil {
				return nil, fmt.Errorf("layer entry %s: %w", name, err)
			}
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return io.NopCloser(&buf), nil
	}
}
