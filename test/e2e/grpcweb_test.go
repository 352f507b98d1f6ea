package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// grpcWebFrames splits a gRPC-Web response body into its messages and the
// trailer frame's fields.
func grpcWebFrames(t *testing.T, body []byte) (msgs [][]byte, trailer http.Header) {
	t.Helper()
	trailer = http.Header{}
	for len(body) > 0 {
		if len(body) < 5 {
			t.Fatalf("truncated frame header %x", body)
		}
		flag, n := body[0], binary.BigEndian.Uint32(body[1:5])
		if uint32(len(body)-5) < n {
			t.Fatalf("frame claims %d bytes, %d left", n, len(body)-5)
		}
		payload := body[5 : 5+n]
		body = body[5+n:]
		if flag&0x80 == 0 {
			msgs = append(msgs, payload)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(payload)), "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			trailer.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return msgs, trailer
}

// TestGRPCWeb sends browser-style gRPC-Web requests over HTTP/1.1, binary
// and base64 text, through a GRPCRoute to a plain gRPC backend.
func TestGRPCWeb(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	port := startInteropServer(t)
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+backendYAML("interop", port)+grpcRoute("interop", nil, "interop"))

	msg, err := proto.Marshal(&testgrpc.SimpleRequest{ResponseSize: 1000, Payload: &testgrpc.Payload{Body: make([]byte, 10)}})
	if err != nil {
		t.Fatal(err)
	}
	frame := append([]byte{0, 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))

	for _, tc := range []struct {
		name, contentType, method string
		wantStatus                string
		wantMsgs                  int
	}{
		{"binary unary", "application/grpc-web+proto", "UnaryCall", "0", 1},
		{"text unary", "application/grpc-web-text", "UnaryCall", "0", 1},
		{"unimplemented method", "application/grpc-web", "UnimplementedCall", "12", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := frame
			text := strings.HasPrefix(tc.contentType, "application/grpc-web-text")
			if text {
				body = []byte(base64.StdEncoding.EncodeToString(frame))
			}
			req, _ := http.NewRequest("POST", g.url(p, "/grpc.testing.TestService/"+tc.method), bytes.NewReader(body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("X-Grpc-Web", "1")
			resp, err := newClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("HTTP %d Content-Type %q body %q", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
			}
			if text {
				if raw, err = base64.StdEncoding.DecodeString(string(raw)); err != nil {
					t.Fatalf("text body is not base64: %v", err)
				}
			}
			msgs, trailer := grpcWebFrames(t, raw)
			if got := trailer.Get("grpc-status"); got != tc.wantStatus {
				t.Fatalf("grpc-status %q (%v), want %q", got, trailer, tc.wantStatus)
			}
			if len(msgs) != tc.wantMsgs {
				t.Fatalf("%d messages, want %d", len(msgs), tc.wantMsgs)
			}
			if tc.wantMsgs > 0 {
				var out testgrpc.SimpleResponse
				if err := proto.Unmarshal(msgs[0], &out); err != nil || len(out.GetPayload().GetBody()) != 1000 {
					t.Fatalf("response payload %d bytes, err %v", len(out.GetPayload().GetBody()), err)
				}
			}
		})
	}
}
