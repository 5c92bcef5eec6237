// Command modproxy writes a GOPROXY directory that serves modules of this
// tree at a version that is not published yet, so that a module which
// requires another of the tree's modules at that version can run go mod
// tidy outside the workspace, as it will once the version is tagged.
//
//	go run ./internal/modproxy -out DIR -version v0.1.0 . xotel
//
// tidy.sh beside it runs go mod tidy in each submodule with such a proxy.
//
// Each argument is a module's directory; its zip holds the files a
// published module would: the directory's tree without hidden
// directories and without nested modules.
package main

import (
	"archive/zip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	out := flag.String("out", "", "the proxy directory to write")
	version := flag.String("version", "v0.1.0", "the version to serve each module at")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		log.Fatal("usage: modproxy -out DIR [-version V] MODULEDIR...")
	}
	for _, dir := range flag.Args() {
		if err := write(*out, dir, *version); err != nil {
			log.Fatalf("modproxy: %s: %v", dir, err)
		}
	}
}

func write(out, dir, version string) error {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	mod := modulePath(gomod)
	if mod == "" {
		return fmt.Errorf("go.mod names no module")
	}
	at := filepath.Join(out, filepath.FromSlash(mod), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		return err
	}
	info, _ := json.Marshal(struct{ Version, Time string }{version, time.Now().UTC().Format(time.RFC3339)})
	for name, data := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": info,
		version + ".mod":  gomod,
	} {
		if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(at, version+".zip"))
	if err != nil {
		return err
	}
	defer f.Close()
	z := zip.NewWriter(f)
	prefix := mod + "@" + version + "/"
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a module of its own
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		w, err := z.Create(path.Join(prefix, rel))
		if err != nil {
			return err
		}
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(w, r)
		return err
	})
	if err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return f.Close()
}

// modulePath returns the path a go.mod's module directive names.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
