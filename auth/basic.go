package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ParseHtpasswd reads "user:hash" lines. Only bcrypt hashes ($2y$, $2a$,
// $2b$) are accepted: plain text, MD5 ($apr1$), SHA1 ({SHA}) and crypt
// entries are refused with the line number, never the hash.
func ParseHtpasswd(data []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: not user:hash", n)
		}
		if !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") {
			return nil, fmt.Errorf("line %d (user %q): only bcrypt hashes ($2y$, $2a$, $2b$) are accepted, not plain, MD5 or SHA1", n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d (user %q): malformed bcrypt hash", n, user)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q listed twice", n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return users, nil
}

// Basic checks HTTP Basic credentials. bcrypt takes tens of milliseconds
// by design, so successful verifications are remembered for basicCacheTTL,
// keyed by a SHA-256 of user and password (the password itself is not
// kept).
type Basic struct {
	realm string
	users map[string][]byte
	// Challenge is the WWW-Authenticate value.
	Challenge string

	mu    sync.Mutex
	cache map[[32]byte]time.Time
}

const (
	basicCacheTTL = time.Minute
	basicCacheMax = 10000
)

// dummyHash keeps unknown users as slow as known ones.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("meshgate-unknown-user"), bcrypt.DefaultCost)

// NewBasic compiles users (from ParseHtpasswd) and a realm.
func NewBasic(realm string, users map[string][]byte) *Basic {
	if realm == "" {
		realm = "meshgate"
	}
	return &Basic{realm: realm, users: users, cache: map[[32]byte]time.Time{},
		Challenge: `Basic realm="` + strings.ReplaceAll(realm, `"`, "") + `", charset="UTF-8"`}
}

// Check returns the user when the Authorization header holds valid
// credentials; ok is false otherwise.
func (b *Basic) Check(h http.Header) (user string, ok bool) {
	r := http.Request{Header: h}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := time.Now()
	b.mu.Lock()
	exp, hit := b.cache[key]
	b.mu.Unlock()
	if hit && now.Before(exp) {
		return user, true
	}
	hash, known := b.users[user]
	if !known {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pass))
		return "", false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return "", false
	}
	b.mu.Lock()
	if len(b.cache) >= basicCacheMax {
		clear(b.cache)
	}
	b.cache[key] = now.Add(basicCacheTTL)
	b.mu.Unlock()
	return user, true
}
