package upstream

// HashString hashes a request property (header or cookie value, client IP)
// for RingHash and Maglev. It is FNV-1a 64 followed by the MurmurHash3
// finalizer, which spreads FNV's weak low bits over the whole word. It is
// fixed forever: every gateway replica and version must send the same key
// to the same endpoint. It does not allocate.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

// mix64 is the MurmurHash3 64-bit finalizer: a bijection in which every
// input bit affects every output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
