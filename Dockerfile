# syntax=docker/dockerfile:1
# banyan: one static binary in a distroless image.
#   docker build -t banyan .
#   docker run --rm banyan validate --config /etc/banyan/banyan.yaml
# docker-compose.yml builds the demo estate (banyan and both demo services)
# from this one image.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source edit does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO off: SQLite is modernc.org/sqlite (pure Go), so the binary is static.
# timetzdata embeds the zone database (cdc.source_timezone, local_to_utc).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -tags timetzdata \
      -ldflags "-s -w" -o /out/banyan ./cmd/banyan \
 && mkdir -p /out/var/lib/banyan

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/banyan /usr/local/bin/banyan
# State and reports go here (state:, reports.store: in deploy/banyan/banyan.yaml);
# a named volume mounted on it inherits this ownership.
COPY --from=build --chown=65532:65532 /out/var/lib/banyan /var/lib/banyan
USER 65532:65532
WORKDIR /var/lib/banyan
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/banyan"]
CMD ["--help"]
