package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// What the Dockerfile sets, and what its base, distroless/static:nonroot,
// sets or holds that the manager can notice.
const (
	// managerModule is the main package's path in the manager's build info.
	managerModule = "github.com/heraldiot/herald"
	// entrypoint is the Dockerfile's COPY destination and ENTRYPOINT.
	entrypoint = "/manager"
	// user is the Dockerfile's USER: distroless's nonroot, numeric, so the
	// kubelet can check runAsNonRoot without an /etc/passwd.
	user = "65532:65532"
	// uid and gid are user's numbers, the owner of home.
	uid, gid = 65532, 65532
	// home is distroless nonroot's WORKDIR and the nonroot user's home.
	home = "/home/nonroot"
	// caBundlePath is where distroless has its CA bundle; its SSL_CERT_FILE
	// names it too.
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
	// defaultPath is distroless's PATH.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// imageSpec is everything the image is made of: the same spec gives the
// same bytes.
type imageSpec struct {
	binary   string // the static manager binary
	caBundle string // a PEM bundle to copy to caBundlePath; "" for none
	ref      string // name and tag
	version  string // org.opencontainers.image.version; "" for ref's tag
	source   string // org.opencontainers.image.source
	created  time.Time
}

// imageIDs names what writeImage wrote.
type imageIDs struct {
	ref      string
	platform string
	config   v1.Hash // the image ID: the config's digest, as crictl and docker list it
}

// writeImage builds the image and writes it to out as a `docker save`
// tarball, through a temporary file so that out is whole or absent.
func writeImage(spec imageSpec, out string) (imageIDs, error) {
	tag, err := name.NewTag(spec.ref)
	if err != nil {
		return imageIDs{}, fmt.Errorf("-ref: %w", err)
	}
	img, plat, err := buildImage(spec, tag)
	if err != nil {
		return imageIDs{}, err
	}
	ids := imageIDs{ref: tag.String(), platform: plat.String()}
	if ids.config, err = img.ConfigName(); err != nil {
		return imageIDs{}, err
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return imageIDs{}, err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := tarball.Write(tag, img, f); err != nil {
		f.Close()
		return imageIDs{}, fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return imageIDs{}, err
	}
	// CreateTemp makes the file 0600; an image tarball is no secret.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return imageIDs{}, err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return imageIDs{}, err
	}
	return ids, nil
}

// buildImage makes the image: one layer on an empty base, and a config like
// the Dockerfile's.
func buildImage(spec imageSpec, tag name.Tag) (v1.Image, v1.Platform, error) {
	plat, err := checkManager(spec.binary)
	if err != nil {
		return nil, v1.Platform{}, err
	}
	manager, err := os.ReadFile(spec.binary)
	if err != nil {
		return nil, v1.Platform{}, err
	}
	var ca []byte
	if spec.caBundle != "" {
		if ca, err = os.ReadFile(spec.caBundle); err != nil {
			return nil, v1.Platform{}, fmt.Errorf("CA bundle (-ca-bundle= for none): %w", err)
		}
	}
	layerTar, err := rootFS(manager, ca, spec.created)
	if err != nil {
		return nil, v1.Platform{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		return nil, v1.Platform{}, err
	}
	created := v1.Time{Time: spec.created}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "herald-image (hack/image): " + entrypoint + ", the CA bundle, " + home + ", /tmp",
		},
	})
	if err != nil {
		return nil, v1.Platform{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, v1.Platform{}, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	version := spec.version
	if version == "" {
		version = tag.TagStr()
	}
	env := []string{"PATH=" + defaultPath}
	if ca != nil {
		env = append(env, "SSL_CERT_FILE="+caBundlePath)
	}
	// The runtime sets HOME from /etc/passwd; the config names it too,
	// for a runtime that does not read the file.
	env = append(env, "HOME="+home)
	cf.Config = v1.Config{
		User:       user,
		Entrypoint: []string{entrypoint},
		Env:        env,
		WorkingDir: home,
		Labels: map[string]string{
			"org.opencontainers.image.source":  spec.source,
			"org.opencontainers.image.version": version,
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, v1.Platform{}, err
	}
	return img, plat, nil
}

// checkManager refuses anything but Herald's manager built without cgo: the
// image has no dynamic loader and no libc to run anything else. It returns
// the platform the binary was built for.
func checkManager(path string) (v1.Platform, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("%s: not a Go binary: %w", path, err)
	}
	if bi.Path != managerModule {
		return v1.Platform{}, fmt.Errorf("%s: main package %q is not the manager (%s)", path, bi.Path, managerModule)
	}
	f, err := elf.Open(path)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	if err := checkStatic(f); err != nil {
		return v1.Platform{}, fmt.Errorf("%s: %w (build it with CGO_ENABLED=0)", path, err)
	}
	plat := v1.Platform{}
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			plat.OS = s.Value
		case "GOARCH":
			plat.Architecture = s.Value
		case "GOARM":
			// GOARM=7 or 7,softfloat: the OCI variant is v7.
			plat.Variant = "v" + strings.SplitN(s.Value, ",", 2)[0]
		}
	}
	if plat.OS != "linux" || plat.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("%s: built for %s/%s, not linux", path, plat.OS, plat.Architecture)
	}
	return plat, nil
}

// checkStatic fails for an ELF file that needs a dynamic loader.
func checkStatic(f *elf.File) error {
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			return errors.New("dynamically linked: it names an ELF interpreter")
		case elf.PT_DYNAMIC:
			return errors.New("dynamically linked: it has a dynamic section")
		}
	}
	return nil
}

// rootFS is the image's one layer, uncompressed: every directory before
// what it holds, in a fixed order, owned by root but for home, with every
// mtime at created.
func rootFS(manager, ca []byte, created time.Time) ([]byte, error) {
	dir := func(name string, mode int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}
	}
	file := func(name string, mode int64, size int) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(size)}
	}
	type entry struct {
		hdr  *tar.Header
		body []byte
	}
	// The accounts distroless/static has: a runtime that is given only
	// the uid (the kubelet passes no more) takes the group from here, and
	// without them containerd ran the manager in group 0.
	passwd := []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", uid, gid, home))
	group := []byte(fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", gid))
	entries := []entry{
		{hdr: dir("etc", 0o755)},
		{hdr: file("etc/group", 0o644, len(group)), body: group},
		{hdr: file("etc/passwd", 0o644, len(passwd)), body: passwd},
	}
	if ca != nil {
		entries = append(entries,
			entry{hdr: dir("etc/ssl", 0o755)},
			entry{hdr: dir("etc/ssl/certs", 0o755)},
			entry{hdr: file(strings.TrimPrefix(caBundlePath, "/"), 0o644, len(ca)), body: ca},
		)
	}
	homeDir := dir(strings.TrimPrefix(home, "/"), 0o700)
	homeDir.Uid, homeDir.Gid = uid, gid
	entries = append(entries,
		entry{hdr: dir("home", 0o755)},
		entry{hdr: homeDir},
		entry{hdr: file(strings.TrimPrefix(entrypoint, "/"), 0o755, len(manager)), body: manager},
		// Sticky and world-writable, as in distroless; the Deployment's
		// read-only root makes it read-only anyway.
		entry{hdr: dir("tmp", 0o1777)},
	)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e.hdr.ModTime = created
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}
