# syntax=docker/dockerfile:1
#
# The gateway image: one static binary on distroless, running as uid 65532
# (the user deploy/base and the Helm chart require).
#
#   docker build -t meshgate/gateway:dev .
#   docker build --build-arg VERSION=1.2.3 -t meshgate/gateway:1.2.3 .
#
# The Deployment's args start with `run`, since the entrypoint is the binary.
#
# Alternative without distroless: `docker build --target scratch-ca .` gives
# an image FROM scratch with only the binary and a CA bundle (for upstream TLS
# and tracing/Redis over TLS); it has no /etc/passwd, so the numeric USER
# below is what runs it, and no /tmp, which deploy/base mounts as an emptyDir.

ARG GO_VERSION=1.26.10

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# go.mod pins the toolchain; the build image already is that Go.
ENV GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /gateway ./cmd/gateway

# Documented alternative: scratch plus the build stage's CA bundle.
FROM scratch AS scratch-ca
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /gateway /gateway
USER 65532:65532
ENTRYPOINT ["/gateway"]

# Default (last) stage.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /gateway /gateway
USER 65532:65532
ENTRYPOINT ["/gateway"]
