package h1head

// ValidValue reports whether v may be a header field value: no control
// character other than horizontal tab (RFC 9110 5.5; obs-text is allowed,
// as net/http's httpguts.ValidHeaderFieldValue allows it). It tests eight
// bytes at a time, since every value of every head passes through here.
func ValidValue[T string | []byte](v T) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(v) >= 8 {
		_ = v[7] // one bounds check for the eight loads, which combine into one
		x := uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
			uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56
		// A byte below 0x20, or a byte equal to 0x7f ("bit twiddling
		// hacks" hasless and haszero): both tests are exact as to whether
		// any byte matches; the bytes from there on are checked one by one.
		lt := (x - 0x20*ones) & ^x & highs
		del := x ^ 0x7f*ones
		del = (del - ones) & ^del & highs
		if lt|del != 0 {
			break
		}
		v = v[8:]
	}
	return validBytes(v)
}

func validBytes[T string | []byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
