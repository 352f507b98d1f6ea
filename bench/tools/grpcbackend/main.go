// Command grpcbackend is the gRPC backend of bench/protocols.sh: grpc-go's
// interop TestService (grpc.testing.TestService, the service the gRPC
// interop tests use) served over h2c (HTTP/2 cleartext, prior knowledge),
// with server reflection.
//
//	grpcbackend -addr 127.0.0.1:9051           serve until SIGINT/SIGTERM (or -hold)
//	grpcbackend -protoset FILE                 write the service's FileDescriptorSet
//	                                           (test.proto and its imports) for
//	                                           ghz --protoset, then exit
//	grpcbackend -probe 127.0.0.1:8151          one UnaryCall (response_size 100);
//	                                           exit 0 if it succeeds
//
// It also writes "listening ADDR" on stdout once the socket is bound.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9051", "address to serve h2c gRPC on")
	protoset := flag.String("protoset", "", "write the TestService FileDescriptorSet to this file and exit")
	probe := flag.String("probe", "", "make one UnaryCall to this address and exit (0 = success)")
	timeout := flag.Duration("timeout", 2*time.Second, "deadline of the -probe call")
	hold := flag.Duration("hold", time.Hour, "stop serving after this long (a bound for stray runs)")
	flag.Parse()

	switch {
	case *protoset != "":
		if err := writeProtoset(*protoset); err != nil {
			fatal(err)
		}
	case *probe != "":
		if err := probeOnce(*probe, *timeout); err != nil {
			fatal(err)
		}
	default:
		if err := serve(*addr, *hold); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "grpcbackend:", err)
	os.Exit(1)
}

func serve(addr string, hold time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	reflection.Register(s)
	fmt.Printf("listening %s\n", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
		case <-time.After(hold):
		}
		s.Stop()
	}()
	return s.Serve(ln)
}

// writeProtoset writes grpc/testing/test.proto and everything it imports, in
// dependency order, as a FileDescriptorSet (the format of protoc
// --include_imports --descriptor_set_out).
func writeProtoset(path string) error {
	fd := testpb.File_grpc_testing_test_proto
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imps := f.Imports()
		for i := 0; i < imps.Len(); i++ {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(fd)
	b, err := proto.Marshal(&set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func probeOnce(addr string, timeout time.Duration) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 100})
	if err != nil {
		return err
	}
	if n := len(resp.GetPayload().GetBody()); n != 100 {
		return fmt.Errorf("UnaryCall answered %d payload bytes, want 100", n)
	}
	return nil
}
