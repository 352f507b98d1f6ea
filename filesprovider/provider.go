// Package filesprovider reads Kubernetes manifests from a file or a folder
// tree and sends a whole Snapshot each time they change. It watches with
// fsnotify and waits for writes to settle, so an editor's save or a
// `cp -r` of many files yields one reload, not dozens.
package filesprovider

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshgate/meshgate/config"
)

// Update is one load of the manifests; see config.Update.
type Update = config.Update

// Provider watches Path.
type Provider struct {
	// Path is a manifest file or a folder read recursively.
	Path string
	// Settle is how long the files must stay unchanged before they are
	// read; 150 ms when zero. Once they have been unchanged for
	// tentativeAfter, a Tentative update is sent first, so the consumer
	// can translate while the window runs out.
	Settle time.Duration
	// Log receives watch errors.
	Log *slog.Logger

	// loader keeps the decoded documents of the last load, so a reload
	// decodes and validates only the documents that changed.
	loader config.Loader
}

// tentativeAfter is how long after the last change a Tentative update is
// sent; only when Settle is at least twice as long.
const tentativeAfter = 20 * time.Millisecond

// Run sends an Update for the current files, then one after every settled
// change, until ctx ends. The newest Update wins: if the consumer is slow,
// older unsent ones are dropped.
func (p *Provider) Run(ctx context.Context, out chan<- Update) error {
	settle := p.Settle
	if settle <= 0 {
		settle = 150 * time.Millisecond
	}
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", p.Path, err)
	}
	defer w.Close()
	if err := p.watchTree(w); err != nil {
		return err
	}
	// For a single file its folder is watched (to see replacements);
	// events for the folder's other files are not ours.
	onlyFile := ""
	if st, err := os.Stat(p.Path); err == nil && !st.IsDir() {
		onlyFile = filepath.Clean(p.Path)
	}

	var pending *Update
	first := p.load()
	pending = &first
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	early := time.NewTimer(time.Hour)
	early.Stop()
	for {
		// The nil-channel trick: only offer to send when something is
		// pending, and replace it if a newer load comes first.
		var send chan<- Update
		var next Update
		if pending != nil {
			send, next = out, *pending
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case send <- next:
			pending = nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", p.Path)
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = p.addTree(w, ev.Name)
				}
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			if onlyFile != "" && filepath.Clean(ev.Name) != onlyFile {
				continue
			}
			timer.Reset(settle)
			if settle >= 2*tentativeAfter {
				early.Reset(tentativeAfter)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", p.Path)
			}
			log.Warn("config watch error", "path", p.Path, "error", err)
			timer.Reset(settle)
		case <-early.C:
			// Never sent as final, and never in place of a pending
			// error: only a snapshot the consumer may prepare.
			if u := p.load(); u.Err == nil && (pending == nil || pending.Err == nil) {
				u.Tentative = true
				pending = &u
			}
		case <-timer.C:
			early.Stop()
			// Re-add the tree: a file replaced by rename (editors,
			// ConfigMap mounts) drops its watch.
			_ = p.watchTree(w)
			u := p.load()
			pending = &u
		}
	}
}

func (p *Provider) load() Update {
	s, err := p.loader.Load(p.Path)
	return Update{Snapshot: s, Err: err}
}

// watchTree watches Path; for a file, its folder (so a replaced file is
// seen), for a folder, every folder beneath it.
func (p *Provider) watchTree(w *fsnotify.Watcher) error {
	st, err := os.Stat(p.Path)
	if err != nil {
		return fmt.Errorf("watch %s: %w", p.Path, err)
	}
	if !st.IsDir() {
		return w.Add(filepath.Dir(p.Path))
	}
	return p.addTree(w, p.Path)
}

func (p *Provider) addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished while walking; the next event covers it
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") && d.Name() != "..data" {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}
