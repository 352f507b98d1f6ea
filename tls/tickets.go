package tls

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	ctls "crypto/tls"
	"sync"
	"time"
)

// Session ticket key rotation: a new key every TicketKeyPeriod, the last
// TicketKeysKept of them accepted, so a ticket resumes for at most that
// many periods (and at least one less) after it was issued.
const (
	TicketKeyPeriod = time.Hour
	TicketKeysKept  = 4
)

// TicketKeys encrypts and decrypts TLS session tickets for every HTTPS
// listener of a process. It outlives reloads, so a reload that keeps a
// listener's client-auth policy keeps its clients' sessions resumable. Keys
// are per policy: each is HMAC-SHA256 of a random per-period master key with
// the policy's fingerprint (ClientAuth.Fingerprint), so a ticket issued
// under one policy never decrypts under another, and a session set up
// where no certificate (or another CA's) was asked for cannot skip client
// authentication where one is required. Master keys exist only in memory
// and are forgotten after TicketKeysKept periods (forward secrecy for old
// tickets); a restart starts afresh.
type TicketKeys struct {
	now func() time.Time

	mu      sync.Mutex
	masters map[int64][32]byte // by period number
	sealers map[[32]byte]*sealer
}

// sealer holds one policy's keys for one period in a tls.Config, whose
// EncryptTicket and DecryptTicket do the work.
type sealer struct {
	period int64
	cfg    *ctls.Config
}

// NewTicketKeys returns a key source reading time from now (time.Now when
// nil; tests pass a fake clock).
func NewTicketKeys(now func() time.Time) *TicketKeys {
	if now == nil {
		now = time.Now
	}
	return &TicketKeys{now: now, masters: map[int64][32]byte{}, sealers: map[[32]byte]*sealer{}}
}

// Apply makes cfg issue and accept session tickets under the keys of the
// client-auth policy with fingerprint fp (ClientAuth.Fingerprint), and
// returns cfg. Copies of cfg (tls.Config.Clone, as QUIC and per-host
// variants make) share them. A nil k leaves cfg unchanged.
func (k *TicketKeys) Apply(cfg *ctls.Config, fp [32]byte) *ctls.Config {
	if k == nil || cfg == nil {
		return cfg
	}
	cfg.WrapSession = func(cs ctls.ConnectionState, ss *ctls.SessionState) ([]byte, error) {
		return k.sealer(fp).EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs ctls.ConnectionState) (*ctls.SessionState, error) {
		// A ticket no kept key decrypts gives (nil, nil): a full
		// handshake, not an error.
		return k.sealer(fp).DecryptTicket(identity, cs)
	}
	return cfg
}

// sealer returns the config holding fp's keys for the current period.
func (k *TicketKeys) sealer(fp [32]byte) *ctls.Config {
	period := k.now().UnixNano() / int64(TicketKeyPeriod)
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.sealers[fp]; s != nil && s.period == period {
		return s.cfg
	}
	if _, ok := k.masters[period]; !ok {
		var m [32]byte
		if _, err := rand.Read(m[:]); err != nil {
			panic("tls: no randomness for session ticket keys: " + err.Error()) // crypto/rand never fails on supported systems
		}
		k.masters[period] = m
		for p := range k.masters {
			if p <= period-TicketKeysKept {
				delete(k.masters, p)
			}
		}
		// Every policy's keys change with the period.
		clear(k.sealers)
	}
	keys := make([][32]byte, 0, TicketKeysKept)
	for p := period; p > period-TicketKeysKept; p-- {
		m, ok := k.masters[p]
		if !ok {
			continue // the process did not exist, or issued nothing, then
		}
		mac := hmac.New(sha256.New, m[:])
		mac.Write([]byte("meshgate session ticket key\x00"))
		mac.Write(fp[:])
		var key [32]byte
		copy(key[:], mac.Sum(nil))
		keys = append(keys, key) // newest first: it encrypts
	}
	cfg := &ctls.Config{}
	cfg.SetSessionTicketKeys(keys)
	k.sealers[fp] = &sealer{period: period, cfg: cfg}
	return cfg
}
