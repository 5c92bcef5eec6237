package tlsconf_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xsync-go/xsync/internal/tlsconf"
)

func TestOption(t *testing.T) {
	var f tlsconf.Files
	for _, name := range []string{"ca_file", "cert_file", "key_file"} {
		if !f.Option(name, name+".pem") {
			t.Errorf("Option(%q) = false", name)
		}
	}
	if f.Option("tls", "true") {
		t.Error("Option(tls) = true; it is not a file")
	}
	if !f.Any() || f.CA != "ca_file.pem" || f.Cert != "cert_file.pem" || f.Key != "key_file.pem" {
		t.Errorf("Files = %+v", f)
	}
}

// Bad files are errors that name the file and never show its contents.
func TestApplyErrors(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(secret, []byte("-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		files tlsconf.Files
		want  string
	}{
		{tlsconf.Files{CA: filepath.Join(dir, "missing.pem")}, "ca_file"},
		{tlsconf.Files{CA: secret}, "no PEM certificate"},
		{tlsconf.Files{Cert: secret}, "go together"},
		{tlsconf.Files{Cert: secret, Key: secret}, "cannot load the pair"},
	} {
		_, err := tc.files.Apply(nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply(%+v) = %v; want an error containing %q", tc.files, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("error shows the file's contents: %v", err)
		}
	}
	c, err := tlsconf.Files{}.Apply(nil)
	if err != nil || c == nil || c.MinVersion == 0 {
		t.Errorf("Apply with no files = (%v, %v); want a default configuration", c, err)
	}
}
