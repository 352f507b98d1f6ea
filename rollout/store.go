package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"
)

// FileStore keeps rollout progress in a JSON file: an object mapping
// "namespace/name" to the Rollout's status, exactly what a cluster would
// show in status. It is written atomically (a temporary file renamed over
// the old one), so a crash leaves the previous state or the new one.
type FileStore struct {
	Path string
}

// Load reads the file; a missing file is no progress.
func (f *FileStore) Load() (map[string]mgv1alpha1.RolloutStatus, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]mgv1alpha1.RolloutStatus{}, nil
	}
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if st.Rollouts == nil {
		st.Rollouts = map[string]mgv1alpha1.RolloutStatus{}
	}
	return st.Rollouts, nil
}

// stateFile is the file's layout.
type stateFile struct {
	Rollouts map[string]mgv1alpha1.RolloutStatus `json:"rollouts"`
}

// Save replaces the file with m.
func (f *FileStore) Save(m map[string]mgv1alpha1.RolloutStatus) error {
	b, err := json.MarshalIndent(stateFile{Rollouts: m}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".rollouts-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}

// DefaultStatePath is where --config mode keeps rollout progress when
// --rollout-state is not given: $XDG_STATE_HOME/meshgate (else
// ~/.local/state/meshgate, else the user cache directory), in a file named
// after a hash of the absolute config path, so two gateways on different
// configs do not share it.
func DefaultStatePath(configPath string) string {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		abs = configPath
	}
	sum := sha256.Sum256([]byte(abs))
	name := "rollouts-" + hex.EncodeToString(sum[:6]) + ".json"
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".local", "state")
		} else if c, err := os.UserCacheDir(); err == nil {
			dir = c
		} else {
			dir = os.TempDir()
		}
	}
	return filepath.Join(dir, "meshgate", name)
}
