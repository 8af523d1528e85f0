package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
)

// ref names the image the tests build; its tag is the version label.
const ref = "ghcr.io/heraldiot/herald:image-test"

// managerModule is the manager's main package, as its build info says.
const managerModule = "github.com/heraldiot/herald"

// The package's tests share one build of the manager and herald-image, and
// the image written from them.
var shared struct {
	once    sync.Once
	missing error // hack/image's modules cannot be had here: skip, or fail under make
	err     error // the build or the image failed: fail
	dir     string
	manager string // the static manager, built as the Dockerfile builds it
	tool    string // bin/herald-image's equivalent
	tarball string
	report  string      // what herald-image printed for tarball
	image   *savedImage // tarball, read
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// built builds the manager and herald-image once and writes the image.
func built(t *testing.T) {
	t.Helper()
	shared.once.Do(func() {
		shared.missing, shared.err = build()
	})
	if shared.missing != nil {
		missingTool(t, "%v", shared.missing)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
}

// build does what `make image-tar` does, into a temporary directory. It
// returns missing when hack/image's modules cannot be downloaded.
func build() (missing, err error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("no go command to build the manager and hack/image: %w", err), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	toolDir := filepath.Join(root, "hack", "image")
	if err := goCommand(ctx, toolDir, nil, "mod", "download"); err != nil {
		return fmt.Errorf("cannot download hack/image's modules (go-containerregistry) to build herald-image: %w", err), nil
	}
	if shared.dir, err = os.MkdirTemp("", "herald-image-test-"); err != nil {
		return nil, err
	}
	shared.tool = filepath.Join(shared.dir, "herald-image")
	if err := goCommand(ctx, toolDir, nil, "build", "-trimpath", "-o", shared.tool, "."); err != nil {
		return nil, err
	}
	// As the Dockerfile and hack/image.mk build it.
	shared.manager = filepath.Join(shared.dir, "manager")
	if err := goCommand(ctx, root, []string{"CGO_ENABLED=0", "GOOS=linux"},
		"build", "-trimpath", "-ldflags", "-s -w", "-o", shared.manager, "."); err != nil {
		return nil, err
	}
	shared.tarball = filepath.Join(shared.dir, "first", "image.tar")
	if shared.report, err = writeImage(ctx, shared.tarball); err != nil {
		return nil, err
	}
	// Read once: a 50 MB layer takes seconds to unpack under -race.
	shared.image, err = readImage(shared.tarball)
	return nil, err
}

// writeImage runs herald-image on the shared manager, as hack/image.mk does,
// and returns what it printed.
func writeImage(ctx context.Context, out string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, shared.tool, "-binary", shared.manager, "-out", out, "-ref", ref)
	// The default creation time is the Unix epoch; the tests check that.
	cmd.Env = withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("herald-image: %w\n%s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(stdout)), nil
}

// goCommand runs the go command in dir with extra environment; its error
// carries the command's output.
func goCommand(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// withoutEnv is env less the variable named key.
func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, key+"=")
	})
}

// missingTool skips the test, or fails it when HERALD_REQUIRE_TOOLS=1 (set
// by the Makefile), so that `make test` never passes by testing nothing.
func missingTool(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("HERALD_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (HERALD_REQUIRE_TOOLS=1)", msg)
	}
	t.Skip(msg)
}

// TestConfigMatchesDockerfile checks the image's config against the
// Dockerfile's final stage and its distroless/static:nonroot base.
func TestConfigMatchesDockerfile(t *testing.T) {
	built(t)
	img := shared.image
	df := readDockerfile(t)
	c := img.config.Config

	if !slices.Equal(c.Entrypoint, df.entrypoint) {
		t.Errorf("Entrypoint = %q, the Dockerfile's is %q", c.Entrypoint, df.entrypoint)
	}
	// The Dockerfile sets no CMD, so the Deployment's args reach the
	// manager as they are.
	if len(c.Cmd) != 0 {
		t.Errorf("Cmd = %q, want none", c.Cmd)
	}
	if c.User != df.user {
		t.Errorf("User = %q, the Dockerfile's is %q", c.User, df.user)
	}
	uid, gid := nonRootUser(t, c.User)
	if c.WorkingDir != "/home/nonroot" {
		t.Errorf("WorkingDir = %q, want distroless nonroot's /home/nonroot", c.WorkingDir)
	}
	if f, ok := img.files[c.WorkingDir]; !ok || f.hdr.Typeflag != tar.TypeDir || f.hdr.Uid != uid || f.hdr.Gid != gid {
		t.Errorf("WorkingDir %s is not a directory of %d:%d in the image", c.WorkingDir, uid, gid)
	}
	if f, ok := img.files["/tmp"]; !ok || f.hdr.Typeflag != tar.TypeDir || f.hdr.Mode != 0o1777 {
		t.Errorf("/tmp is not a sticky, world-writable directory, as in distroless")
	}
	// SSL_CERT_FILE names the CA bundle, as distroless's does.
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if ca := env["SSL_CERT_FILE"]; ca == "" {
		t.Errorf("no SSL_CERT_FILE in Env %q", c.Env)
	} else if f, ok := img.files[ca]; !ok || f.hdr.Typeflag != tar.TypeReg || !bytes.Contains(f.body, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("SSL_CERT_FILE=%s is not a PEM bundle in the image", ca)
	}
	if img.config.OS != "linux" || img.config.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, the manager was built for linux/%s", img.config.OS, img.config.Architecture, runtime.GOARCH)
	}
	_, tag, _ := strings.Cut(ref[strings.LastIndex(ref, "/"):], ":")
	for label, want := range map[string]string{
		"org.opencontainers.image.source":  "https://github.com/heraldiot/herald",
		"org.opencontainers.image.version": tag,
	} {
		if got := c.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	if !slices.Equal(img.manifest.RepoTags, []string{ref}) {
		t.Errorf("RepoTags = %q, want [%q]", img.manifest.RepoTags, ref)
	}
}

// nonRootUser parses a numeric USER, uid:gid or uid, that is not root: the
// Deployment's runAsNonRoot can check only a numeric one without an
// /etc/passwd.
func nonRootUser(t *testing.T, user string) (uid, gid int) {
	t.Helper()
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil {
		t.Fatalf("User %q is not numeric: runAsNonRoot cannot check it", user)
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil {
			t.Fatalf("User %q has a group that is not numeric", user)
		}
	}
	if uid == 0 || gid == 0 {
		t.Fatalf("User %q is root", user)
	}
	return uid, gid
}

// TestManagerIsStatic checks that the entrypoint is the manager that was
// built, unchanged, and that it needs no dynamic loader: the image has none.
func TestManagerIsStatic(t *testing.T) {
	built(t)
	img := shared.image
	entry := img.config.Config.Entrypoint
	if len(entry) == 0 {
		t.Fatal("no Entrypoint")
	}
	f, ok := img.files[entry[0]]
	if !ok || f.hdr.Typeflag != tar.TypeReg {
		t.Fatalf("the entrypoint %s is not a file in the image", entry[0])
	}
	if f.hdr.Mode&0o111 != 0o111 || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
		t.Errorf("%s: mode %o, owner %d:%d; want executable by all, owned by root as COPY leaves it", entry[0], f.hdr.Mode, f.hdr.Uid, f.hdr.Gid)
	}
	want, err := os.ReadFile(shared.manager)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.body, want) {
		t.Errorf("%s differs from the manager herald-image was given", entry[0])
	}
	bi, err := buildinfo.Read(bytes.NewReader(f.body))
	if err != nil {
		t.Fatalf("%s: %v", entry[0], err)
	}
	if bi.Path != managerModule {
		t.Errorf("%s is %s, not the manager (%s)", entry[0], bi.Path, managerModule)
	}
	if got := buildSetting(bi, "CGO_ENABLED"); got != "0" {
		t.Errorf("%s was built with CGO_ENABLED=%q, want 0", entry[0], got)
	}
	exe, err := elf.NewFile(bytes.NewReader(f.body))
	if err != nil {
		t.Fatalf("%s: %v", entry[0], err)
	}
	defer exe.Close()
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: it is dynamically linked", entry[0], p.Type)
		}
	}
	for _, s := range []string{".interp", ".dynamic"} {
		if exe.Section(s) != nil {
			t.Errorf("%s has a %s section: it is dynamically linked", entry[0], s)
		}
	}
}

// buildSetting is a build setting of bi, "" if it has none.
func buildSetting(bi *buildinfo.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// TestNoShell checks that the image is distroless-like: no shell, and
// nothing executable but the manager.
func TestNoShell(t *testing.T) {
	built(t)
	img := shared.image
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/bin/ash", "/bin/busybox", "/usr/bin/sh", "/busybox/sh"} {
		if _, ok := img.files[sh]; ok {
			t.Errorf("the image has %s", sh)
		}
	}
	want := []string{
		"/etc", "/etc/group", "/etc/passwd", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt",
		"/home", "/home/nonroot", "/manager", "/tmp",
	}
	var got []string
	for p, f := range img.files {
		got = append(got, p)
		if f.hdr.Typeflag != tar.TypeDir && f.hdr.Typeflag != tar.TypeReg {
			t.Errorf("%s is neither a file nor a directory (type %q)", p, f.hdr.Typeflag)
		}
		if f.hdr.Typeflag == tar.TypeReg && f.hdr.Mode&0o111 != 0 && !slices.Contains(img.config.Config.Entrypoint, p) {
			t.Errorf("%s is executable, and is not the manager", p)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the image holds\n\t%q\nwant\n\t%q", got, want)
	}
}

// TestUserAccount checks that /etc/passwd gives the image's USER its
// group and home, and /etc/group names the group, as distroless's do: a
// runtime given only the uid (the kubelet passes no more) takes the group
// from there, and ran the manager in group 0 when the image had none.
func TestUserAccount(t *testing.T) {
	built(t)
	img := shared.image
	uid, gid := nonRootUser(t, img.config.Config.User)
	account := func(path string, match func(fields []string) bool) []string {
		t.Helper()
		f, ok := img.files[path]
		if !ok {
			t.Fatalf("the image has no %s", path)
		}
		for line := range strings.SplitSeq(string(f.body), "\n") {
			if fields := strings.Split(line, ":"); match(fields) {
				return fields
			}
		}
		t.Fatalf("%s has no entry for %d:\n%s", path, uid, f.body)
		return nil
	}
	u := account("/etc/passwd", func(f []string) bool { return len(f) == 7 && f[2] == strconv.Itoa(uid) })
	if u[3] != strconv.Itoa(gid) || u[5] != img.config.Config.WorkingDir {
		t.Errorf("/etc/passwd: %q; want gid %d and home %s", strings.Join(u, ":"), gid, img.config.Config.WorkingDir)
	}
	account("/etc/group", func(f []string) bool { return len(f) == 4 && f[2] == strconv.Itoa(gid) })
	if home := img.files[img.config.Config.WorkingDir]; home.hdr == nil || home.hdr.Uid != uid || home.hdr.Gid != gid {
		t.Errorf("the home %s is not owned by %d:%d", img.config.Config.WorkingDir, uid, gid)
	}
}

// TestReproducible writes the image again from the same binary: the bytes,
// and so the image ID and the layer's digest, must be the same, and every
// timestamp fixed.
func TestReproducible(t *testing.T) {
	built(t)
	again := filepath.Join(shared.dir, "second", "image.tar")
	report, err := writeImage(t.Context(), again)
	if err != nil {
		t.Fatal(err)
	}
	first, second := fileDigest(t, shared.tarball), fileDigest(t, again)
	if first != second {
		t.Errorf("two builds from the same binary differ: tarball sha256 %s, then %s", first, second)
	}
	img := shared.image
	t.Logf("tarball sha256:%s, image ID %s, layer %s", first, img.manifest.Config, img.manifest.Layers[0])
	// What herald-image reports is what it wrote, and the same both times.
	for _, r := range []string{shared.report, report} {
		if !strings.HasSuffix(r, "image ID "+img.manifest.Config) {
			t.Errorf("herald-image reported %q; the tarball's image ID is %s", r, img.manifest.Config)
		}
	}
	if a, b := afterColon(shared.report), afterColon(report); a != b {
		t.Errorf("herald-image reported different digests: %q, then %q", a, b)
	}
	epoch := time.Unix(0, 0).UTC()
	if !img.config.Created.Equal(epoch) {
		t.Errorf("created = %s, want %s", img.config.Created, epoch)
	}
	for p, f := range img.files {
		if !f.hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %s, want %s", p, f.hdr.ModTime, epoch)
		}
	}
}

// afterColon is a herald-image report without the tarball's path.
func afterColon(report string) string {
	_, rest, _ := strings.Cut(report, ": ")
	return rest
}

// TestRefusesOtherBinaries gives herald-image a binary that is not the
// manager: it must fail and say so, not pack it.
func TestRefusesOtherBinaries(t *testing.T) {
	built(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	cmd := exec.CommandContext(t.Context(), shared.tool, "-binary", shared.tool, "-out", out, "-ref", ref)
	msg, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("herald-image packed %s, not the manager: err %v, output %s", shared.tool, err, msg)
	}
	if !strings.Contains(string(msg), "is not the manager") {
		t.Errorf("herald-image said %q; want it to say the binary is not the manager", msg)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("herald-image left %s behind: %v", out, err)
	}
}

// fileDigest is the hex SHA-256 of a file.
func fileDigest(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dockerfile is what the Dockerfile's final stage sets.
type dockerfile struct {
	user       string
	entrypoint []string
}

// readDockerfile reads the last USER and ENTRYPOINT of the repository's
// Dockerfile: its final stage's.
func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	for line := range strings.Lines(string(data)) {
		instr, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(instr) {
		case "USER":
			df.user = strings.TrimSpace(arg)
		case "ENTRYPOINT":
			// The exec form, a JSON array; the shell form would need a
			// shell the image does not have.
			if err := json.Unmarshal([]byte(arg), &df.entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT %s is not in exec form: %v", arg, err)
			}
		}
	}
	if df.user == "" || len(df.entrypoint) == 0 {
		t.Fatalf("the Dockerfile has no USER or no ENTRYPOINT: %+v", df)
	}
	return df
}

// archiveManifest is an entry of a `docker save` tarball's manifest.json.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// imageConfig is the part of an image's config the tests read.
type imageConfig struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Created      time.Time `json:"created"`
	Config       struct {
		User       string
		Entrypoint []string
		Cmd        []string
		Env        []string
		WorkingDir string
		Labels     map[string]string
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// layerFile is a file of the image's root file system.
type layerFile struct {
	hdr  *tar.Header
	body []byte
}

// savedImage is an image read from a `docker save` tarball.
type savedImage struct {
	manifest archiveManifest
	config   imageConfig
	// files are the root file system's entries by absolute path, the
	// layers applied in order.
	files map[string]layerFile
}

// readImage reads the one image of a `docker save` tarball and checks each
// blob against its digest, as `ctr images import` does.
func readImage(name string) (*savedImage, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if blobs[hdr.Name], err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, hdr.Name, err)
		}
	}
	var manifests []archiveManifest
	if err := json.Unmarshal(blobs["manifest.json"], &manifests); err != nil {
		return nil, fmt.Errorf("%s: manifest.json: %w", name, err)
	}
	if len(manifests) != 1 {
		return nil, fmt.Errorf("%s holds %d images, want 1", name, len(manifests))
	}
	img := &savedImage{manifest: manifests[0], files: map[string]layerFile{}}
	raw, ok := blobs[img.manifest.Config]
	if !ok {
		return nil, fmt.Errorf("%s: no config %s", name, img.manifest.Config)
	}
	if got := "sha256:" + sha256Hex(raw); got != img.manifest.Config {
		return nil, fmt.Errorf("%s: config %s has digest %s", name, img.manifest.Config, got)
	}
	if err := json.Unmarshal(raw, &img.config); err != nil {
		return nil, fmt.Errorf("%s: config: %w", name, err)
	}
	if len(img.config.RootFS.DiffIDs) != len(img.manifest.Layers) || len(img.manifest.Layers) == 0 {
		return nil, fmt.Errorf("%s: %d layers, %d diff IDs", name, len(img.manifest.Layers), len(img.config.RootFS.DiffIDs))
	}
	for i, l := range img.manifest.Layers {
		blob, ok := blobs[l]
		if !ok {
			return nil, fmt.Errorf("%s: no layer %s", name, l)
		}
		if got := sha256Hex(blob) + ".tar.gz"; got != l {
			return nil, fmt.Errorf("%s: layer %s has digest %s", name, l, got)
		}
		layer, err := gunzip(blob)
		if err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", name, l, err)
		}
		if got := "sha256:" + sha256Hex(layer); got != img.config.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("%s: layer %s has diff ID %s, the config says %s", name, l, got, img.config.RootFS.DiffIDs[i])
		}
		if err := readLayer(layer, img.files); err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", name, l, err)
		}
	}
	return img, nil
}

// readLayer adds a layer's entries to files. It refuses a whiteout:
// herald-image writes one layer and never needs one.
func readLayer(layer []byte, files map[string]layerFile) error {
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := path.Join("/", hdr.Name)
		if strings.HasPrefix(path.Base(p), ".wh.") {
			return fmt.Errorf("unexpected whiteout %s", p)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		files[p] = layerFile{hdr: hdr, body: body}
	}
}

// gunzip is a gzip blob's content.
func gunzip(blob []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// sha256Hex is the hex SHA-256 of data.
func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
