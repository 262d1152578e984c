package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostTemplateSkeleton(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("needs root to read every host /etc file the template copies")
	}
	dir := t.TempDir()
	tmpl, err := EnsureHostTemplate(dir)
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(tmpl.Skeleton, "etc")
	for _, absent := range []string{"shadow", "gshadow", "sudoers", "ssh", "ssl/private", "npmrc", "pip.conf", "maven", "machine-id", "subuid"} {
		if _, err := os.Lstat(filepath.Join(etc, absent)); err == nil {
			t.Errorf("/etc/%s must not be in the host template", absent)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(etc, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(passwd), "user:x:1000:1000:user:/home/user:") || strings.Count(string(passwd), "\n") != 3 {
		t.Errorf("generated passwd %q: want root, user (1000) and nobody only", passwd)
	}
	for _, present := range []string{"ld.so.cache", "alternatives", "hosts", "resolv.conf"} {
		if _, err := os.Lstat(filepath.Join(etc, present)); err != nil {
			t.Errorf("/etc/%s missing from the template: %v", present, err)
		}
	}
	// Nothing non-world-readable is copied.
	filepath.Walk(etc, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s is not world-readable but was copied", p)
		}
		return nil
	})
	// Copied files keep their modification times (programs compare them:
	// Python's cached bytecode of /etc/python3*/sitecustomize.py).
	copied := 0
	err = filepath.Walk(etc, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(etc, p)
		if _, generated := generatedEtc()[rel]; generated || !fi.Mode().IsRegular() {
			return nil
		}
		host, serr := os.Stat(filepath.Join("/etc", rel))
		if serr == nil {
			copied++
			if !host.ModTime().Equal(fi.ModTime()) {
				t.Errorf("/etc/%s: modification time %v in the template, %v on the host", rel, fi.ModTime(), host.ModTime())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if copied == 0 {
		t.Error("no copied file found in the template's /etc")
	}
	// Merged-/usr symlinks are recreated; /usr is an attached tree.
	if target, err := os.Readlink(filepath.Join(tmpl.Skeleton, "bin")); err == nil && target != "usr/bin" {
		t.Errorf("bin -> %q, want usr/bin", target)
	}
	if len(tmpl.Trees) == 0 || tmpl.Trees[0] != "/usr" {
		t.Errorf("trees %v: want /usr first", tmpl.Trees)
	}
	// A second call reuses the skeleton.
	again, err := EnsureHostTemplate(dir)
	if err != nil || again.Skeleton != tmpl.Skeleton {
		t.Errorf("second EnsureHostTemplate = %v, %v; want the same skeleton", again, err)
	}
}

func TestAllowedEtc(t *testing.T) {
	for name, want := range map[string]bool{
		"passwd": false, "shadow": false, "ld.so.cache": true, "java-17-openjdk": true,
		"python3.11": true, "ssh": false, "sudoers": false, "npmrc": false, "ssl": true,
	} {
		if got := allowedEtc(name); got != want {
			t.Errorf("allowedEtc(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestImageTemplate: an image's template shows its own /etc (world-readable
// files only, SoulBox's identity files instead of the image's), its
// merged-/usr links, and its real top-level trees including /opt.
func TestImageTemplate(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "lib", "opt/tool", "etc/ssl/private", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]os.FileMode{
		"etc/os-release": 0o644, "etc/passwd": 0o644, "etc/shadow": 0o640,
		"etc/ssl/private/key.pem": 0o644, "etc/secret": 0o600,
	}
	for name, mode := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte("image "+name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "stub-resolv.conf")
	for link, target := range map[string]string{"bin": "usr/bin", "etc/resolv.conf": outside} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	tmpl, err := EnsureImageTemplate(dir, "demo", root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(tmpl.Skeleton), "demo-") {
		t.Errorf("skeleton %s: want it named after the image", tmpl.Skeleton)
	}
	if got := strings.Join(tmpl.Trees, " "); got != "/usr /lib /opt" {
		t.Errorf("trees %q, want /usr /lib /opt (real directories; /var is not shown)", got)
	}
	if src := tmpl.TreeSource("/usr"); src != filepath.Join(root, "usr") {
		t.Errorf("TreeSource(/usr) = %s", src)
	}
	etc := filepath.Join(tmpl.Skeleton, "etc")
	if b, err := os.ReadFile(filepath.Join(etc, "os-release")); err != nil || string(b) != "image etc/os-release\n" {
		t.Errorf("os-release: %q %v: want the image's", b, err)
	}
	for _, absent := range []string{"shadow", "secret", "ssl/private"} {
		if _, err := os.Lstat(filepath.Join(etc, absent)); err == nil {
			t.Errorf("/etc/%s must not be copied", absent)
		}
	}
	for _, own := range []string{"passwd", "resolv.conf"} {
		fi, err := os.Lstat(filepath.Join(etc, own))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("/etc/%s: %v %v: want SoulBox's own regular file", own, fi, err)
		}
	}
	if _, err := os.Lstat(outside); err == nil {
		t.Error("the image's resolv.conf symlink was followed out of the image")
	}
	if target, _ := os.Readlink(filepath.Join(tmpl.Skeleton, "bin")); target != "usr/bin" {
		t.Errorf("bin -> %q, want usr/bin", target)
	}
	// An image imported again (a new /etc) gets a new skeleton.
	if err := os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "etc.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	again, err := EnsureImageTemplate(dir, "demo", root)
	if err != nil || again.Skeleton == tmpl.Skeleton {
		t.Errorf("after a new /etc: skeleton %v, %v; want a new one", again, err)
	}
}
