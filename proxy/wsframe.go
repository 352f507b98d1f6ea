package proxy

import "encoding/binary"

// wsFramer follows WebSocket frame boundaries (RFC 6455 §5.2) in a byte
// stream without buffering it, so the gateway can tell when it may insert a
// frame of its own (a close frame when it goes away) without cutting one of
// the peers' frames in two.
type wsFramer struct {
	hdr  [14]byte
	hn   int    // header bytes collected
	need int    // header length once known (0: not yet)
	left uint64 // payload bytes of the current frame still to pass
}

// feed advances over b.
func (f *wsFramer) feed(b []byte) {
	for len(b) > 0 {
		if f.left > 0 {
			k := min(f.left, uint64(len(b)))
			f.left -= k
			b = b[k:]
			continue
		}
		f.hdr[f.hn] = b[0]
		f.hn++
		b = b[1:]
		if f.hn == 2 {
			f.need = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.need += 4 // masking key
			}
		}
		if f.hn >= 2 && f.hn == f.need {
			switch n := f.hdr[1] & 0x7f; n {
			case 126:
				f.left = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
			case 127:
				f.left = binary.BigEndian.Uint64(f.hdr[2:10])
			default:
				f.left = uint64(n)
			}
			f.hn, f.need = 0, 0
		}
	}
}

// atBoundary reports whether the stream so far ends exactly after a frame.
func (f *wsFramer) atBoundary() bool { return f.left == 0 && f.hn == 0 }

// closeGoingAway is a server-to-client close frame with status 1001
// ("going away"), unmasked as server frames are.
var closeGoingAway = []byte{0x88, 0x02, 0x03, 0xe9}
