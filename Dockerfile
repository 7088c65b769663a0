# syntax=docker/dockerfile:1
# extauthz: a static binary on distroless, non-root, no shell.
#
#   docker build -t extauthz:dev --build-arg VERSION=$(git describe --always) .
#   docker run --rm -v $PWD/config.yaml:/etc/extauthz/config.yaml:ro extauthz:dev
#
# The policy file is mounted at /etc/extauthz/config.yaml; it must listen on
# 0.0.0.0 (or the pod address) to be reachable from outside the container.
# test/manifests/deploy/dockerfile_test.go checks the properties below.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# The cache mounts keep modules and build results between builds; only the
# modules ./cmd/extauthz needs are downloaded (not the tests' Kubernetes ones).
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/extauthz ./cmd/extauthz

# Static, no shell, no package manager; the nonroot variant's user is 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/extauthz /extauthz
USER 65532:65532
# 9001 gRPC Check, 8080 HTTP (metadata, login, health), 9090 admin (metrics, pprof, purge).
EXPOSE 9001 8080 9090
ENTRYPOINT ["/extauthz"]
CMD ["serve", "--config", "/etc/extauthz/config.yaml"]
